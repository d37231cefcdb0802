"""Compiled CPU kernels of the shared-memory exchange (``shared_exchange``): the Adagrad-momentum update of the
part of the weights one process owns, with each gradient summed over the processes' slots.

The arithmetic is ``kernels``' (``_adagrad_momentum``); tests/test_kernels.py checks that every process's share
together equals one update of the summed gradients.
"""

from __future__ import annotations

import numpy as np

from gru4rec_pipeline.model.kernels import (
    AVAILABLE,
    COMPILE_OPTIONS,
    ROWS_AHEAD,
    _adagrad_momentum,
    _prefetch_row,
    njit,
    update_bias,
    update_row,
)


@njit(**COMPILE_OPTIONS)
def adagrad_momentum_owned_rows(
    param, state, rows, grad_slots, bias, bias_state, bias_grad_slots, n_bias, first_entry, summed, owner, world,
    learning_rate, momentum, eps,
):  # fmt: skip
    """``adagrad_momentum_rows`` for the rows one process of ``world`` owns (``row % world == owner``), with each
    entry's gradient the sum of the processes' ``grad_slots`` [world, >= m, k] (``bias_grad_slots`` [world,
    >= n_bias]; ``n_bias`` <= m entries have a bias gradient). The slots are read, never written (the other
    processes read them too); ``summed`` [>= m, k] is this process's scratch. Every row belongs to one process
    only, so the processes update disjoint rows of shared tables."""
    count = rows.shape[0]
    width = param.shape[1]
    n_slots = grad_slots.shape[0]
    owned = np.empty(count, dtype=np.int64)  # the first entry of each owned row, in entry order
    n_owned = 0
    bias_sum = np.zeros(count, dtype=summed.dtype)
    for i in range(count):
        row = rows[i]
        if row % world != owner:
            continue
        first = first_entry[row]
        if first < 0:
            first_entry[row] = i
            owned[n_owned] = i
            n_owned += 1
            for k in range(width):
                summed[i, k] = grad_slots[0, i, k]
            first = i
            start = 1
        else:
            start = 0
        for s in range(start, n_slots):
            for k in range(width):
                summed[first, k] += grad_slots[s, i, k]
        if i < n_bias:
            for s in range(n_slots):
                bias_sum[first] += bias_grad_slots[s, i]
    for j in range(n_owned):
        first_entry[rows[owned[j]]] = -1
    for j in range(n_owned):
        if j + ROWS_AHEAD < n_owned:
            _prefetch_row(param, rows[owned[j + ROWS_AHEAD]])
            _prefetch_row(state, rows[owned[j + ROWS_AHEAD]])
        i = owned[j]
        row = rows[i]
        update_row(param, state, row, summed, i, learning_rate, momentum, eps)
        if i < n_bias:
            update_bias(bias, bias_state, row, bias_sum[i], learning_rate, momentum, eps)


@njit(**COMPILE_OPTIONS)
def adagrad_momentum_dense_slice(param, state, grad_slots, start, stop, learning_rate, momentum, eps):
    """``adagrad_momentum_dense`` on ``param[start:stop]`` with the gradient the sum of ``grad_slots`` [world,
    k] (in slot order, so that every process would compute the same sum)."""
    grads = grad_slots[0, start:stop].copy()
    for s in range(1, grad_slots.shape[0]):
        grads += grad_slots[s, start:stop]
    values, acc, velocity = param[start:stop], state[0, start:stop], state[1, start:stop]
    for k in range(stop - start):
        acc[k], velocity[k] = _adagrad_momentum(acc[k], velocity[k], grads[k], learning_rate, momentum, eps)
        values[k] += velocity[k]


def warm_up() -> None:
    """Compile (or load from the cache) both kernels for float32 before the first step is timed."""
    if not AVAILABLE:
        return
    f32 = np.float32
    rows = np.array([1, 0, 1], dtype=np.int64)
    table, state = np.zeros((2, 3), dtype=f32), np.zeros((2, 6), dtype=f32)
    bias, bias_state = np.zeros((2, 1), dtype=f32), np.zeros((2, 2), dtype=f32)
    first_entry = np.full(2, -1, dtype=np.int64)
    scalars = (f32(0.1), f32(0.1), f32(1e-6))
    adagrad_momentum_owned_rows(
        table, state, rows, np.ones((2, 3, 3), f32), bias, bias_state, np.ones((2, 3), f32), 2, first_entry,
        np.zeros((3, 3), f32), 0, 2, *scalars,
    )  # fmt: skip
    adagrad_momentum_dense_slice(table.reshape(-1), state.reshape(2, -1), np.ones((2, 6), f32), 0, 3, *scalars)
