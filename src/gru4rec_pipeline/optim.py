"""Adagrad with momentum, as in the official GRU4Rec (IndexedAdagradM).

For a gradient g of a parameter p (per element):
    acc <- acc + g^2
    mom <- momentum * mom - lr * g / sqrt(acc + eps)        (eps = 1e-6)
    p   <- p + mom
With momentum 0 the step is plain Adagrad, ``p <- p - lr * g / sqrt(acc + eps)``.

Item matrices are updated on the rows a minibatch touched only: rows not in the minibatch keep their
values, accumulators and momentum untouched (their momentum neither decays nor moves them). Gradients
of rows that occur more than once in a step are summed first (the update is non-linear in g).

Duplicate rows are found without sorting: each entry learns the position of the first entry with the
same row through a scatter-min into a per-parameter table (``RowGroups``). On the CPU the step then
works on the distinct rows only and writes them back with ``index_add_`` (about twice as fast as ``index_copy_``
on the CPU); on a GPU (no data-dependent shapes, hence no host synchronisation) every
copy of a row computes the same new row, so writing all copies back is well defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ADAGRAD_EPS = 1e-6


@dataclass
class RowGroups:
    """Entries ``rows`` [m] of a row parameter, duplicates allowed, grouped by row.

    ``first[i]`` is the position of the first entry with the row of entry ``i``. When the groups are
    compacted (CPU), ``unique`` holds the positions of first entries and ``repeats`` all other positions.
    """

    rows: Tensor
    first: Tensor
    unique: Tensor | None = None
    repeats: Tensor | None = None

    def prefix(self, length: int) -> "RowGroups":
        """The groups of ``rows[:length]`` (valid because a first entry precedes its repeats)."""
        if length == self.rows.shape[0]:
            return self
        unique = repeats = None
        if self.unique is not None:  # both ascending: the entries below ``length`` are a prefix
            unique = self.unique[: int(torch.count_nonzero(self.unique < length))]
            repeats = self.repeats[: int(torch.count_nonzero(self.repeats < length))]
        return RowGroups(self.rows[:length], self.first[:length], unique, repeats)


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
        self._first_entry: dict[tuple[int, str], Tensor] = {}
        self._positions = torch.zeros(0, dtype=torch.int64)
        # Whether duplicate rows are merged into distinct rows (CPU) or every copy is updated alike
        # (GPU): None picks by device.
        self.compact_duplicates: bool | None = None

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

    def compact_rows(self, param: Tensor) -> bool:
        """Whether duplicate rows are merged into distinct rows (CPU) rather than updated alike (GPU)."""
        if self.compact_duplicates is not None:
            return self.compact_duplicates
        return param.device.type == "cpu"

    def group_rows(self, param: Tensor, rows: Tensor) -> RowGroups:
        """Group the entries of ``rows`` (indices into ``param``) by row."""
        count = rows.shape[0]
        if self._positions.shape[0] < count or self._positions.device != rows.device:
            self._positions = torch.arange(max(count, 2 * self._positions.shape[0]), device=rows.device)
        positions = self._positions[:count]
        key = (param.shape[0], str(rows.device))
        table = self._first_entry.get(key)
        if table is None:  # entries not written this step are never read: no reset needed
            table = self._first_entry[key] = torch.zeros(param.shape[0], dtype=torch.int64, device=rows.device)
        table.scatter_reduce_(0, rows, positions, "amin", include_self=False)
        first = table.index_select(0, rows)
        if not self.compact_rows(param):
            return RowGroups(rows, first)
        is_first = first == positions
        unique = is_first.nonzero().squeeze(1)
        repeats = is_first.logical_not_().nonzero().squeeze(1)
        return RowGroups(rows, first, unique, repeats)

    def update_grouped_rows(
        self, name: str, param: Tensor, groups: RowGroups, grad: Tensor, param_rows: Tensor | None = None
    ) -> None:
        """Update ``param`` given one gradient row per entry of ``groups.rows`` (``grad`` is consumed).

        ``param_rows``: ``param[groups.rows]`` if the caller already has it (saves a gather on a GPU).
        """
        if groups.unique is not None:
            if groups.repeats.numel():
                grad.index_add_(0, groups.first.index_select(0, groups.repeats), grad.index_select(0, groups.repeats))
            rows = groups.rows.index_select(0, groups.unique)
            self.update_unique_rows(name, param, rows, grad.index_select(0, groups.unique))
            return
        summed = torch.zeros_like(grad).index_add_(0, groups.first, grad).index_select(0, groups.first)
        state = self.state[name]
        state_rows = state.index_select(0, groups.rows)
        change = self._row_step(state_rows, summed.reshape(groups.rows.shape[0], -1), None)
        state.index_copy_(0, groups.rows, state_rows)
        if param_rows is None:
            param_rows = param.index_select(0, groups.rows)
        param.index_copy_(0, groups.rows, param_rows.add(change.view_as(param_rows)))

    def update_rows(self, name: str, param: Tensor, rows: Tensor, grad: Tensor) -> None:
        """Update ``param[rows]`` given one gradient row per entry of ``rows`` (duplicates allowed)."""
        self.update_grouped_rows(name, param, self.group_rows(param, rows), grad)

    def update_unique_rows(self, name: str, param: Tensor, rows: Tensor, grad: Tensor, mask: Tensor | None = None) -> None:
        """Update ``param[rows]`` with the summed gradient ``grad`` [len(rows), ...] of distinct ``rows``.

        ``mask`` (bool [len(rows)]): update only these rows; the others are left exactly as they are.
        """
        state = self.state[name]
        grad = grad.reshape(rows.shape[0], -1)
        if mask is not None:
            state_rows = state.index_select(0, rows)
            change = self._row_step(state_rows, grad, mask)
            state.index_copy_(0, rows, state_rows)
            param.index_add_(0, rows, change.view((rows.shape[0], *param.shape[1:])))
            return
        # Written back as increments: index_add_ is much faster than index_copy_ on the CPU. The
        # accumulator increment g^2 is exact; the momentum is rewritten as old + (new - old).
        width = grad.shape[1]
        if width == 1:
            # One-column rows (a bias): add through flat indices, index_add_'s fast 1-d path.
            flat_rows = torch.add(rows.unsqueeze(1).mul(2), torch.arange(2, device=rows.device)).view(-1)
            state = state.view(-1)
            state_rows = state.index_select(0, flat_rows).view(-1, 2)
            rows_written = flat_rows
        else:
            state_rows = state.index_select(0, rows)
            rows_written = rows
        acc, mom = state_rows[:, :width], state_rows[:, width:]
        increment = torch.empty_like(state_rows)
        acc_increment, mom_increment = increment[:, :width], increment[:, width:]
        torch.mul(grad, grad, out=acc_increment)
        inv_root = acc.add_(acc_increment).add_(self.eps).rsqrt_()
        if self.momentum > 0:
            torch.mul(mom, self.momentum - 1.0, out=mom_increment).addcmul_(grad, inv_root, value=-self.learning_rate)
            change = torch.add(mom, mom_increment)  # contiguous: index_add_ is much slower from a strided source
        else:
            mom_increment.zero_()
            change = torch.mul(inv_root, grad).mul_(-self.learning_rate)
        state.index_add_(0, rows_written, increment.view(-1) if width == 1 else increment)
        param.index_add_(0, rows, change.view((rows.shape[0], *param.shape[1:])))

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

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {name: tensor.detach().cpu() for name, tensor in self.state.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, tensor in state.items():
            if name not in self.state or self.state[name].shape != tensor.shape:
                raise ValueError(f"optimizer state {name!r} does not match the model")
            self.state[name].copy_(tensor)
