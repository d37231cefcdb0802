"""What the data sets' scripts do before the common protocol: order rows, cut sessions.

- :func:`sort_by_group_time`: rows in the order of ``DataFrame.sort_values([group, time])`` over integer keys
  (ties in file order), by sorting one packed 64-bit key rather than a multi-key sort, in the arrays' own memory;
- :func:`sort_packed`: rows sorted by several integer columns at once when one 64-bit key holds them all;
- :func:`sort_ties_by_item`: then, within runs of equal group and time, the rows ordered by item (the scripts'
  third sort key), in place; such runs are few, so this sorts only them;
- :func:`cut_sessions`: numbers of sessions cut where the user (or the raw session) changes or two consecutive
  events are more than a gap apart, counted from 0 in row order as ``cumsum`` numbers them;
- :func:`first_entry`: the first step of ``stats.json``, what reading and sessionising kept of the raw rows.
"""

from __future__ import annotations

import numpy as np

from gru4rec_pipeline.data.datasets.arrays import blocks, neighbours

UINT64_BITS = 64


def bit_width(span: int) -> int:
    """Bits that hold the integers 0 .. span."""
    return max(int(span).bit_length(), 1)


def put_bits(key: np.ndarray, part: np.ndarray, low: int, shift: int) -> None:
    """``key |= (part - low) << shift``, block by block (small temporaries)."""
    for block in blocks(len(key)):
        piece = part[block].astype(np.int64)
        if low:
            piece -= low
        piece = piece.view(np.uint64)
        if shift:
            piece <<= np.uint64(shift)
        key[block] |= piece


def take_bits(key: np.ndarray, shift: int, bits: int, low: int, out: np.ndarray) -> None:
    """``out = ((key >> shift) & (2**bits - 1)) + low``, block by block."""
    for block in blocks(len(key)):
        piece = key[block] >> np.uint64(shift)
        piece &= np.uint64((1 << bits) - 1)
        piece = piece.view(np.int64)
        if low:
            piece += low
        out[block] = piece


def _row_numbers_into(key: np.ndarray) -> None:
    for block in blocks(len(key)):
        key[block] |= np.arange(block.start, block.stop, dtype=np.uint64)


def is_group_time_sorted(groups: np.ndarray, ticks: np.ndarray) -> bool:
    """Whether rows are sorted by group, then time."""
    for here, after in neighbours(len(ticks)):
        later = groups[after] > groups[here]
        if not (later | ((groups[after] == groups[here]) & (ticks[after] >= ticks[here]))).all():
            return False
    return True


def _non_decreasing(values: np.ndarray) -> bool:
    return not any((values[after] < values[here]).any() for here, after in neighbours(len(values)))


def permute(order: np.ndarray, columns: list[np.ndarray]) -> list[np.ndarray]:
    """``column[order]`` for each column, each written into the memory of the column permuted before it (the
    widest first), so that one new buffer serves them all: the columns passed in must not be used afterwards."""
    n = len(order)
    permuted: list[np.ndarray | None] = [None] * len(columns)
    spare = np.empty(0, dtype=np.uint8)
    for i in sorted(range(len(columns)), key=lambda i: -columns[i].itemsize):
        column = columns[i]
        size = n * column.itemsize
        if spare.nbytes < size:
            spare = np.empty(size, dtype=np.uint8)
        permuted[i] = spare[:size].view(column.dtype)
        # mode="clip": with the default mode numpy writes to a temporary as large as the column, then copies.
        np.take(column, order, out=permuted[i], mode="clip")
        spare = np.ascontiguousarray(column).view(np.uint8)
    return permuted


def sort_by_group_time(groups: np.ndarray, ticks: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """(groups, ticks, *others) with the rows ordered by group, then time, rows equal in both in file order
    (integer groups and ticks), as ``DataFrame.sort_values([group, time], kind="stable")``. The arrays' memory is
    reused: those passed in must not be used afterwards.

    Packs (group, time, row number) into one 64-bit key and sorts it (values, not an argsort); the group and the
    time are read back from the sorted key, the other columns follow the row numbers. When the file is in time
    order the row number stands for the time: (group, row number) suffices. When neither fits in 64 bits, a
    stable argsort of (group, time).
    """
    n = len(ticks)
    if n < 2 or is_group_time_sorted(groups, ticks):
        return [groups, ticks, *others]
    group_low, group_bits = int(groups.min()), bit_width(int(groups.max()) - int(groups.min()))
    tick_low, tick_bits = int(ticks.min()), bit_width(int(ticks.max()) - int(ticks.min()))
    row_bits = bit_width(n - 1)
    time_bits = 0 if _non_decreasing(ticks) else tick_bits
    if group_bits + time_bits + row_bits <= UINT64_BITS:
        key = np.zeros(n, dtype=np.uint64)
        put_bits(key, groups, group_low, time_bits + row_bits)
        if time_bits:
            put_bits(key, ticks, tick_low, row_bits)
        _row_numbers_into(key)
        key.sort()
        take_bits(key, time_bits + row_bits, group_bits, group_low, out=groups)
        if time_bits:
            take_bits(key, row_bits, time_bits, tick_low, out=ticks)
        key &= np.uint64((1 << row_bits) - 1)
        rest = permute(key.view(np.int64), list(others) if time_bits else [ticks, *others])
        return [groups, ticks, *rest] if time_bits else [groups, *rest]
    if group_bits + tick_bits <= UINT64_BITS:
        key = np.zeros(n, dtype=np.uint64)
        put_bits(key, groups, group_low, tick_bits)
        put_bits(key, ticks, tick_low, 0)
        order = np.argsort(key, kind="stable")
        del key
    else:
        order = np.lexsort((ticks, groups))
    return permute(order, [groups, ticks, *others])


def sort_packed(columns: list[np.ndarray]) -> bool:
    """Sort the rows by the integer columns, the first one first, when their spans fit in one 64-bit key together:
    the key is sorted and the columns written back from it, in place. False (nothing done) when they do not fit."""
    lows = [int(column.min()) if len(column) else 0 for column in columns]
    widths = [bit_width(int(column.max()) - low) if len(column) else 1 for column, low in zip(columns, lows)]
    if sum(widths) > UINT64_BITS:
        return False
    shifts = [sum(widths[i + 1 :]) for i in range(len(widths))]
    key = np.zeros(len(columns[0]), dtype=np.uint64)
    for column, low, shift in zip(columns, lows, shifts):
        put_bits(key, column, low, shift)
    key.sort()
    for column, low, width, shift in zip(columns, lows, widths, shifts):
        take_bits(key, shift, width, low, out=column)
    return True


def sort_ties_by_item(groups: np.ndarray, ticks: np.ndarray, items: np.ndarray, *others: np.ndarray) -> None:
    """Rows sorted by group, then time: order each run of equal (group, time) by item, in place (``items`` and
    ``others`` permuted alike). Rows equal in all three may come in any order: they differ only in columns the
    scripts drop."""
    if len(ticks) < 2:
        return
    same = groups[1:] == groups[:-1]
    same &= ticks[1:] == ticks[:-1]
    if not same.any():
        return
    tied = np.flatnonzero(np.concatenate([[False], same]) | np.concatenate([same, [False]]))
    del same
    # Equal (group, time) rows are adjacent: a run starts where the key changes from the tied row before.
    starts = np.ones(len(tied), dtype=bool)
    starts[1:] = groups[tied[1:]] != groups[tied[:-1]]
    starts[1:] |= ticks[tied[1:]] != ticks[tied[:-1]]
    run = np.cumsum(starts)
    within = tied[np.lexsort((items[tied], run))]
    if np.array_equal(within, tied):
        return
    for column in (items, *others):
        column[tied] = column[within]


def cut_sessions(groups: np.ndarray, ticks: np.ndarray, gap: int) -> np.ndarray:
    """Session numbers of rows sorted by group, then time: a new session where the group changes or the time
    advances by more than ``gap``; the first row's session is 0. Written over ``groups`` (int32 while the numbers
    fit), which must not be used afterwards."""
    n = len(ticks)
    new = np.zeros(n, dtype=bool)
    for here, after in neighbours(n):
        flags = groups[after] != groups[here]
        flags |= (ticks[after] - ticks[here]) > gap
        new[after] = flags
    dtype = np.int32 if n < 2**31 else np.int64
    sessions = groups.view(dtype)[:n] if groups.itemsize >= np.dtype(dtype).itemsize else np.empty(n, dtype=dtype)
    np.cumsum(new, out=sessions)
    return sessions


def session_count(session_ids: np.ndarray) -> int:
    """Sessions among rows sorted by session."""
    return int(np.count_nonzero(session_ids[1:] != session_ids[:-1])) + 1 if len(session_ids) else 0


def first_entry(step: str, session_ids: np.ndarray, n_read: int) -> dict:
    """The first step of ``stats.json``: the events the protocol starts from (sorted by session), and the raw
    rows left out."""
    return {
        "step": step,
        "events": int(len(session_ids)),
        "sessions": session_count(session_ids),
        "raw_rows_left_out": n_read - len(session_ids),
    }
