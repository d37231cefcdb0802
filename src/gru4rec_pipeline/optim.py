"""Adagrad with momentum, as in the official GRU4Rec (IndexedAdagradM).

For a gradient g of a parameter p (per element):
    acc <- acc + g^2
    mom <- momentum * mom - lr * g / sqrt(acc + eps)        (eps = 1e-6)
    p   <- p + mom
With momentum 0 the step is plain Adagrad, ``p <- p - lr * g / sqrt(acc + eps)``.

Item matrices are updated on the rows a minibatch touched only: rows not in the minibatch keep their
values, accumulators and momentum untouched (their momentum neither decays nor moves them). Gradients
of rows that occur more than once in a step are summed first (the update is non-linear in g).
"""

from __future__ import annotations

import torch
from torch import Tensor

ADAGRAD_EPS = 1e-6


class AdagradMomentum:
    """Holds accumulator and momentum tensors; updates parameters in place.

    ``dense`` parameters are updated as a whole; ``rows`` parameters ([n, ...]) by row indices.
    State tensors: [2, *shape] for dense parameters (accumulator, momentum); [n, 2 * row_size] for
    row parameters (each row's accumulator, then its momentum).
    """

    def __init__(self, learning_rate: float, momentum: float, eps: float = ADAGRAD_EPS):
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.state: dict[str, Tensor] = {}
        self._row_scratch: dict[str, Tensor] = {}
        # How duplicate rows are summed: None picks by device (sorting on CPU, scratch buffer on GPU).
        self.coalesce_by_sorting: bool | None = None

    # -- registration -------------------------------------------------------------------------
    def add_dense(self, name: str, param: Tensor) -> None:
        self.state[name] = torch.zeros((2, *param.shape), dtype=param.dtype, device=param.device)

    def add_rows(self, name: str, param: Tensor) -> None:
        # One row of state per parameter row, accumulator and momentum side by side, so that a set of
        # rows is fetched and written back in one pass each (the rows are random: memory latency rules).
        width = param[0].numel() if param.dim() > 1 else 1
        self.state[name] = torch.zeros((param.shape[0], 2 * width), dtype=param.dtype, device=param.device)

    # -- updates ------------------------------------------------------------------------------
    def _step(self, acc: Tensor, mom: Tensor, grad: Tensor) -> Tensor:
        """Update ``acc``/``mom`` (in place) and return the change to add to the parameter."""
        acc.addcmul_(grad, grad)
        inv_root = acc.add(self.eps).rsqrt_()
        if self.momentum > 0:
            mom.mul_(self.momentum).addcmul_(grad, inv_root, value=-self.learning_rate)
            return mom
        return inv_root.mul_(grad).mul_(-self.learning_rate)

    def update_dense(self, name: str, param: Tensor, grad: Tensor) -> None:
        state = self.state[name]
        param.add_(self._step(state[0], state[1], grad))

    def update_unique_rows(self, name: str, param: Tensor, rows: Tensor, grad: Tensor, mask: Tensor | None = None) -> None:
        """Update ``param[rows]`` with the summed gradient ``grad`` [len(rows), ...] of distinct ``rows``.

        ``mask`` (bool [len(rows)]): update only these rows; the others are left exactly as they are.
        """
        state = self.state[name]
        state_rows = state.index_select(0, rows)
        change = self._row_step(state_rows, grad.reshape(rows.shape[0], -1), mask)
        state.index_copy_(0, rows, state_rows)
        param.index_add_(0, rows, change.view_as(grad))

    def _row_step(self, state_rows: Tensor, grad: Tensor, mask: Tensor | None) -> Tensor:
        """Adagrad-momentum on gathered rows [r, 2k] (in place) for gradients [r, k]; returns the change."""
        width = grad.shape[1]
        acc, mom = state_rows[:, :width], state_rows[:, width:]
        kept_mom = mom.clone() if mask is not None and self.momentum > 0 else None
        change = self._step(acc, mom, grad)  # zero gradients leave accumulators unchanged
        if mask is not None:
            keep = mask.unsqueeze(1)
            if kept_mom is not None:
                mom.copy_(torch.where(keep, mom, kept_mom))
            change = change * keep
        return change

    def update_rows(self, name: str, param: Tensor, rows: Tensor, grad: Tensor) -> None:
        """Update ``param[rows]`` given one gradient row per entry of ``rows`` (duplicates allowed)."""
        if self.sort_rows(param):
            unique, inverse = torch.unique(rows, return_inverse=True)
            summed = torch.zeros((unique.shape[0], *param.shape[1:]), dtype=grad.dtype, device=grad.device)
            self.update_unique_rows(name, param, unique, summed.index_add_(0, inverse, grad))
            return
        # GPU: no data-dependent shapes (no host synchronisation). Duplicates are summed in a zeroed
        # scratch buffer and every copy then computes the same new row, so writing all copies back
        # is well defined.
        scratch = self._row_scratch.get(name)
        if scratch is None:  # kept zero between steps
            scratch = self._row_scratch[name] = torch.zeros_like(param)
        scratch.index_add_(0, rows, grad)
        summed = scratch.index_select(0, rows)
        scratch.index_fill_(0, rows, 0.0)
        state = self.state[name]
        state_rows = state.index_select(0, rows)
        change = self._row_step(state_rows, summed.reshape(rows.shape[0], -1), None)
        state.index_copy_(0, rows, state_rows)
        param.index_copy_(0, rows, param.index_select(0, rows).add_(change.view_as(summed)))

    def sort_rows(self, param: Tensor) -> bool:
        """Whether duplicate rows are summed by sorting (CPU) rather than in a scratch buffer (GPU)."""
        if self.coalesce_by_sorting is not None:
            return self.coalesce_by_sorting
        return param.device.type == "cpu"

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {name: tensor.detach().cpu() for name, tensor in self.state.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, tensor in state.items():
            if name not in self.state or self.state[name].shape != tensor.shape:
                raise ValueError(f"optimizer state {name!r} does not match the model")
            self.state[name].copy_(tensor)
