"""Compiled CPU kernels of the shared-memory exchange (``shared_memory``): the Adagrad-momentum update of the
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
    param, state, rows, grad_slots, bias, bias_state, bias_grad_slots, n_bias, first_entry, next_entry, owner,
    world, learning_rate, momentum, eps,
):  # fmt: skip
    """``adagrad_momentum_rows`` for the rows one process of ``world`` owns (``row % world == owner``), with each
    entry's gradient the sum of the processes' ``grad_slots`` [world, >= m, k] (``bias_grad_slots`` [world,
    >= n_bias]; ``n_bias`` <= m entries have a bias gradient). The slots are read, never written (the other
    processes read them too); ``next_entry`` [>= m] is this process's scratch. Every row belongs to one process
    only, so the processes update disjoint rows of shared tables.

    Why two passes: the first chains each owned row's entries (``next_entry``); the second sums a row's gradient
    in a buffer of one row and updates the row at once, so that no block of summed gradients is written and read
    back (a step's update share measured about 15% shorter so, bench/README.md). The sums run in entry order,
    each entry's slots in slot order."""
    count = rows.shape[0]
    width = param.shape[1]
    n_slots = grad_slots.shape[0]
    heads = np.empty(count, dtype=np.int64)  # the first entry of each owned row, in entry order
    tails = np.empty(count, dtype=np.int64)  # the last entry so far of the chain of heads[j]
    n_heads = 0
    for i in range(count):
        row = rows[i]
        if row % world != owner:
            continue
        next_entry[i] = -1
        head = first_entry[row]  # scratch: here the row's index into heads
        if head < 0:
            first_entry[row] = n_heads
            heads[n_heads] = i
            tails[n_heads] = i
            n_heads += 1
        else:
            next_entry[tails[head]] = i
            tails[head] = i
    grad = np.empty((1, width), dtype=param.dtype)  # one row's summed gradient
    zero = param.dtype.type(0)
    for j in range(n_heads):
        if j + ROWS_AHEAD < n_heads:
            _prefetch_row(param, rows[heads[j + ROWS_AHEAD]])
            _prefetch_row(state, rows[heads[j + ROWS_AHEAD]])
        entry = heads[j]
        row = rows[entry]
        first_entry[row] = -1
        has_bias = entry < n_bias
        for k in range(width):
            grad[0, k] = grad_slots[0, entry, k]
        for s in range(1, n_slots):
            for k in range(width):
                grad[0, k] += grad_slots[s, entry, k]
        bias_grad = zero
        if has_bias:
            for s in range(n_slots):
                bias_grad += bias_grad_slots[s, entry]
        entry = next_entry[entry]
        while entry >= 0:
            for s in range(n_slots):
                for k in range(width):
                    grad[0, k] += grad_slots[s, entry, k]
            if entry < n_bias:
                for s in range(n_slots):
                    bias_grad += bias_grad_slots[s, entry]
            entry = next_entry[entry]
        update_row(param, state, row, grad, 0, learning_rate, momentum, eps)
        if has_bias:
            update_bias(bias, bias_state, row, bias_grad, learning_rate, momentum, eps)


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
        np.empty(3, np.int64), 0, 2, *scalars,
    )  # fmt: skip
    adagrad_momentum_dense_slice(table.reshape(-1), state.reshape(2, -1), np.ones((2, 6), f32), 0, 3, *scalars)
