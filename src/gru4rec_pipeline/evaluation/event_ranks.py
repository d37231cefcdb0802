"""Per-prediction outcomes of an evaluation: the target's rank for every next-item event, in split order.

``results/metrics/{setting}/{name}.ranks.npz`` holds
- ``ranks``: float32 [E], event ``j`` is the ``j``-th prediction of the evaluation split (sessions in file
  order, events in session order); ``inf`` where the rank exceeds the largest cut-off (no metric needs it);
- ``split_fingerprint``: sha256 of the evaluation split's offsets and items, so that two models evaluated on
  different splits are never compared event by event;
- ``largest_cutoff``: beyond it ranks are ``inf``.

float32 holds every rank exactly (integers, or halves in the median tie mode, far below 2**24). A reader pairs the
file with the metrics JSON of the same evaluation (:func:`check_against_metrics`): ranks that do not give that
file's events, recall@k, MRR@k and NDCG@k are refused, whether truncated or from another run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.evaluation.ranking import discounted_gain
from gru4rec_pipeline.files import atomic_output
from gru4rec_pipeline.names import ACCURACY_METRICS


def split_fingerprint(arrays: SessionArrays) -> str:
    """What identifies an evaluation split's predictions: its session boundaries and items."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(arrays.offsets, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(arrays.items, dtype=np.int64).tobytes())
    return digest.hexdigest()


def prediction_positions(arrays: SessionArrays) -> np.ndarray:
    """Index into ``arrays.items`` of each predicted target, in split order (every event but a session's first)."""
    first = np.zeros(arrays.n_events, dtype=bool)
    starts = arrays.offsets[:-1][arrays.lengths() > 0]
    first[starts] = True
    return np.flatnonzero(~first)


@dataclass(frozen=True)
class EventRanks:
    """The ranks of one model's predictions on one evaluation split."""

    ranks: np.ndarray
    split_fingerprint: str
    largest_cutoff: int

    def save(self, path: str | Path) -> None:
        with atomic_output(path) as temporary, open(temporary, "wb") as stream:
            np.savez(
                stream,
                ranks=np.asarray(self.ranks, dtype=np.float32),
                split_fingerprint=np.array(self.split_fingerprint),
                largest_cutoff=np.array(self.largest_cutoff, dtype=np.int64),
            )

    @classmethod
    def load(cls, path: str | Path) -> "EventRanks":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [key for key in ("ranks", "split_fingerprint", "largest_cutoff") if key not in data]
                if missing:
                    raise DataFormatError(path, f"missing arrays {missing}; the evaluate stage writes this file")
                ranks = data["ranks"].astype(np.float64)
                fingerprint = str(data["split_fingerprint"])
                largest = int(data["largest_cutoff"])
        except FileNotFoundError:
            raise DataFormatError(path, "per-event ranks not found; the evaluate stage writes them") from None
        except (OSError, ValueError) as exc:
            raise DataFormatError(path, f"not a ranks file (.npz): {exc}") from None
        if ranks.ndim != 1 or np.isnan(ranks).any() or (ranks < 1).any():
            raise DataFormatError(path, "ranks must be a 1-d array of values >= 1 (inf beyond the largest cut-off)")
        return cls(ranks, fingerprint, largest)


def per_event_values(ranks: np.ndarray, metric: str, cutoff: int) -> np.ndarray:
    """Each event's share of ``metric``@``cutoff`` (their mean is the metric): its hit (0 or 1) for recall, its
    reciprocal rank for MRR, its discounted gain for NDCG (:func:`~.ranking.discounted_gain`), each 0 beyond the
    cut-off."""
    inside = ranks <= cutoff
    if metric == "recall":
        return inside.astype(np.float64)
    if metric == "mrr":
        return np.where(inside, 1.0 / ranks, 0.0)
    if metric == "ndcg":
        return np.where(inside, discounted_gain(ranks), 0.0)
    raise ValueError(f"unknown metric {metric!r}, expected one of {', '.join(ACCURACY_METRICS)}")


# How far a metric recomputed from the stored ranks may lie from the metrics file's (float64 sums in another order).
METRIC_TOLERANCE = 1e-9


def check_against_metrics(ranks: EventRanks, ranks_path, metrics: dict, metrics_path) -> None:
    """Refuse ``ranks`` unless they give the events and the recall@k / MRR@k / NDCG@k (every cut-off up to the
    largest kept; NDCG where the file has it) of ``metrics``, the metrics file its evaluation wrote beside it."""
    rerun = "rerun the evaluation that writes both"
    events = metrics.get("events")
    if events != len(ranks.ranks):
        raise DataFormatError(
            ranks_path, f"holds {len(ranks.ranks)} ranks, but {metrics_path} counts {events} events: the ranks file is "
            f"truncated or from another evaluation; {rerun}"
        )  # fmt: skip
    for name in ACCURACY_METRICS:
        for cutoff, value in (metrics.get(name) or {}).items():
            if int(cutoff) > ranks.largest_cutoff:
                continue
            own = float(per_event_values(ranks.ranks, name, int(cutoff)).mean())
            if abs(own - float(value)) > METRIC_TOLERANCE:
                raise DataFormatError(
                    ranks_path, f"its ranks give {name}@{cutoff} {own:.6f}, {metrics_path} says {float(value):.6f}: "
                    f"the two files come from different evaluations; {rerun}"
                )  # fmt: skip


def check_comparable(first: EventRanks, first_path, second: EventRanks, second_path, cutoff: int) -> None:
    """Refuse to compare two models event by event unless they ranked the same predictions up to ``cutoff``."""
    if first.split_fingerprint != second.split_fingerprint:
        raise DataFormatError(
            second_path,
            f"evaluated on another split than {first_path} (split fingerprints {second.split_fingerprint[:12]} "
            f"and {first.split_fingerprint[:12]}, {len(second.ranks)} and {len(first.ranks)} events): "
            "their per-event outcomes cannot be paired",
        )
    if len(first.ranks) != len(second.ranks):
        raise DataFormatError(
            second_path,
            f"holds {len(second.ranks)} ranks and {first_path} {len(first.ranks)}, for the predictions of the same "
            f"split (fingerprint {first.split_fingerprint[:12]}): one of them is truncated; rerun its evaluation",
        )
    for ranks, path in ((first, first_path), (second, second_path)):
        if ranks.largest_cutoff < cutoff:
            raise DataFormatError(path, f"ranks are kept up to {ranks.largest_cutoff} only, compared at {cutoff}")


class RankCollector:
    """Gathers an evaluation's ranks, batch by batch in any order, into split order."""

    def __init__(self, arrays: SessionArrays, largest_cutoff: int):
        positions = prediction_positions(arrays)
        self.index_of_position = np.full(arrays.n_events, -1, dtype=np.int64)
        self.index_of_position[positions] = np.arange(len(positions))
        self.ranks = np.full(len(positions), np.nan, dtype=np.float64)
        self.fingerprint = split_fingerprint(arrays)
        self.largest_cutoff = int(largest_cutoff)

    def add(self, target_positions, ranks) -> None:
        """``target_positions``: index into the split's items of each ranked target."""
        ranks = np.asarray(ranks, dtype=np.float64)
        self.ranks[self.index_of_position[np.asarray(target_positions, dtype=np.int64)]] = np.where(
            ranks <= self.largest_cutoff, ranks, np.inf
        )

    def result(self) -> EventRanks:
        if np.isnan(self.ranks).any():
            raise AssertionError(f"{int(np.isnan(self.ranks).sum())} predictions were not ranked")
        return EventRanks(self.ranks, self.fingerprint, self.largest_cutoff)
