"""Compiled helpers shared by the session-kNN scorers (``knn`` and its session-rec tie order, ``knn_session_rec``):
the position weight of a session's click, the decay by distance in a neighbour, and the merge of recency ranks."""

from __future__ import annotations

import numpy as np

from gru4rec_pipeline.compiled import COMPILE_OPTIONS, njit


@njit(**COMPILE_OPTIONS)
def position_weight(mode: int, position: float, length: float) -> float:
    if mode == 0:
        return 1.0
    if mode == 1:
        return position / length
    if mode == 2:
        return 1.0 / np.log10(length - position + 1.7)
    return (position / length) ** 2


@njit(**COMPILE_OPTIONS)
def distance_decay(mode: int, distance: float) -> float:
    if mode == 0:
        return 1.0
    if mode == 1:
        return 1.0 / distance
    if mode == 2:
        return 1.0 / np.log10(distance + 1.7)
    return 1.0 / (distance * distance)


@njit(**COMPILE_OPTIONS)
def merge_recent(sample, n_sample, postings, limit):
    """Union of two ascending rank lists (``sample[:n_sample]`` and ``postings``), first ``limit``."""
    merged = np.empty(min(n_sample + len(postings), limit), dtype=np.int64)
    a = b = m = 0
    while m < len(merged) and (a < n_sample or b < len(postings)):
        if b >= len(postings) or (a < n_sample and sample[a] < postings[b]):
            value = sample[a]
            a += 1
        elif a >= n_sample or postings[b] < sample[a]:
            value = postings[b]
            b += 1
        else:
            value = sample[a]
            a += 1
            b += 1
        merged[m] = value
        m += 1
    sample[:m] = merged[:m]
    return m
