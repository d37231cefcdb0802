"""Beyond accuracy: how much of the catalogue the top-k lists reach, and how popular what they recommend is.

- ``coverage@k``: the share of training items (the vocabulary) that appear in at least one top-k list over the
  evaluation events;
- ``popularity@k``: per event, the mean training popularity of the k recommended items, each normalised by the
  most popular item's (support / max support, as session-rec defines it), averaged over the events.

The ranking pass hands each batch's top lists (:func:`top_items_dense`, :func:`top_items_of_outputs`) to
:class:`TopListAccumulator`; items tying at the k-th place are cut in the order ``torch.topk`` returns them.
"""

from __future__ import annotations

import numpy as np
import torch

from gru4rec_pipeline.evaluation.ranking import check_cutoffs


class TopListAccumulator:
    """Sums what coverage@k and popularity@k need over batches of top lists ([E, max k], best first)."""

    def __init__(self, item_support, cutoffs):
        support = np.asarray(item_support, dtype=np.float64)
        self.cutoffs = check_cutoffs(cutoffs)
        self.n_items = len(support)
        largest = support.max() if len(support) else 0.0
        self.popularity = torch.as_tensor(support / largest if largest > 0 else support)
        self.seen = {k: torch.zeros(self.n_items, dtype=torch.bool) for k in self.cutoffs}
        self.popularity_sum = {k: 0.0 for k in self.cutoffs}
        self.events = 0

    @property
    def depth(self) -> int:
        """How long each top list must be: the largest cut-off (or every item, when there are fewer)."""
        return min(max(self.cutoffs), self.n_items)

    def add(self, top_items) -> None:
        top_items = torch.as_tensor(top_items).long().cpu()
        self.events += len(top_items)
        for k in self.cutoffs:
            head = top_items[:, :k]
            self.seen[k][head.reshape(-1)] = True
            self.popularity_sum[k] += float(self.popularity[head].mean(1).sum()) if head.numel() else 0.0

    def result(self) -> dict:
        n = max(self.events, 1)
        return {
            "coverage": {str(k): float(self.seen[k].sum()) / max(self.n_items, 1) for k in self.cutoffs},
            "popularity": {str(k): self.popularity_sum[k] / n for k in self.cutoffs},
        }


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
