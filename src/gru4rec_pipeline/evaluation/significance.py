"""Paired significance of the differences between models: ``results/significance.tsv``.

One row per ordered pair of models and metric (recall@k, MRR@k and NDCG@k at the largest cut-off):
- ``difference``: metric of ``model_a`` minus that of ``model_b``;
- ``ci_low`` / ``ci_high``: a paired bootstrap 95% interval of the difference over the evaluation events
  (seeded; every pair is resampled with the same event indices, drawn as one matrix of counts per block of
  resamples, so the means of all models come from one matrix product);
- ``p_value``: McNemar's exact test on the per-event hits (a binomial test of the discordant events) for
  recall, the Wilcoxon signed-rank test on the per-event reciprocal ranks for MRR and on the per-event
  discounted gains for NDCG;
- ``p_adjusted``: Holm's step-down adjustment within each family of rows of one metric and unit: each family
  answers one question (which models are not worse than the best at that metric), so adding a metric does not
  change another metric's adjusted p-values or marks.

With replicates a second block (``unit`` seeds) compares the per-seed metrics of models that ran more than once
(Welch's t-test, its 95% interval of the difference of the means); the event block (``unit`` events) pairs each
model's first run. Models evaluated on different splits are refused (:func:`event_ranks.check_comparable`), and so
are ranks that contradict their evaluation's metrics file (:func:`event_ranks.check_against_metrics`) and models
ranked in different tie modes.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from scipy import stats

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.evaluation.event_ranks import (
    EventRanks,
    check_against_metrics,
    check_comparable,
    per_event_values,
)
from gru4rec_pipeline.files import read_json, write_text_atomic
from gru4rec_pipeline.names import ACCURACY_METRICS

log = logging.getLogger(__name__)

SIGNIFICANCE_COLUMNS = (
    "model_a", "model_b", "metric", "unit", "test", "difference", "ci_low", "ci_high", "p_value", "p_adjusted",
)  # fmt: skip
RESAMPLE_BLOCK = 100  # resamples whose counts are held at once ([block, events] float32)


def bootstrap_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """[resamples, models] means of ``values`` ([events, models]) over event resamples drawn with replacement.

    Each block's resamples are a matrix of indices turned into per-event counts, so one product gives every
    model's resampled mean: no Python loop over single resamples.
    """
    events = len(values)
    rng = np.random.default_rng(seed)
    columns = values.astype(np.float32)
    means = []
    for start in range(0, resamples, RESAMPLE_BLOCK):
        block = min(RESAMPLE_BLOCK, resamples - start)
        indices = rng.integers(0, events, size=(block, events))
        rows = np.repeat(np.arange(block) * events, events)
        counts = np.bincount(indices.ravel() + rows, minlength=block * events).reshape(block, events)
        means.append((counts.astype(np.float32) @ columns).astype(np.float64) / events)
    return np.concatenate(means)


def mcnemar_exact(hits_a: np.ndarray, hits_b: np.ndarray) -> float:
    """McNemar's exact test: under no difference, the events only one model hits split 50:50."""
    only_a = int(np.sum(hits_a & ~hits_b))
    only_b = int(np.sum(~hits_a & hits_b))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def wilcoxon_signed_rank(values_a: np.ndarray, values_b: np.ndarray) -> float:
    """Wilcoxon signed-rank test of paired values; events where both agree carry no sign and are dropped."""
    if not np.any(values_a != values_b):
        return 1.0
    return float(stats.wilcoxon(values_a, values_b).pvalue)


def holm_adjust(p_values) -> np.ndarray:
    """Holm's step-down adjustment: the i-th smallest p times (m - i), made monotone, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def event_block(names: list[str], ranks: list[EventRanks], cutoff: int, resamples: int, seed: int) -> list[dict]:
    """Rows comparing every ordered pair of models event by event (their first runs)."""
    rows = []
    for metric in ACCURACY_METRICS:
        values = np.stack([per_event_values(r.ranks, metric, cutoff) for r in ranks], axis=1)
        means = values.mean(0)
        resampled = bootstrap_means(values, resamples, seed)
        for a, name_a in enumerate(names):
            for b, name_b in enumerate(names):
                if a == b and len(names) > 1:
                    continue
                spread = resampled[:, a] - resampled[:, b]
                if metric == "recall":
                    p_value = mcnemar_exact(values[:, a] > 0, values[:, b] > 0)
                else:
                    p_value = wilcoxon_signed_rank(values[:, a], values[:, b])
                rows.append(
                    {
                        "model_a": name_a,
                        "model_b": name_b,
                        "metric": f"{metric}@{cutoff}",
                        "unit": "events",
                        "test": "mcnemar_exact" if metric == "recall" else "wilcoxon",
                        "difference": float(means[a] - means[b]),
                        "ci_low": float(np.percentile(spread, 2.5)),
                        "ci_high": float(np.percentile(spread, 97.5)),
                        "p_value": p_value,
                    }
                )
    return rows


def seed_block(runs: dict[str, list[dict]], cutoff: int) -> list[dict]:
    """Rows comparing the per-seed metrics of every ordered pair of models that ran at least twice (Welch); a
    metric that some run's record lacks (NDCG in a file written before it was measured) is left out."""
    repeated = [name for name, records in runs.items() if len(records) >= 2]
    rows = []
    for metric in ACCURACY_METRICS:
        if not all(str(cutoff) in (record.get(metric) or {}) for name in repeated for record in runs[name]):
            continue
        for name_a in repeated:
            for name_b in repeated:
                if name_a == name_b:
                    continue
                a = np.array([record[metric][str(cutoff)] for record in runs[name_a]], dtype=np.float64)
                b = np.array([record[metric][str(cutoff)] for record in runs[name_b]], dtype=np.float64)
                result = stats.ttest_ind(a, b, equal_var=False)
                interval = result.confidence_interval(0.95)
                rows.append(
                    {
                        "model_a": name_a,
                        "model_b": name_b,
                        "metric": f"{metric}@{cutoff}",
                        "unit": "seeds",
                        "test": "welch",
                        "difference": float(a.mean() - b.mean()),
                        "ci_low": float(interval.low),
                        "ci_high": float(interval.high),
                        "p_value": float(result.pvalue) if np.isfinite(result.pvalue) else 1.0,
                    }
                )
    return rows


def compare_models(
    ranks_paths: dict[str, str],
    output_path,
    cutoff: int,
    metrics_paths: dict[str, list[str]] | None = None,
    resamples: int = 1000,
    seed: int = 42,
    *,
    model_metrics: dict[str, str],
) -> pd.DataFrame:
    """Write ``output_path`` (TSV, :data:`SIGNIFICANCE_COLUMNS`) from each model's ranks file (its first run),
    checked against ``model_metrics``, the metrics file of the same run, and, for the seed block, each model's
    metrics files (one per run)."""
    started = time.perf_counter()
    names = list(ranks_paths)
    if not names:
        raise DataFormatError("<compare_models>", "no models to compare")
    loaded = [EventRanks.load(ranks_paths[name]) for name in names]
    tie_modes = {}
    for name, ranks in zip(names, loaded):
        if name not in model_metrics:
            raise DataFormatError(ranks_paths[name], f"no metrics file given for model {name!r} to check its ranks by")
        metrics = read_json(model_metrics[name], "metrics")
        check_against_metrics(ranks, ranks_paths[name], metrics, model_metrics[name])
        tie_modes.setdefault(metrics.get("tie_mode"), model_metrics[name])
    if len(tie_modes) > 1:
        (mode, path), (other, other_path) = list(tie_modes.items())[:2]
        raise DataFormatError(
            other_path, f"ranked in tie mode {other}, {path} in {mode}: models ranked differently cannot be paired; "
            "rerun their evaluations with one evaluation.tie_mode"
        )  # fmt: skip
    for name, ranks in zip(names, loaded):
        check_comparable(loaded[0], ranks_paths[names[0]], ranks, ranks_paths[name], cutoff)
    rows = event_block(names, loaded, cutoff, resamples, seed)
    runs = {name: [read_json(path, "metrics") for path in paths] for name, paths in (metrics_paths or {}).items()}
    rows += seed_block(runs, cutoff)
    table = pd.DataFrame(rows, columns=[c for c in SIGNIFICANCE_COLUMNS if c != "p_adjusted"])
    table["p_adjusted"] = table.groupby(["metric", "unit"], sort=False)["p_value"].transform(holm_adjust)
    write_text_atomic(output_path, table.to_csv(sep="\t", index=False, float_format="%.6g"))
    log.info(
        "%d comparisons of %d models on %d events in %.1f s",
        len(table), len(names), len(loaded[0].ranks), time.perf_counter() - started,
    )  # fmt: skip
    return table
