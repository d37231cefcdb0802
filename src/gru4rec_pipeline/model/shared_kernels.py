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
    param, state, rows, grad_slots, bias, bias_state, bias_grad_slots, n_bias, scored_grads, n_scored, first_entry,
    summed, owner, world, learning_rate, momentum, eps,
):  # fmt: skip
    """``adagrad_momentum_rows`` for the rows one process of ``world`` owns (``row % world == owner``), with each
    entry's gradient the sum of the processes' ``grad_slots`` [world, >= m, k] (``bias_grad_slots`` [world,
    >= n_bias]; ``n_bias`` <= m entries have a bias gradient). The first ``n_scored`` entries take theirs from
    ``scored_grads`` instead, already summed: row j of it is the j-th owned entry below ``n_scored`` (as
    ``owned_score_columns`` lists them). The slots are read, never written (the other processes read them too);
    ``summed`` [>= m, k] is this process's scratch. Every row belongs to one process only, so the processes
    update disjoint rows of shared tables."""
    count = rows.shape[0]
    width = param.shape[1]
    n_slots = grad_slots.shape[0]
    owned = np.empty(count, dtype=np.int64)  # the first entry of each owned row, in entry order
    n_owned = 0
    scored = 0  # owned entries below n_scored so far
    bias_sum = np.zeros(count, dtype=summed.dtype)
    for i in range(count):
        row = rows[i]
        if row % world != owner:
            continue
        first = first_entry[row]
        fresh = first < 0
        if fresh:
            first_entry[row] = i
            owned[n_owned] = i
            n_owned += 1
            first = i
        if i < n_scored:
            if fresh:
                for k in range(width):
                    summed[i, k] = scored_grads[scored, k]
            else:
                for k in range(width):
                    summed[first, k] += scored_grads[scored, k]
            scored += 1
        else:
            start = 0
            if fresh:
                for k in range(width):
                    summed[i, k] = grad_slots[0, i, k]
                start = 1
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
def owned_score_columns(rows, n_candidates, score_slots, owner, world, columns):
    """The score gradients of the candidate entries (``i < n_candidates``) that ``owner`` owns, gathered:
    ``columns[s * L + l, j] = score_slots[s, l, e_j]`` for the j-th such entry e_j in entry order, from every
    process's slot ``score_slots`` [world, L, >= n_candidates]. Returns how many there are. Times the processes'
    outputs (``[world * L, k]``) this gives the owned rows' summed gradients."""
    owned = np.empty(n_candidates, dtype=np.int64)
    n_owned = 0
    for i in range(n_candidates):
        if rows[i] % world == owner:
            owned[n_owned] = i
            n_owned += 1
    lanes = score_slots.shape[1]
    for s in range(score_slots.shape[0]):
        for lane in range(lanes):
            source, target = score_slots[s, lane], columns[s * lanes + lane]
            for j in range(n_owned):
                target[j] = source[owned[j]]
    return n_owned


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
    """Compile (or load from the cache) the kernels for float32 before the first step is timed."""
    if not AVAILABLE:
        return
    f32 = np.float32
    rows = np.array([1, 0, 1], dtype=np.int64)
    table, state = np.zeros((2, 3), dtype=f32), np.zeros((2, 6), dtype=f32)
    bias, bias_state = np.zeros((2, 1), dtype=f32), np.zeros((2, 2), dtype=f32)
    first_entry = np.full(2, -1, dtype=np.int64)
    scalars = (f32(0.1), f32(0.1), f32(1e-6))
    adagrad_momentum_owned_rows(
        table, state, rows, np.ones((2, 3, 3), f32), bias, bias_state, np.ones((2, 3), f32), 2,
        np.ones((3, 3), f32), 2, first_entry, np.zeros((3, 3), f32), 0, 2, *scalars,
    )  # fmt: skip
    owned_score_columns(rows, 2, np.ones((2, 2, 3), f32), 0, 2, np.zeros((4, 3), f32))
    adagrad_momentum_dense_slice(table.reshape(-1), state.reshape(2, -1), np.ones((2, 6), f32), 0, 3, *scalars)
