"""The results table: every trained loss, the baselines and the oracle side by side.

Reads the ``results/metrics/{setting}/{name}.json`` files the evaluate stages write and produces
- ``summary.tsv``: machine-readable, one row per model, plain numbers: recall@k, mrr@k and ndcg@k at every
  cut-off, coverage and popularity at the headline cut-off, cost, tie mode, device, data;
- ``summary.md``:  the same for people: the headline table (recall, MRR and NDCG at the headline cut-off,
  names.headline_cutoff), one table per metric at every cut-off, the cost, the published RSC15 figures, provenance;
- ``summary.html`` (optional): the markdown content as a page, shown in the Snakemake report;
- ``summary_headline.html`` (optional): the headline part alone as an HTML fragment, with the accuracy figure
  (``results/plots/metrics_by_cutoff.png``) embedded below the table: the report's landing page
  (workflow/report/workflow.rst) shows it.

What the summary says lives here; its tables and notes in :mod:`gru4rec_pipeline.report.tables`; how they are laid
out (markdown, HTML, TSV) in :mod:`gru4rec_pipeline.report.render`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_outputs, read_json
from gru4rec_pipeline.names import (
    ACCURACY_METRICS,
    BASELINES,
    BEYOND_ACCURACY_METRICS,
    LOSSES,
    TUNED_SUFFIX,
    headline_cutoff,
)
from gru4rec_pipeline.report.aggregate import aggregate_runs, mark_not_worse, not_worse_than_best, read_significance
from gru4rec_pipeline.report.published import PUBLISHED_RSC15, PublishedFigures, published_figures
from gru4rec_pipeline.report.render import render_fragment, render_html, render_markdown, render_tsv
from gru4rec_pipeline.report.tables import headline_blocks, summary_blocks

log = logging.getLogger(__name__)

# Row order: the losses in the order the papers introduce them, then the baselines, then the oracle.
KIND_ORDER = {"gru4rec": 0, "baseline": 1, "oracle": 2}

MODEL_DESCRIPTIONS = {
    "ce_full": "GRU4Rec, cross-entropy over all items",
    "ce_sampled": "GRU4Rec, cross-entropy over sampled negatives",
    "bpr": "GRU4Rec, BPR",
    "bpr_max": "GRU4Rec, BPR-max",
    "top1": "GRU4Rec, TOP1",
    "top1_max": "GRU4Rec, TOP1-max",
    "pop": "Most popular items in training",
    "spop": "Most popular in the session, then in training",
    "itemknn": "Item-to-item co-occurrence (cosine)",
    "sknn": "Session kNN: items of the most similar recent sessions",
    "vsknn": "Session kNN, recent clicks weigh more (V-SKNN)",
    "stan": "Session kNN with position and recency decays (STAN)",
    "oracle": "Knows the generating process (upper bound)",
}

# The element of summary_headline.html that the report's landing page (workflow/report/workflow.rst) styles.
HEADLINE_ELEMENT = "results-headline"

TIMING_KEYS = ["train_seconds", "train_events_per_s", "eval_seconds", "eval_events_per_s"]


def _cutoff_key(value: Any) -> int:
    return int(value)


def load_metrics(paths: list[str | Path]) -> list[dict]:
    """Read metrics files; each needs ``model``, ``recall`` and ``mrr`` (by cut-off); ``ndcg``, ``coverage`` and
    ``popularity`` are read where present (NDCG is missing from files written before it was measured)."""
    records = []
    for path in paths:
        path = Path(path)
        record = read_json(path, "metrics")
        if not isinstance(record, dict):
            raise DataFormatError(path, "expected a JSON object with keys model, recall, mrr")
        for key in ("model", "recall", "mrr"):
            if key not in record:
                raise DataFormatError(path, f"missing key '{key}' (expected model, recall, mrr)")
        for key in [metric for metric in ACCURACY_METRICS if metric in record]:
            if not isinstance(record[key], dict):
                raise DataFormatError(path, f"'{key}' must map cut-offs to values, found {type(record[key]).__name__}")
            try:
                record[key] = {_cutoff_key(k): float(v) for k, v in record[key].items()}
            except (TypeError, ValueError):
                raise DataFormatError(path, f"'{key}' must map integer cut-offs to numbers") from None
        for key in BEYOND_ACCURACY_METRICS:
            if isinstance(record.get(key), dict):
                record[key] = {_cutoff_key(k): float(v) for k, v in record[key].items()}
        record["_source"] = str(path)
        records.append(record)
    return records


def _sort_key(record: dict) -> tuple:
    name = record["model"]
    kind = record.get("kind", "gru4rec")
    order = LOSSES if kind == "gru4rec" else BASELINES
    base = name.removesuffix(TUNED_SUFFIX)  # a tuned model right after its loss's default one
    position = order.index(base) if base in order else len(order)
    return (KIND_ORDER.get(kind, len(KIND_ORDER)), position, name != base, name)


def describe_model(record: dict) -> str:
    """What a row is; a tuned model adds its study's best trial and that trial's metric on valid."""
    name = record["model"]
    base = name.removesuffix(TUNED_SUFFIX)
    study = record.get("tuning")
    if name == base or not isinstance(study, dict):
        return MODEL_DESCRIPTIONS.get(name, "")
    return (
        f"{MODEL_DESCRIPTIONS.get(base, base)}, tuned: trial {study.get('best_trial')} of study {study.get('study')}, "
        f"{study.get('metric')} {study.get('best_value', math.nan):.4f} on valid"
    )


def all_cutoffs(records: list[dict]) -> list[int]:
    cutoffs: set[int] = set()
    for record in records:
        for metric in ACCURACY_METRICS:
            cutoffs.update(record.get(metric) or {})
    return sorted(cutoffs)


def summary_table(records: list[dict]) -> pd.DataFrame:
    """One row per model: recall@k, MRR@k and NDCG@k for every cut-off, coverage and popularity at the headline
    cut-off, training and evaluation cost.

    Missing values (a baseline has no epochs, a model without some cut-off or without NDCG) are NaN.
    """
    cutoffs = all_cutoffs(records)
    headline = headline_cutoff(cutoffs)
    rows = []
    for record in sorted(records, key=_sort_key):
        timings = record.get("timings") or {}
        name = record["model"]
        row = {
            "model": name,
            "kind": record.get("kind", "gru4rec"),
            "description": describe_model(record),
        }
        for metric in ACCURACY_METRICS:
            for k in cutoffs:
                row[f"{metric}@{k}"] = (record.get(metric) or {}).get(k, math.nan)
        for key in BEYOND_ACCURACY_METRICS:
            if any(key in r for r in records):
                row[f"{key}@{headline}"] = (record.get(key) or {}).get(headline, math.nan)
        row["epochs"] = record.get("epochs", math.nan)
        for key in TIMING_KEYS:
            row[key] = timings.get(key, math.nan)
        row["eval_events"] = record.get("events", math.nan)
        row["tie_mode"] = record.get("tie_mode", "")
        row["device"] = record.get("device", "")
        row["data"] = data_fingerprint(record)
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in ["epochs", *TIMING_KEYS, "eval_events"]:
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def published_table(
    cutoffs: list[int], entries: list[dict] | None = None, kind: str = "published_rsc15"
) -> pd.DataFrame:
    """Published figures (default: RSC15's) as rows with the same metric columns (NaN where not reported)."""
    rows = []
    for entry in PUBLISHED_RSC15 if entries is None else entries:
        row = {"model": entry["id"], "kind": kind, "description": f"{entry['source']}: {entry['setting']}"}
        for metric in ACCURACY_METRICS:
            for k in cutoffs:
                row[f"{metric}@{k}"] = entry.get(metric, {}).get(k, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def describe_dataset(source: dict, setting: str | None = None) -> str:
    """One line naming the data (``source``: the data source record, results/data/source.json) and the split
    the models were trained and evaluated on."""
    data = source.get("description") or "data not recorded"
    split = {"final": "trained on train_full, evaluated on test", "tuning": "trained on train_tr, evaluated on valid"}
    return f"{data}; {split[setting]}" if setting in split else data


def data_fingerprint(record: dict) -> str:
    """The short SHA-256 of the data a metrics record was measured on ("" where it names none)."""
    data = record.get("data")
    return str(data.get("fingerprint", "")) if isinstance(data, dict) else ""


def models_on_other_data(records: list[dict], source: dict | None) -> list[str]:
    """The models whose metrics name other data than ``source`` (when None: than the first record that names
    any), or none: ``model (sha256 ...)`` or ``model (no data recorded)``."""
    expected = (source or {}).get("fingerprint") or next(filter(None, map(data_fingerprint, records)), "")
    if not expected:
        return []
    return [
        f"{r['model']} ({'sha256 ' + data_fingerprint(r) if data_fingerprint(r) else 'no data recorded'})"
        for r in records
        if data_fingerprint(r) != expected
    ]


def evaluated_event_counts(records: list[dict]) -> dict[str, int]:
    return {r["model"]: int(r["events"]) for r in records if isinstance(r.get("events"), (int, float))}


def shared_provenance(records: list[dict]) -> tuple[dict, list[str]]:
    """The provenance of the first record that has one, and the models whose provenance differs from it.

    Only the code and configuration identity is compared (commit, dirtiness, config hash);
    hostnames and times legitimately differ between stages.
    """
    identity_keys = ("git_commit", "git_dirty", "config_sha256")
    with_provenance = [r for r in records if isinstance(r.get("provenance"), dict)]
    if not with_provenance:
        return {}, []
    reference = with_provenance[0]["provenance"]
    differing = [
        r["model"]
        for r in with_provenance[1:]
        if any(r["provenance"].get(key) != reference.get(key) for key in identity_keys)
    ]
    return reference, differing


def write_summary(
    metrics_paths: list[str | Path],
    tsv_path: str | Path,
    md_path: str | Path,
    html_path: str | Path | None = None,
    dataset: str | None = None,
    significance_path: str | Path | None = None,
    data_source: dict | None = None,
    headline_path: str | Path | None = None,
    headline_figure: str | Path | None = None,
    published: PublishedFigures | None = None,
) -> pd.DataFrame:
    """Build the summary from metrics files (several runs of a model: their mean, std and count) and write the
    TSV, markdown and (optionally) the HTML page and the headline's HTML fragment (with ``headline_figure``, a PNG,
    embedded); ``significance_path`` marks the models not significantly worse than the best.

    ``dataset``: the line naming the data (default: the data record of the metrics files); ``data_source``: the
    data source record the models should have been measured on: the summary names those measured on other data.
    ``published``: the published figures shown beside (default: RSC15's, report/published.py).
    """
    records = load_metrics(metrics_paths)
    if not records:
        raise DataFormatError("<summary>", "no metrics files given")
    if dataset is None:
        named = next((r["data"] for r in records if data_fingerprint(r)), data_source)
        dataset = describe_dataset(named) if named else None
    table = aggregate_runs(summary_table(records))
    if significance_path is not None:
        table = mark_not_worse(table, not_worse_than_best(table, read_significance(significance_path)))
    cutoffs = all_cutoffs(records)
    figures = published or published_figures()
    published = published_table(cutoffs, figures.entries, figures.kind)
    provenance, differing = shared_provenance(records)
    context = {
        "dataset": dataset,
        "data_differs": models_on_other_data(records, data_source),
        "is_synthetic": bool((table["kind"] == "oracle").any()),
        # A data set's synthetic raw files have no oracle: the data source record says they are synthetic.
        "synthetic_data": (data_source or {}).get("kind") == "dataset" and "preset" in (data_source or {}),
        "event_counts": evaluated_event_counts(records),
        "provenance": provenance,
        "provenance_differs": differing,
        "published_note": figures.note,
        "published_heading": figures.heading,
    }
    blocks = summary_blocks(table, published, cutoffs, context)
    # Everything is rendered before the first file is written, and the files appear together:
    # a failure leaves no partial set.
    texts = {Path(tsv_path): render_tsv(table, published), Path(md_path): render_markdown(blocks)}
    if html_path is not None:
        texts[Path(html_path)] = render_html(blocks)
    if headline_path is not None:
        headline = headline_blocks(table, cutoffs, context, figure=headline_figure)
        texts[Path(headline_path)] = render_fragment(headline, HEADLINE_ELEMENT)
    with atomic_outputs() as staged:
        for path, text in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.temporary(path).write_text(text, encoding="utf-8")
    log.info("summary of %d models written to %s and %s", len(table), tsv_path, md_path)
    return table
