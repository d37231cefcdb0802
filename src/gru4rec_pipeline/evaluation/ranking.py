"""Exact rank of each target item among all items, and recall@k / MRR@k / NDCG@k from those ranks.

Tie modes (as the official GRU4Rec evaluation defines them; the target itself never counts):
- ``standard``:     rank = 1 + #items scoring strictly higher than the target;
- ``conservative``: rank = 1 + #items scoring higher or equal;
- ``median``:       rank = 1 + #higher + #equal / 2.
An event counts for recall@k when rank <= k, and adds 1 / rank to MRR@k and 1 / log2(rank + 1) to NDCG@k then
(:func:`discounted_gain`: with one relevant item per event, the ideal DCG is 1, so NDCG is the discounted gain
itself). The default is ``conservative``
(names.DEFAULT_TIE_MODE), as in the official evaluation: the other two hand a scorer that gives many items one score
the hits that tie-breaking decides. A scorer may also leave items unscored (a kNN's items that no neighbour holds,
:class:`~gru4rec_pipeline.evaluation.scorer_evaluation.SessionScorer`'s ``no_score``): a target it did not score is a
miss (rank ``inf``) in every tie mode, since the scorer did not recommend it.

The rankers count, per event, the items scoring above the target (``higher``; ``inf`` for a miss in every mode)
and the other items scoring exactly like it (``ties``); :class:`MetricAccumulator` turns the counts into ranks in
its tie mode and also records how many hits the ties decided.

Scores are compared in float64: the target's score and every candidate's score come from the
same float32 parameters, multiplied and summed in float64, so float32 rounding cannot reorder two
items. Ways to get the ranks:

- :func:`rank_dense` compares a full score matrix (any scorer);
- a model's outputs against every item: :mod:`gru4rec_pipeline.evaluation.output_ranking`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.names import DEFAULT_CUTOFFS, DEFAULT_TIE_MODE, TIE_MODES


def discounted_gain(ranks):
    """NDCG of next-item events at ranks ``ranks`` (no cut-off applied): ``1 / log2(rank + 1)``.

    Next-item prediction has one relevant item per event, so the ideal DCG (that item at rank 1) is 1 and an
    event's NDCG is its discounted gain: 1 at rank 1, 0.63 at rank 2, 0.5 at rank 3. NDCG@k counts it when
    rank <= k and 0 beyond. The rank is the tie mode's (conservative by default: every item scoring exactly like
    the target before it); an unscored target has rank ``inf`` and gain 0. Works on numpy arrays and tensors.
    """
    return 1.0 / np.log2(ranks + 1.0) if isinstance(ranks, np.ndarray) else 1.0 / torch.log2(ranks + 1.0)


def check_tie_mode(tie_mode: str) -> None:
    if tie_mode not in TIE_MODES:
        raise ConfigError("evaluation.tie_mode", f"got {tie_mode!r}, expected one of {', '.join(TIE_MODES)}")


def check_cutoffs(cutoffs) -> list[int]:
    values = [int(c) for c in cutoffs]
    if not values or any(c < 1 for c in values) or any(c != float(raw) for c, raw in zip(values, cutoffs)):
        raise ConfigError("evaluation.cutoffs", f"got {list(cutoffs)}, expected positive integers")
    return sorted(set(values))


def ranks_from_counts(higher: torch.Tensor, ties: torch.Tensor, tie_mode: str) -> torch.Tensor:
    """float64 ranks from counts of items scoring above / exactly like the target (target excluded)."""
    higher = higher.to(torch.float64)
    ties = ties.to(torch.float64)
    if tie_mode == "standard":
        return 1.0 + higher
    if tie_mode == "conservative":
        return 1.0 + higher + ties
    if tie_mode == "median":
        return 1.0 + higher + 0.5 * ties
    check_tie_mode(tie_mode)
    raise AssertionError("unreachable")


def count_above(scores: torch.Tensor, thresholds: torch.Tensor, strict: bool) -> torch.Tensor:
    """Per row, how many scores exceed (``strict``) or reach their row's threshold.

    On the CPU numpy's comparison and byte sum are several times faster than torch's bool reduction.
    """
    if scores.device.type != "cpu":
        column = thresholds.to(scores.dtype).unsqueeze(1)
        return ((scores > column) if strict else (scores >= column)).sum(1)
    values = scores.detach().numpy()
    column = thresholds.to(scores.dtype).numpy()[:, None]
    above = np.greater(values, column) if strict else np.greater_equal(values, column)
    return torch.from_numpy(above.view(np.uint8).sum(1, dtype=np.int64))


def count_dense(scores, targets, no_score: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(higher, ties)`` of ``targets`` (int [E]) in the rows of ``scores`` ([E, n_items], numpy or torch).

    Brute force: every item is compared with the target. float64 [E] each, on the scores' device. A target whose
    score is ``no_score`` (the scorer did not score it) gets ``higher = inf``: a miss in every tie mode.
    """
    scores = torch.as_tensor(scores)
    targets = torch.as_tensor(targets, device=scores.device).long()
    reference = scores[torch.arange(len(targets), device=scores.device), targets]
    higher = count_above(scores, reference, strict=True)
    ties = (count_above(scores, reference, strict=False) - higher - 1).to(torch.float64)  # the target equals itself
    higher = higher.to(torch.float64)
    if no_score is not None:
        unscored = reference == no_score
        higher = torch.where(unscored, math.inf, higher)
        ties = torch.where(unscored, 0.0, ties)
    return higher, ties


def rank_dense(scores, targets, tie_mode: str = DEFAULT_TIE_MODE, no_score: float | None = None) -> torch.Tensor:
    """Ranks of ``targets`` in the rows of ``scores`` (see :func:`count_dense`). Returns float64 [E]."""
    check_tie_mode(tie_mode)
    return ranks_from_counts(*count_dense(scores, targets, no_score), tie_mode)


class MetricAccumulator:
    """Sums hits, reciprocal ranks and discounted gains per cut-off over batches of ranks.

    Fed counts (:meth:`add_counts`), it ranks them in its tie mode and also sums, per cut-off, the hits that ties
    decided (a hit in this mode, a miss with every tied item ranked before the target: the conservative rank) and
    the events whose hit depends on how ties are broken at all (a hit with every tied item after the target, a
    miss with every one before it).
    """

    def __init__(self, cutoffs=DEFAULT_CUTOFFS, tie_mode: str = DEFAULT_TIE_MODE):
        check_tie_mode(tie_mode)
        self.cutoffs = check_cutoffs(cutoffs)
        self.tie_mode = tie_mode
        self.hits = {c: 0.0 for c in self.cutoffs}
        self.reciprocal = {c: 0.0 for c in self.cutoffs}
        self.gain = {c: 0.0 for c in self.cutoffs}
        self.tie_decided = {c: 0.0 for c in self.cutoffs}
        self.tie_dependent = {c: 0.0 for c in self.cutoffs}
        self.events = 0
        self.counted_events = 0  # events added as counts: the tie statistics cover only these

    def add(self, ranks) -> None:
        ranks = torch.as_tensor(ranks, dtype=torch.float64).cpu()
        self.events += len(ranks)
        reciprocal, gain = 1.0 / ranks, discounted_gain(ranks)
        for c in self.cutoffs:
            inside = ranks <= c
            self.hits[c] += float(inside.sum())
            self.reciprocal[c] += float(torch.where(inside, reciprocal, 0.0).sum())
            self.gain[c] += float(torch.where(inside, gain, 0.0).sum())

    def add_counts(self, higher, ties) -> torch.Tensor:
        """Add events given as counts of items above the target and tied with it; returns their ranks (float64,
        on the counts' device)."""
        higher = torch.as_tensor(higher, dtype=torch.float64)
        ties = torch.as_tensor(ties, dtype=torch.float64, device=higher.device)
        ranks = ranks_from_counts(higher, ties, self.tie_mode)
        self.add(ranks)
        self.counted_events += len(ranks)
        best, worst, mode = 1.0 + higher.cpu(), 1.0 + higher.cpu() + ties.cpu(), ranks.cpu()
        for c in self.cutoffs:
            beyond_when_tied_items_first = worst > c
            self.tie_decided[c] += float(((mode <= c) & beyond_when_tied_items_first).sum())
            self.tie_dependent[c] += float(((best <= c) & beyond_when_tied_items_first).sum())
        return ranks

    def result(self) -> dict:
        n = max(self.events, 1)
        result = {
            "recall": {str(c): self.hits[c] / n for c in self.cutoffs},
            "mrr": {str(c): self.reciprocal[c] / n for c in self.cutoffs},
            "ndcg": {str(c): self.gain[c] / n for c in self.cutoffs},
            "events": self.events,
        }
        if self.events and self.counted_events == self.events:
            result["tie_decided_hits"] = {
                str(c): self.tie_decided[c] / self.hits[c] if self.hits[c] else 0.0 for c in self.cutoffs
            }
            result["tie_dependent_events"] = {str(c): self.tie_dependent[c] / n for c in self.cutoffs}
        return result


def metrics_from_ranks(ranks, cutoffs=DEFAULT_CUTOFFS) -> dict:
    """Recall@k, MRR@k and NDCG@k of a set of ranks: {"recall": {"k": ..}, "mrr": .., "ndcg": .., "events": n}."""
    accumulator = MetricAccumulator(cutoffs)
    accumulator.add(ranks)
    return accumulator.result()


def rank_limit(cutoffs, tie_mode: str) -> float:
    """Ranks above this value change no metric: the largest cut-off."""
    check_tie_mode(tie_mode)
    return float(max(check_cutoffs(cutoffs)))
