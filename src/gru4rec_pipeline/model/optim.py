"""Adagrad with momentum, as in the official GRU4Rec (IndexedAdagradM).

For a gradient g of a parameter p (per element):
    acc <- acc + g^2
    mom <- momentum * mom - lr * g / sqrt(acc + eps)        (eps = 1e-6)
    p   <- p + mom
With momentum 0 the step is plain Adagrad, ``p <- p - lr * g / sqrt(acc + eps)`` (and ``mom`` holds
the last step taken).

Item matrices are updated on the rows a minibatch touched only: rows not in the minibatch keep their
values, accumulators and momentum untouched (their momentum neither decays nor moves them). Gradients
of rows that occur more than once in a step are summed first (the update is non-linear in g).

Two ways to do it, same arithmetic:
- on the CPU, compiled loops (``kernels``) merge duplicates and update each distinct row in place;
- elsewhere (a GPU), tensor operations with no data-dependent shapes, hence no host synchronisation:
  each entry finds the first entry of its row through a scatter-min, gradients are summed there, and
  every copy of a row computes the same new row, so writing all copies back is well defined.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gru4rec_pipeline.errors import PipelineError
from gru4rec_pipeline.model import kernels

ADAGRAD_EPS = 1e-6


class AdagradMomentum:
    """Holds accumulator and momentum tensors; updates parameters in place.

    ``dense`` parameters are updated as a whole; ``rows`` parameters ([n, ...]) by row indices.
    State tensors: [2, *shape] for dense parameters (accumulator, momentum); [n, 2 * row_size] for
    row parameters (each row's accumulator, then its momentum, side by side so that a row's state is
    one contiguous piece of memory).
    """

    def __init__(self, learning_rate: float, momentum: float, use_kernels: bool = True, eps: float = ADAGRAD_EPS):
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.state: dict[str, Tensor] = {}
        self._first_entry: dict[tuple[int, str], Tensor] = {}
        self._positions = torch.zeros(0, dtype=torch.int64)
        # Whether CPU tensors go through the compiled kernels (where numba is there). False runs the
        # tensor-operation path on the CPU too (the fixed-shape step; tests compare the two).
        self.use_kernels = use_kernels

    # -- registration -------------------------------------------------------------------------
    def add_dense(self, name: str, param: Tensor) -> None:
        self.state[name] = torch.zeros((2, *param.shape), dtype=param.dtype, device=param.device)

    def add_rows(self, name: str, param: Tensor) -> None:
        width = param[0].numel() if param.dim() > 1 else 1
        self.state[name] = torch.zeros((param.shape[0], 2 * width), dtype=param.dtype, device=param.device)

    def kernels_for(self, param: Tensor) -> bool:
        if self.use_kernels is False or not kernels.AVAILABLE:
            return False
        return param.device.type == "cpu" and param.is_contiguous()

    # -- updates ------------------------------------------------------------------------------
    def update_dense(self, name: str, param: Tensor, grad: Tensor) -> None:
        state = self.state[name]
        if self.kernels_for(param):
            kernels.adagrad_momentum_dense(
                param.detach().view(-1).numpy(),
                state.view(2, -1).numpy(),
                grad.detach().reshape(-1).numpy(),
                *self._scalars(param),
            )
            return
        acc, mom = state[0], state[1]
        acc.addcmul_(grad, grad)
        inv_root = acc.add(self.eps).rsqrt_()
        param.add_(mom.mul_(self.momentum).addcmul_(grad, inv_root, value=-self.learning_rate))

    def update_rows(
        self, name: str, param: Tensor, rows: Tensor, grad: Tensor, param_rows: Tensor | None = None
    ) -> None:
        """Update ``param[rows]`` given one gradient row per entry of ``rows`` (duplicates allowed;
        ``grad`` is consumed). ``param_rows``: ``param[rows]`` if the caller has it (saves a gather)."""
        if self.kernels_for(param):
            empty = np.empty((0, 1), dtype=param.detach().numpy().dtype)
            self._kernel_update(name, param, rows, grad, None, empty, empty)
            return
        self._tensor_update(name, param, rows, grad, param_rows)

    def update_rows_with_bias(
        self,
        name: str,
        param: Tensor,
        bias_name: str,
        bias: Tensor,
        rows: Tensor,
        grad: Tensor,
        bias_grad: Tensor,
        param_rows: Tensor | None = None,
    ) -> None:
        """``update_rows`` of ``param`` and of its per-row ``bias`` [n], whose gradient ``bias_grad`` covers
        the first ``len(bias_grad)`` entries of ``rows`` only: a row that occurs only after them keeps its
        bias, accumulator and momentum."""
        if self.kernels_for(param) and self.kernels_for(bias):
            bias_grad = bias_grad.detach().reshape(-1, 1).contiguous().numpy()
            self._kernel_update(name, param, rows, grad, bias_name, bias.detach().view(-1, 1).numpy(), bias_grad)
            return
        self._tensor_update(name, param, rows, grad, param_rows)
        self._tensor_update(bias_name, bias, rows[: bias_grad.shape[0]], bias_grad)

    def _kernel_update(self, name, param, rows, grad, bias_name, bias_np, bias_grad_np) -> None:
        count = rows.shape[0]
        grad = grad.detach().reshape(count, -1).contiguous()
        bias_state = self.state[bias_name].numpy() if bias_name is not None else np.empty((0, 2), dtype=bias_np.dtype)
        kernels.adagrad_momentum_rows(
            param.detach().view(param.shape[0], -1).numpy(),
            self.state[name].numpy(),
            rows.numpy(),
            grad.numpy(),
            bias_np,
            bias_state,
            bias_grad_np,
            self._first_entry_scratch(param.shape[0]),
            *self._scalars(param),
        )

    def _tensor_update(
        self, name: str, param: Tensor, rows: Tensor, grad: Tensor, param_rows: Tensor | None = None
    ) -> None:
        state = self.state[name]
        count = rows.shape[0]
        first = self.first_entries(param, rows)
        summed = torch.zeros_like(grad).index_add_(0, first, grad).index_select(0, first).reshape(count, -1)
        state_rows = state.index_select(0, rows)
        width = summed.shape[1]
        acc, mom = state_rows[:, :width], state_rows[:, width:]
        acc.addcmul_(summed, summed)
        inv_root = acc.add(self.eps).rsqrt_()
        change = mom.mul_(self.momentum).addcmul_(summed, inv_root, value=-self.learning_rate)
        state.index_copy_(0, rows, state_rows)
        if param_rows is None:
            param_rows = param.index_select(0, rows)
        param.index_copy_(0, rows, param_rows.add(change.view_as(param_rows)))

    def first_entries(self, param: Tensor, rows: Tensor) -> Tensor:
        """For each entry of ``rows``, the position of the first entry with the same row."""
        count = rows.shape[0]
        if self._positions.shape[0] < count or self._positions.device != rows.device:
            self._positions = torch.arange(max(count, 2 * self._positions.shape[0]), device=rows.device)
        key = (param.shape[0], str(rows.device))
        table = self._first_entry.get(key)
        if table is None:  # entries not written this step are never read: no reset needed
            table = self._first_entry[key] = torch.zeros(param.shape[0], dtype=torch.int64, device=rows.device)
        table.scatter_reduce_(0, rows, self._positions[:count], "amin", include_self=False)
        return table.index_select(0, rows)

    def _scalars(self, param: Tensor) -> tuple:
        """Learning rate, momentum and eps as numpy scalars of the parameter's dtype (for the kernels)."""
        dtype = param.detach().numpy().dtype.type
        return dtype(self.learning_rate), dtype(self.momentum), dtype(self.eps)

    def _first_entry_scratch(self, n_rows: int) -> np.ndarray:
        """A -1-filled table with one entry per parameter row (the kernels leave it as they found it)."""
        key = (n_rows, "kernel")
        table = self._first_entry.get(key)
        if table is None:
            table = self._first_entry[key] = torch.full((n_rows,), -1, dtype=torch.int64)
        return table.numpy()

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {name: tensor.detach().cpu() for name, tensor in self.state.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, tensor in state.items():
            if name not in self.state or self.state[name].shape != tensor.shape:
                raise PipelineError(f"optimizer state {name!r} of the checkpoint does not match the model")
            self.state[name].copy_(tensor)
