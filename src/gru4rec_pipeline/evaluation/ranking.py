"""Exact rank of each target item among all items, and recall@k / MRR@k from those ranks.

Tie modes (as the official GRU4Rec evaluation defines them; the target itself never counts):
- ``standard``:     rank = 1 + #items scoring strictly higher than the target;
- ``conservative``: rank = 1 + #items scoring higher or equal;
- ``median``:       rank = 1 + #higher + #equal / 2.
An event counts for recall@k when rank <= k, and adds 1 / rank to MRR@k then.

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
from gru4rec_pipeline.names import DEFAULT_CUTOFFS, TIE_MODES


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


def rank_dense(scores, targets, tie_mode: str = "standard") -> torch.Tensor:
    """Ranks of ``targets`` (int [E]) in the rows of ``scores`` ([E, n_items], numpy or torch).

    Brute force: every item is compared with the target. Returns float64 [E] (on the scores' device).
    """
    check_tie_mode(tie_mode)
    scores = torch.as_tensor(scores)
    targets = torch.as_tensor(targets, device=scores.device).long()
    reference = scores[torch.arange(len(targets), device=scores.device), targets]
    higher = count_above(scores, reference, strict=True)
    ties = count_above(scores, reference, strict=False) - higher - 1  # the target equals itself
    return ranks_from_counts(higher, ties, tie_mode)


class MetricAccumulator:
    """Sums hits and reciprocal ranks per cut-off over batches of ranks."""

    def __init__(self, cutoffs=DEFAULT_CUTOFFS):
        self.cutoffs = check_cutoffs(cutoffs)
        self.hits = {c: 0.0 for c in self.cutoffs}
        self.reciprocal = {c: 0.0 for c in self.cutoffs}
        self.events = 0

    def add(self, ranks) -> None:
        ranks = torch.as_tensor(ranks, dtype=torch.float64).cpu()
        self.events += len(ranks)
        for c in self.cutoffs:
            inside = ranks <= c
            self.hits[c] += float(inside.sum())
            self.reciprocal[c] += float(torch.where(inside, 1.0 / ranks, 0.0).sum())

    def result(self) -> dict:
        n = max(self.events, 1)
        return {
            "recall": {str(c): self.hits[c] / n for c in self.cutoffs},
            "mrr": {str(c): self.reciprocal[c] / n for c in self.cutoffs},
            "events": self.events,
        }


def metrics_from_ranks(ranks, cutoffs=DEFAULT_CUTOFFS) -> dict:
    """Recall@k and MRR@k of a set of ranks: {"recall": {"k": ..}, "mrr": {"k": ..}, "events": n}."""
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


def rank_outputs_brute_force(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    bias: torch.Tensor,
    tie_mode: str = "standard",
    chunk: int = 1024,
) -> torch.Tensor:
    """Exact ranks of ``targets`` under scores ``hidden @ weights.T + bias``, scoring every item (float64)."""
    weights64 = weights.detach().to(torch.float64)
    bias64 = bias.detach().to(torch.float64)
    ranks = []
    for start in range(0, len(targets), chunk):
        h = hidden[start : start + chunk].detach().to(torch.float64)
        t = targets[start : start + chunk]
        scores = torch.addmm(bias64, h, weights64.T)
        reference = target_scores(h, t, weights64, bias64)
        # the target's own entry may differ from the reference in the last bit: take it out
        own = scores[torch.arange(len(t), device=t.device), t]
        higher = count_above(scores, reference, strict=True) - (own > reference).long()
        ties = count_above(scores, reference, strict=False) - higher - (own >= reference).long()
        ranks.append(ranks_from_counts(higher, ties, tie_mode))
    if not ranks:
        return torch.zeros(0, dtype=torch.float64, device=hidden.device)
    return torch.cat(ranks)


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
        h32 = hidden.detach().to(self.device, torch.float32).contiguous()
        targets = targets.to(self.device).long()
        if len(targets) == 0:
            return torch.zeros(0, dtype=torch.float64, device=self.device)
        if not self.ordered:
            self._order_items(float(h32.norm(dim=1).mean()))
        parts = [
            self._rank_events(h32[a : a + self.tile_events], targets[a : a + self.tile_events], tie_mode, limit)
            for a in range(0, len(targets), self.tile_events)
        ]
        return torch.cat(parts)

    def _rank_events(self, h32: torch.Tensor, targets: torch.Tensor, tie_mode: str, limit: float) -> torch.Tensor:
        """Ranks of up to ``tile_events`` events, item tile by item tile."""
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
        ranks = torch.full((len(targets),), math.inf, dtype=torch.float64, device=self.device)
        ranks[rows] = ranks_from_counts(surely_higher[rows], torch.zeros_like(rows), tie_mode)
        # the target itself always lies inside the band; any other item there needs float64
        unsure = rows[at_least_band[rows] - surely_higher[rows] != 1]
        if len(unsure):
            exact = rank_outputs_brute_force(h32[unsure], targets[unsure], self.weights64, self.bias64, tie_mode)
            ranks[unsure] = torch.where(exact <= limit, exact, math.inf)
        return ranks


def rank_outputs_certified(
    hidden, targets, weights, bias, tie_mode: str = "standard", limit: float = math.inf, **tiles
):
    """Ranks from a one-off :class:`CertifiedRanker` (``tiles``: its ``tile_items`` / ``tile_events``)."""
    return CertifiedRanker(weights, bias, **tiles).rank(hidden, targets, tie_mode, limit)


# ----------------------------------------------------------------------------- top lists


def top_items_dense(scores, depth: int) -> torch.Tensor:
    """The ``depth`` best-scoring items of each row of ``scores`` ([E, n_items]), best first."""
    return torch.topk(torch.as_tensor(scores), depth, dim=1).indices


def top_items_of_outputs(
    hidden: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, depth: int, tile_events: int = 1024
) -> torch.Tensor:
    """The ``depth`` best items of each event under float32 scores ``hidden @ weights.T + bias``, best first.

    Scored in tiles of events so that one tile's scores stay small ([tile, n_items]); which of two items
    within float32 rounding of each other is listed first does not matter to coverage or popularity.
    """
    weights32 = weights.detach().to(torch.float32)
    bias32 = bias.detach().to(torch.float32)
    parts = [
        torch.topk(
            torch.addmm(bias32, hidden[a : a + tile_events].detach().to(torch.float32), weights32.T), depth
        ).indices
        for a in range(0, len(hidden), tile_events)
    ]
    return torch.cat(parts) if parts else torch.zeros((0, depth), dtype=torch.long, device=hidden.device)
