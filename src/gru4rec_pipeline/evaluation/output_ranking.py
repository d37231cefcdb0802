"""Exact ranks of a model's targets among all items, from its outputs ``hidden @ weights.T + bias``.

- :func:`rank_outputs_brute_force` scores every item of a model in float64 (the reference);
- :class:`CertifiedRanker` gives the same ranks from float32 scores with a proven error bound,
  and stops scoring an event once its rank is known to exceed the largest cut-off (rank ``inf``:
  beyond it the exact rank changes no metric).

Tie modes and the counts the rankers return (items above the target, items tied with it) are those of
:mod:`gru4rec_pipeline.evaluation.ranking`.

Skipping items by score bounds (blocks of similar item vectors, ``h . c + |h| r``) was tried and
dropped: with 100-dimensional vectors the bounds are several score standard deviations loose, so
events whose target ranks in the top 20 still needed about 70% of all blocks, slower than scoring all.
"""

from __future__ import annotations

import math

import torch

from gru4rec_pipeline.evaluation.ranking import check_tie_mode, count_above, ranks_from_counts
from gru4rec_pipeline.names import DEFAULT_TIE_MODE


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
