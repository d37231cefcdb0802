"""What every evaluation shares: its settings, its checked inputs, its ranks turned into metrics, its files.

The drivers are :func:`~gru4rec_pipeline.evaluation.model_evaluation.run_model_evaluation` (a trained
GRU4Rec) and, in :mod:`~gru4rec_pipeline.evaluation.scorer_evaluation`, ``run_baseline_evaluation`` and
``run_oracle_evaluation``: what the workflow's ``evaluate_*`` scripts and the commands ``gru4rec-pipeline
evaluate``, ``baseline`` and ``oracle`` call, so both write the same files (``metrics.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError, PipelineError
from gru4rec_pipeline.evaluation.event_ranks import RankCollector
from gru4rec_pipeline.evaluation.metrics import write_metrics_json, write_recall_txt
from gru4rec_pipeline.evaluation.ranking import MetricAccumulator
from gru4rec_pipeline.names import DEFAULT_CUTOFFS, DEFAULT_TIE_MODE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationSettings:
    """The config's ``evaluation`` section: cut-offs, tie mode, sessions evaluated side by side."""

    cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS
    tie_mode: str = DEFAULT_TIE_MODE
    batch_size: int = 512

    @classmethod
    def from_dict(cls, values: dict) -> "EvaluationSettings":
        return cls(tuple(values.get("cutoffs", DEFAULT_CUTOFFS)), values.get("tie_mode", DEFAULT_TIE_MODE),
                   int(values.get("batch_size", 512)))  # fmt: skip


def load_evaluation_data(eval_path, vocab_path) -> tuple[SessionArrays, Vocabulary]:
    """The evaluation sessions and the vocabulary they index; refuses a mismatch or nothing to predict."""
    vocabulary = Vocabulary.load(vocab_path)
    arrays = SessionArrays.load(eval_path)
    vocabulary.check_indices(arrays, eval_path, vocab_path)
    if int(np.maximum(arrays.lengths() - 1, 0).sum()) == 0:
        raise DataFormatError(
            eval_path,
            f"no next-item predictions to evaluate: none of its {arrays.n_sessions} sessions has two or more events "
            "with items of the training vocabulary. The protocol's split or the sessions stage emptied it: see "
            "counts.json beside it and results/data/stats.json, and the protocol settings (min_session_length, "
            "min_item_support, split_seconds)",
        )
    return arrays, vocabulary


def write_results(
    metrics: dict,
    recall_path,
    metrics_path,
    title: str,
    record: dict,
    ranks_path=None,
    ranks: RankCollector = None,
    dataset: dict | None = None,
) -> dict:
    """The output files; ``record`` (model, kind, settings, timings, provenance) goes into the JSON, the
    collected per-event ranks (when given) to ``ranks_path``; ``dataset`` (the data source record,
    ``results/data/source.json``) is named by both files."""
    if ranks_path is not None:
        ranks.result().save(ranks_path)
    if dataset is not None:
        record = {**record, "data": dataset}
    write_recall_txt(metrics, recall_path, title=title, dataset=dataset)
    write_metrics_json(metrics, metrics_path, extra=record)
    log.info("%s: recall@%s %s", title, max(metrics["recall"]), metrics["recall"][max(metrics["recall"])])
    return metrics


def check_eval_items(eval_arrays: SessionArrays, n_items: int) -> None:
    if eval_arrays.n_events and (eval_arrays.items.min() < 0 or eval_arrays.items.max() >= n_items):
        raise DataFormatError(
            "<evaluation sessions>",
            f"item indices must lie in 0..{n_items - 1} (the training vocabulary), "
            f"found {eval_arrays.items.min()}..{eval_arrays.items.max()}",
        )


def finish_metrics(accumulator: MetricAccumulator, sessions: int, seconds: float, tie_mode: str, **extra) -> dict:
    if accumulator.events == 0:
        raise PipelineError("no next-item predictions were evaluated: the evaluation sessions are empty")
    metrics = accumulator.result()
    metrics.update(
        sessions=sessions,
        seconds=seconds,
        events_per_s=metrics["events"] / seconds if seconds > 0 else 0.0,
        tie_mode=tie_mode,
        cutoffs=accumulator.cutoffs,
        **extra,
    )
    return metrics
