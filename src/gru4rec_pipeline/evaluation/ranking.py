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
- :func:`rank_outputs_brute_force` scores every item of a model in float64 (the reference);
- :class:`CertifiedRanker` gives the same ranks from float32 scores with a proven error bound,
  and stops scoring an event once its rank is known to exceed the largest cut-off (rank ``inf``:
  beyond it the exact rank changes no metric.

Skipping items by score bounds (blocks of similar item vectors, ``h . c + |h| r``) was tried and
dropped: with 100-dimensional vectors the bounds are several score standard deviations loose, so
events whose target ranks in the top 20 still needed about 70% of all blocks, slower than scoring all.
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


# ----------------------------------------------------------------------------- model outputs


def target_scores(
    hidden: torch.Tensor, targets: torch.Tensor, weights64: torch.Tensor, bias64: torch.Tensor
) -> torch.Tensor:
    """float64 score of each event's own target: the reference every candidate is compared with."""
    return (hidden.to(torch.float64) * weights64[targets]).sum(1) + bias64[targets]


def count_outputs_brute_force(
    hidden: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``(higher, ties)`` of ``targets`` under scores ``hidden @ weights.T + bias``, scoring every item in
    float64 (a network scores every item: none is left unscored)."""
    weights64 = weights.detach().to(torch.float64)
    bias64 = bias.detach().to(torch.float64)
    highers, tieds = [], []
    for start in range(0, len(targets), chunk):
        h = hidden[start : start + chunk].detach().to(torch.float64)
        t = targets[start : start + chunk]
        scores = torch.addmm(bias64, h, weights64.T)
        reference = target_scores(h, t, weights64, bias64)
        # the target's own entry may differ from the reference in the last bit: take it out
        own = scores[torch.arange(len(t), device=t.device), t]
        higher = count_above(scores, reference, strict=True) - (own > reference).long()
        ties = count_above(scores, reference, strict=False) - higher - (own >= reference).long()
        highers.append(higher.to(torch.float64))
        tieds.append(ties.to(torch.float64))
    if not highers:
        empty = torch.zeros(0, dtype=torch.float64, device=hidden.device)
        return empty, empty.clone()
    return torch.cat(highers), torch.cat(tieds)


def rank_outputs_brute_force(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    bias: torch.Tensor,
    tie_mode: str = DEFAULT_TIE_MODE,
    chunk: int = 1024,
) -> torch.Tensor:
    """Exact ranks of ``targets`` under scores ``hidden @ weights.T + bias``, scoring every item (float64)."""
    check_tie_mode(tie_mode)
    return ranks_from_counts(*count_outputs_brute_force(hidden, targets, weights, bias, chunk), tie_mode)


class CertifiedRanker:
    """Exact ranks (as :func:`rank_outputs_brute_force` defines them) from float32 scores.

    - A float32 dot product of length ``d`` differs from the exact one by at most
      ``gamma * (|h| |w_j| + |b_j|)``, ``gamma = (d + 1) u / (1 - (d + 1) u)``, ``u = 2**-24``, whatever
      the summation order. Items further than twice that from the target's float64 score are certainly
      above or below it; an event with any other item inside that band is scored again in float64.
    - Items are scored in tiles, most probable first (highest ``b_j + |w_j| |h|``): an event with
      ``limit`` or more items certainly above its target is a miss at every cut-off and stops there
      (rank ``inf``); an event whose target scores above ``b_j + |w_j| |h|`` for every item left is
      complete. Only events that may still rank within ``limit`` see all other items.
    - On the CPU, tiles of 1024 events x 1024 items keep the scores in cache for the comparisons.
    """

    def __init__(
        self, weights: torch.Tensor, bias: torch.Tensor, tile_items: int | None = None, tile_events: int = 1024
    ):
        weights32 = weights.detach().to(torch.float32)
        bias32 = bias.detach().to(torch.float32)
        self.device = weights32.device
        self.n_items, self.dim = weights32.shape
        on_cpu = self.device.type == "cpu"
        self.tile_items = tile_items or (1024 if on_cpu else max(self.n_items, 1))
        self.tile_events = tile_events if on_cpu else 16384
        self.weights64 = weights32.to(torch.float64)
        self.bias64 = bias32.to(torch.float64)
        self.weights32 = weights32
        self.bias32 = bias32
        self.norms = weights32.norm(dim=1)
        unit = 2.0**-24
        self.gamma = (self.dim + 1) * unit / (1 - (self.dim + 1) * unit)
        self.largest_weight = float(self.norms.max()) if self.n_items else 0.0
        self.largest_bias = float(bias32.abs().max()) if self.n_items else 0.0
        self.ordered = False

    def _order_items(self, typical_length: float) -> None:
        """Most probable items first, for hidden states of length about ``typical_length``.

        Also the bound ``b_j + |w_j| |h|`` (Cauchy-Schwarz) on every item from each tile on:
        ``b_j + |w_j| |h| = p_j + |w_j| (|h| - L)`` with ``p_j = b_j + |w_j| L``, so the largest ``p_j``
        and the largest (``|h| > L``) or smallest (``|h| < L``) ``|w_j|`` from the tile on bound them all.
        """
        norms64 = self.weights64.norm(dim=1)
        priority = self.bias64 + norms64 * typical_length
        order = torch.argsort(priority, descending=True, stable=True)
        self.ordered_weights_t = self.weights32[order].T.contiguous()  # [d, n_items]
        self.ordered_bias = self.bias32[order].contiguous()
        self.position = torch.empty_like(order)
        self.position[order] = torch.arange(self.n_items, device=self.device)  # of each item in that order
        starts = torch.arange(0, self.n_items, self.tile_items, device=self.device)

        def from_tile_on(values: torch.Tensor, largest: bool) -> torch.Tensor:
            flipped = values[order].flip(0)
            running = torch.cummax(flipped, 0).values if largest else torch.cummin(flipped, 0).values
            return running.flip(0)[starts]

        self.tile_priority = from_tile_on(priority, largest=True)
        self.tile_longest = from_tile_on(norms64, largest=True)
        self.tile_shortest = from_tile_on(norms64, largest=False)
        self.typical_length = typical_length
        self.ordered = True

    def _remaining_bound(self, tile: int, lengths: torch.Tensor) -> torch.Tensor:
        """Upper bound on the score of every item from ``tile`` on, for hidden states of these lengths."""
        excess = lengths - self.typical_length
        norm = torch.where(excess > 0, self.tile_longest[tile], self.tile_shortest[tile])
        bound = self.tile_priority[tile] + norm * excess
        # float64 rounding of the norms and of this sum is far below this margin
        return bound + 1e-9 * (bound.abs() + lengths * self.tile_longest[tile] + self.largest_bias)

    def rank(self, hidden: torch.Tensor, targets: torch.Tensor, tie_mode: str, limit: float = math.inf) -> torch.Tensor:
        """float64 ranks; events whose rank exceeds ``limit`` get ``inf``."""
        check_tie_mode(tie_mode)
        ranks = ranks_from_counts(*self.count(hidden, targets, limit), tie_mode)
        return torch.where(ranks <= limit, ranks, math.inf)

    def count(
        self, hidden: torch.Tensor, targets: torch.Tensor, limit: float = math.inf
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 ``(higher, ties)``; ``higher`` is ``inf`` for events with ``limit`` or more items above the
        target (a miss at every cut-off up to ``limit`` in every tie mode)."""
        h32 = hidden.detach().to(self.device, torch.float32).contiguous()
        targets = targets.to(self.device).long()
        if len(targets) == 0:
            empty = torch.zeros(0, dtype=torch.float64, device=self.device)
            return empty, empty.clone()
        if not self.ordered:
            self._order_items(float(h32.norm(dim=1).mean()))
        parts = [
            self._count_events(h32[a : a + self.tile_events], targets[a : a + self.tile_events], limit)
            for a in range(0, len(targets), self.tile_events)
        ]
        return torch.cat([higher for higher, _ in parts]), torch.cat([ties for _, ties in parts])

    def _count_events(
        self, h32: torch.Tensor, targets: torch.Tensor, limit: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Counts of up to ``tile_events`` events, item tile by item tile."""
        reference = target_scores(h32, targets, self.weights64, self.bias64)
        lengths = h32.to(torch.float64).norm(dim=1)
        error = 2.0 * self.gamma * (lengths * self.largest_weight + self.largest_bias)
        error = error + 1e-12 * reference.abs() + 1e-300  # the float64 reference's own rounding
        upper, lower = reference + error, reference - error
        positions = self.position[targets]
        surely_higher = torch.zeros(len(targets), dtype=torch.long, device=self.device)
        at_least_band = torch.zeros_like(surely_higher)
        complete = []  # rows whose remaining items all score below the band: their counts are final
        rows = torch.arange(len(targets), device=self.device)
        active = (h32, upper, lower, positions)
        for tile, start in enumerate(range(0, self.n_items, self.tile_items)):
            beaten = self._remaining_bound(tile, lengths[rows]) < active[2]
            if bool(beaten.any()):
                complete.append(rows[beaten])
                rows = rows[~beaten]
                if len(rows) == 0:
                    break
                active = (h32[rows], upper[rows], lower[rows], positions[rows])
            hidden, row_upper, row_lower, row_positions = active
            stop = min(start + self.tile_items, self.n_items)
            scores = torch.addmm(self.ordered_bias[start:stop], hidden, self.ordered_weights_t[:, start:stop])
            in_band_or_above = count_above(scores, row_lower, strict=False).to(self.device)
            at_least_band[rows] += in_band_or_above
            # only rows with another item at or above the band can have one certainly above it
            target_here = ((row_positions >= start) & (row_positions < stop)).long()
            others = torch.nonzero(in_band_or_above > target_here).squeeze(1)
            if len(others) == len(rows):
                surely_higher[rows] += count_above(scores, row_upper, strict=True).to(self.device)
            elif len(others):
                surely_higher[rows[others]] += count_above(scores[others], row_upper[others], strict=True).to(
                    self.device
                )
            if limit < math.inf:
                undecided = surely_higher[rows] + 1 <= limit  # rank >= 1 + surely_higher in every tie mode
                if not bool(undecided.all()):
                    rows = rows[undecided]
                    if len(rows) == 0:
                        break
                    active = (h32[rows], upper[rows], lower[rows], positions[rows])
        rows = torch.cat([*complete, rows])
        higher = torch.full((len(targets),), math.inf, dtype=torch.float64, device=self.device)
        ties = torch.zeros(len(targets), dtype=torch.float64, device=self.device)
        # no other item inside the band: none scores exactly like the target
        higher[rows] = surely_higher[rows].to(torch.float64)
        # the target itself always lies inside the band; any other item there needs float64
        unsure = rows[at_least_band[rows] - surely_higher[rows] != 1]
        if len(unsure):
            exact_higher, exact_ties = count_outputs_brute_force(
                h32[unsure], targets[unsure], self.weights64, self.bias64
            )
            beyond = 1.0 + exact_higher > limit
            higher[unsure] = torch.where(beyond, math.inf, exact_higher)
            ties[unsure] = torch.where(beyond, 0.0, exact_ties)
        return higher, ties


def rank_outputs_certified(
    hidden, targets, weights, bias, tie_mode: str = DEFAULT_TIE_MODE, limit: float = math.inf, **tiles
):
    """Ranks from a one-off :class:`CertifiedRanker` (``tiles``: its ``tile_items`` / ``tile_events``)."""
    return CertifiedRanker(weights, bias, **tiles).rank(hidden, targets, tie_mode, limit)
