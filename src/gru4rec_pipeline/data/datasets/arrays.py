"""Row-level array work of the data sets' preprocessing, in blocks and in place.

Whole-column numpy calls allocate whole-column temporaries (an int32 index becomes an int64 one inside
``np.bincount`` and fancy indexing), and fresh memory is not free: the first write to each page costs a page
fault. So the columns are worked through in blocks of ``BLOCK_ROWS`` rows and compacted in place. These are the
light counterparts of ``data/codes.py``'s helpers, without its pandas import (the split stage of a data set
imports neither pandas nor the modules that do).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

BLOCK_ROWS = 1 << 18
# Ids spanning at most this many times their count are ranked through a table of the span (no sort, no hashing).
COMPACT_SPAN_FACTOR = 8


def blocks(n: int) -> Iterator[slice]:
    """Slices of ``n`` rows, ``BLOCK_ROWS`` at a time."""
    return (slice(start, min(start + BLOCK_ROWS, n)) for start in range(0, n, BLOCK_ROWS))


def neighbours(n: int) -> Iterator[tuple[slice, slice]]:
    """(rows, the rows after them) of ``n`` rows, block by block: slices of equal lengths."""
    for start in range(0, max(n - 1, 0), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n - 1)
        yield slice(start, stop), slice(start + 1, stop + 1)


def compress_in_place(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values[rows]`` written over the start of ``values`` itself; returns that start (a view)."""
    at = 0
    for block in blocks(len(values)):
        kept = values[block][rows[block]]
        values[at : at + len(kept)] = kept
        at += len(kept)
    return values[:at]


def count_codes(codes: np.ndarray, n_codes: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Occurrences of each code 0 .. n_codes-1 (among ``rows`` when given), as int64."""
    counts = np.zeros(n_codes, dtype=np.int64)
    for block in blocks(len(codes)):
        selected = codes[block] if rows is None else codes[block][rows[block]]
        counts += np.bincount(selected, minlength=n_codes)
    return counts


def lookup(flags: np.ndarray, codes: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """``flags[codes]`` (and ``rows``) for a per-code boolean table."""
    out = np.empty(len(codes), dtype=bool)
    for block in blocks(len(codes)):
        np.take(flags, codes[block], out=out[block], mode="clip")
        if rows is not None:
            out[block] &= rows[block]
    return out


def run_starts(values: np.ndarray) -> np.ndarray:
    """The first row of each run of equal values."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.ones(len(values), dtype=bool)
    for here, after in neighbours(len(values)):
        np.not_equal(values[after], values[here], out=new[after])
    return np.flatnonzero(new)


def starts_of(lengths: np.ndarray) -> np.ndarray:
    """The first row of each run of ``lengths`` rows, runs one after the other."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return starts


def rows_of_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The row numbers of the ranges [start, start + length), in order."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    offsets += np.arange(total)
    return offsets


def runs_with(rows: np.ndarray, first_rows: np.ndarray) -> int:
    """How many runs (starting at ``first_rows``, sorted, covering every row) hold at least one of ``rows``."""
    if len(first_rows) == 0:
        return 0
    return int(np.count_nonzero(np.logical_or.reduceat(rows, first_rows)))


def is_compact(low: int, high: int, n: int) -> bool:
    return high - low < COMPACT_SPAN_FACTOR * n + 1024


def dense_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each value's rank among the distinct values, int32; the distinct values in increasing order)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int32), values[:0].copy()
    low, high = int(values.min()), int(values.max())
    if not is_compact(low, high, len(values)):
        distinct, ranks = np.unique(values, return_inverse=True)
        return ranks.astype(np.int32), distinct
    present = np.zeros(high - low + 1, dtype=bool)
    for block in blocks(len(values)):
        present[values[block] - low] = True
    rank_of = np.cumsum(present, dtype=np.int32)
    rank_of -= 1
    ranks = np.empty(len(values), dtype=np.int32)
    for block in blocks(len(values)):
        np.take(rank_of, values[block] - low, out=ranks[block], mode="clip")
    return ranks, (np.flatnonzero(present) + low).astype(values.dtype)
