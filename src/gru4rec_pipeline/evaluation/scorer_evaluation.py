"""Next-item evaluation of predictors that are not networks: the baselines and the synthetic data's oracle.

Anything implementing :class:`SessionScorer` is ranked exactly like a model's scores (the same ranks and
metrics), one session at a time. A scorer may leave items unscored (``no_score``): a target it did not score is a
miss in every tie mode, and the metrics add ``unscored_targets``, the share of events whose target it did not score.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from gru4rec_pipeline.compute import configure_threads
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import PipelineError
from gru4rec_pipeline.evaluation.baselines import OracleScorer, build_baseline
from gru4rec_pipeline.evaluation.beyond_accuracy import TopListAccumulator, top_items_dense
from gru4rec_pipeline.evaluation.event_ranks import RankCollector
from gru4rec_pipeline.evaluation.ranking import (
    MetricAccumulator,
    check_cutoffs,
    check_tie_mode,
    count_dense,
)
from gru4rec_pipeline.evaluation.stage import (
    EvaluationSettings,
    check_eval_items,
    finish_metrics,
    load_evaluation_data,
    write_results,
)
from gru4rec_pipeline.names import DEFAULT_CUTOFFS, DEFAULT_TIE_MODE
from gru4rec_pipeline.progress import Progress
from gru4rec_pipeline.report.provenance import collect_provenance
from gru4rec_pipeline.synthetic.oracle import Oracle

log = logging.getLogger(__name__)


class SessionScorer(Protocol):
    """A next-item predictor that is not a neural network (baselines, oracle)."""

    #: The score of every item the scorer did not score (a kNN's items that no neighbour holds: 0), or None when
    #: it scores every item. A target scoring exactly this is a miss whatever the tie mode: the scorer did not
    #: recommend it, however many other items it left unscored too.
    no_score: float | None

    def session_scores(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        """float64 [len(items) - 1, n_items]: row ``j`` scores every item as the successor of
        ``items[j]`` given ``items[: j + 1]`` (vocabulary indices); higher is better."""


def evaluate_scorer(
    scorer: SessionScorer,
    eval_arrays: SessionArrays,
    n_items: int,
    cutoffs=DEFAULT_CUTOFFS,
    tie_mode: str = DEFAULT_TIE_MODE,
    progress: bool = True,
    rank_chunk: int = 256,
    item_support=None,
    ranks_out: RankCollector | None = None,
) -> dict:
    """Recall@k and MRR@k of a :class:`SessionScorer`, ranked exactly like a model's scores; ``item_support``
    and ``ranks_out`` as in :func:`~gru4rec_pipeline.evaluation.model_evaluation.evaluate_model`."""
    cutoffs = check_cutoffs(cutoffs)
    check_tie_mode(tie_mode)
    check_eval_items(eval_arrays, n_items)
    started = time.perf_counter()
    accumulator = MetricAccumulator(cutoffs, tie_mode)
    no_score = scorer.no_score
    unscored = 0
    top_lists = TopListAccumulator(item_support, cutoffs) if item_support is not None else None
    pending_scores, pending_targets, pending_positions, pending = [], [], [], 0
    lengths = eval_arrays.lengths()
    sessions = np.flatnonzero(lengths >= 2)
    with Progress("evaluate", total=int((lengths[sessions] - 1).sum()), unit="event", enabled=progress) as bar:
        for s in sessions:
            a, b = eval_arrays.offsets[s], eval_arrays.offsets[s + 1]
            scores = np.asarray(scorer.session_scores(eval_arrays.items[a:b], eval_arrays.times[a:b]), dtype=np.float64)
            if scores.shape != (b - a - 1, n_items):
                raise PipelineError(
                    f"{type(scorer).__name__} gave scores of shape {scores.shape} for session {s} of the evaluation "
                    f"split, expected {(int(b - a - 1), int(n_items))} (an event's scores over every item)"
                )
            if np.isnan(scores).any():
                # NaN compares false with everything: its target would rank first
                raise PipelineError(f"{type(scorer).__name__} gave NaN scores for session {s} of the evaluation split")
            pending_scores.append(scores)
            pending_targets.append(eval_arrays.items[a + 1 : b])
            pending_positions.append(np.arange(a + 1, b))
            pending += b - a - 1
            if pending >= rank_chunk or s == sessions[-1]:
                scores = np.concatenate(pending_scores)
                higher, ties = count_dense(scores, np.concatenate(pending_targets), no_score)
                unscored += int(torch.isinf(higher).sum())
                ranks = accumulator.add_counts(higher, ties)
                if top_lists is not None:
                    top_lists.add(top_items_dense(scores, top_lists.depth))
                if ranks_out is not None:
                    ranks_out.add(np.concatenate(pending_positions), ranks.numpy())
                bar.update(pending)
                pending_scores, pending_targets, pending_positions, pending = [], [], [], 0
    beyond = top_lists.result() if top_lists is not None else {}
    seconds = time.perf_counter() - started
    metrics = finish_metrics(accumulator, len(sessions), seconds, tie_mode, **beyond)
    metrics["unscored_targets"] = unscored / metrics["events"]
    return metrics


def run_baseline_evaluation(
    name: str,
    train_path,
    eval_path,
    vocab_path,
    recall_path,
    metrics_path,
    settings: EvaluationSettings | None = None,
    options: dict | None = None,
    threads: int = 1,
    config: dict | None = None,
    ranks_path=None,
    dataset: dict | None = None,
) -> dict:
    """Fit the baseline ``name`` (pop, spop, itemknn; ``options``: its settings) and evaluate it; ``ranks_path``:
    where every event's rank goes."""
    settings = settings or EvaluationSettings()
    configure_threads(threads)
    arrays, vocabulary = load_evaluation_data(eval_path, vocab_path)
    train = SessionArrays.load(train_path)
    vocabulary.check_indices(train, train_path, vocab_path)
    options = dict(options or {})
    started = time.perf_counter()
    scorer, n_items = build_baseline(name, train, vocabulary.n_items, **options)
    fit_seconds = time.perf_counter() - started
    collector = RankCollector(arrays, max(check_cutoffs(settings.cutoffs))) if ranks_path is not None else None
    metrics = evaluate_scorer(
        scorer,
        arrays,
        n_items,
        cutoffs=settings.cutoffs,
        tie_mode=settings.tie_mode,
        item_support=vocabulary.support,
        ranks_out=collector,
    )
    record = {
        "model": name,
        "kind": "baseline",
        "hyperparameters": options,
        "device": "cpu",
        "timings": {
            "train_seconds": fit_seconds,
            "eval_seconds": metrics.get("seconds"),
            "eval_events_per_s": metrics.get("events_per_s"),
        },
        "provenance": collect_provenance(config or {}),
    }
    title = f"baseline {name}"
    return write_results(metrics, recall_path, metrics_path, title, record, ranks_path, collector, dataset)


def run_oracle_evaluation(
    process_path,
    eval_path,
    vocab_path,
    recall_path,
    metrics_path,
    settings: EvaluationSettings | None = None,
    threads: int = 1,
    config: dict | None = None,
    ranks_path=None,
    dataset: dict | None = None,
) -> dict:
    """Evaluate the synthetic process's Bayes-optimal next-item distribution: the ceiling of every model."""
    settings = settings or EvaluationSettings()
    configure_threads(threads)
    arrays, vocabulary = load_evaluation_data(eval_path, vocab_path)
    scorer = OracleScorer(Oracle.load(Path(process_path)), vocabulary)
    collector = RankCollector(arrays, max(check_cutoffs(settings.cutoffs))) if ranks_path is not None else None
    metrics = evaluate_scorer(
        scorer,
        arrays,
        vocabulary.n_items,
        cutoffs=settings.cutoffs,
        tie_mode=settings.tie_mode,
        item_support=vocabulary.support,
        ranks_out=collector,
    )
    record = {
        "model": "oracle",
        "kind": "oracle",
        "device": "cpu",
        "timings": {"eval_seconds": metrics.get("seconds"), "eval_events_per_s": metrics.get("events_per_s")},
        "provenance": collect_provenance(config or {}),
    }
    title = "oracle (Bayes-optimal on the synthetic process)"
    return write_results(metrics, recall_path, metrics_path, title, record, ranks_path, collector, dataset)
