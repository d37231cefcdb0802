"""The GRU4Rec authors' 2023 preprocessing, after a data set's own reading: one protocol for every set.

The comparison of GRU4Rec implementations (hidasib/gru4rec_third_party_comparison, ``*_preproc.py``)
prepares every data set the same way once its events are sessions in the script's row order (which each
set's module produces, see :class:`SessionEvents`):

1. an event repeating the item of the event before it in the same session is dropped (once);
2. sessions shorter than ``min_session_length`` (2) and items with fewer than ``min_item_support`` (5)
   events are dropped in turn, round after round, until a round removes nothing;
3. with ``tsplit`` the set's split time (a fixed date, or the latest time left) and ``period`` its test
   period (a day, or a week): ``test`` holds the sessions that BEGIN at or after ``tsplit - period`` (all
   of their events), ``train_full`` the events before ``tsplit - period``, less the sessions left shorter
   than ``min_session_length``;
4. ``train_tr`` / ``valid``: the same one period earlier, from ``train_full``: ``train_tr`` its events
   before ``tsplit - 2 period`` (short sessions dropped again), ``valid`` its sessions that began (in the
   filtered data) at or after ``tsplit - 2 period``.

Times stay integers in the raw file's unit (seconds or milliseconds) until the split files are written,
so a comparison with the boundary is exact; the files hold float seconds (milliseconds survive). What
every step kept and removed goes to ``stats.json`` (``steps``), each filter round on its own.

The filter rounds keep per-session and per-item counts and subtract what each step removes: a session step
visits only the rows of the sessions it drops (a session's rows are adjacent), an item step one lookup per row;
the columns are compacted in place (``arrays.py``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from gru4rec_pipeline.data.datasets.arrays import (
    blocks,
    compress_in_place,
    count_codes,
    is_compact,
    lookup,
    neighbours,
    rows_of_ranges,
    run_starts,
    runs_with,
    starts_of,
)
from gru4rec_pipeline.errors import ConfigError

# The settings a run may change, with the authors' values.
AUTHORS_PROTOCOL_DEFAULTS = {"min_session_length": 2, "min_item_support": 5}


@dataclasses.dataclass(frozen=True)
class SplitRule:
    """Where a set's test period ends (``split_time``, epoch seconds; None: at the latest event left after
    the filters) and how long it is (``period_seconds``; the validation period is as long)."""

    period_seconds: int
    split_time: int | None = None


@dataclasses.dataclass
class SessionEvents:
    """A set's events as its script leaves them before deduplication: sessions, in the script's row order.

    ``session_ids`` (the script's session numbers, non-decreasing), ``item_ids``, ``ticks`` (integer times in
    units of 1/``ticks_per_second`` s); rows sorted by session, then time, then the script's item order.
    ``item_values``: when given, ``item_ids`` are codes 0 .. n-1 and the files hold ``item_values[code]``.
    ``steps``: what reading and sessionising kept and removed (the first entries of ``stats.json``'s steps);
    ``raw``: counts of the raw files; ``item_names``: for a set whose items are strings, the string (as bytes)
    of each item id.
    """

    session_ids: np.ndarray
    item_ids: np.ndarray
    ticks: np.ndarray
    ticks_per_second: int
    steps: list[dict]
    raw: dict
    sources: list[str]
    item_names: pa.Array | None = None
    item_values: np.ndarray | None = None

    def release(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(session_ids, item_ids, ticks), handed over: this object no longer holds them."""
        arrays = self.session_ids, self.item_ids, self.ticks
        self.session_ids = self.item_ids = self.ticks = None
        return arrays


def settings_with_defaults(settings: dict) -> dict:
    unknown = set(settings) - set(AUTHORS_PROTOCOL_DEFAULTS)
    if unknown:
        raise ConfigError(
            "protocol", f"unknown settings {sorted(unknown)}; expected {sorted(AUTHORS_PROTOCOL_DEFAULTS)}"
        )
    merged = {**AUTHORS_PROTOCOL_DEFAULTS, **settings}
    for key, value in merged.items():
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ConfigError(f"protocol.{key}", f"expected a positive integer, got {value!r}")
    return {key: int(value) for key, value in merged.items()}


def is_script_order(session_ids: np.ndarray, ticks: np.ndarray) -> bool:
    """Whether rows are sorted by session, then time (the order the protocol needs)."""
    for here, after in neighbours(len(ticks)):
        later = session_ids[after] > session_ids[here]
        if not (later | ((session_ids[after] == session_ids[here]) & (ticks[after] >= ticks[here]))).all():
            return False
    return True


def item_codes(item_ids: np.ndarray, item_values: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(dense int32 code of each row's item, the item id written for each code); ``item_ids`` may be reused."""
    if item_values is not None:
        return item_ids.astype(np.int32, copy=False), item_values
    if len(item_ids) == 0:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    low, high = int(item_ids.min()), int(item_ids.max())
    if is_compact(low, high, len(item_ids)):
        if item_ids.dtype == np.int32:
            codes = item_ids
            codes -= np.int32(low)
        else:
            codes = np.empty(len(item_ids), dtype=np.int32)
            for block in blocks(len(item_ids)):
                np.subtract(item_ids[block], low, out=codes[block], casting="unsafe")
        return codes, np.arange(low, high + 1, dtype=np.int64)
    distinct, codes = np.unique(item_ids, return_inverse=True)
    return codes.astype(np.int32), distinct.astype(np.int64)


class Steps:
    """The entries of ``stats.json``'s steps: events and sessions left after each, and for a step that removes
    rows what it removed relative to the entry before it."""

    def __init__(self, entries: list[dict]):
        self.entries = [dict(entry) for entry in entries]

    def record(self, step: str, events: int, sessions: int, removal: bool = True, **extra: int) -> None:
        entry = {"step": step, "events": int(events), "sessions": int(sessions)}
        if removal and self.entries:
            before = self.entries[-1]
            entry["removed_events"] = before["events"] - entry["events"]
            entry["removed_sessions"] = before["sessions"] - entry["sessions"]
        self.entries.append({**entry, **extra})


@dataclasses.dataclass
class FilteredEvents:
    """The rows the filter rounds left, sorted by session: each row's session index (0 .. sessions-1, dense,
    non-decreasing) and item code, its ticks; each session's script number, first row and length."""

    session_index: np.ndarray
    item_codes: np.ndarray
    ticks: np.ndarray
    session_numbers: np.ndarray
    first_rows: np.ndarray
    lengths: np.ndarray
    n_items: int


def filter_rounds(events: SessionEvents, steps: Steps, settings: dict) -> tuple[FilteredEvents, np.ndarray, dict]:
    """Steps 1 and 2: drop repeated items, then short sessions and rare items round after round.

    Takes the events' arrays over (``events`` is left without them) and works in place, so memory holds the
    columns once. Returns the rows left, the item id of each item code, and the counts of the protocol's input.
    """
    min_length, min_support = settings["min_session_length"], settings["min_item_support"]
    session_ids, item_ids, ticks = events.release()
    codes, item_values = item_codes(item_ids, events.item_values)
    del item_ids
    n, n_items = len(ticks), len(item_values)
    keep = np.ones(n, dtype=bool)
    np.not_equal(session_ids[1:], session_ids[:-1], out=keep[1:])
    session_numbers = session_ids[keep]
    n_sessions = len(session_numbers)
    # The session ids become the rows' session indices 0 .. sessions-1, in place.
    index = session_ids
    del session_ids
    np.cumsum(keep, dtype=index.dtype, out=index)
    index -= 1
    inputs = {"events": n, "sessions": n_sessions, "items": int(np.count_nonzero(count_codes(codes, n_items)))}
    if not steps.entries:
        steps.record("input events", n, n_sessions)
    keep[1:] |= codes[1:] != codes[:-1]
    index, codes, ticks = (compress_in_place(column, keep) for column in (index, codes, ticks))
    steps.record("an event repeating the item of the event before it in its session dropped", len(index),
                 n_sessions)  # fmt: skip
    first_rows = run_starts(index)
    full_lengths = np.diff(first_rows, append=len(index)).astype(np.int32)
    sizes = full_lengths.copy()
    support = count_codes(codes, n_items)
    keep = np.ones(len(index), dtype=bool)
    events_left, rounds, before = len(index), 0, -1
    while before != events_left:
        before = events_left
        rounds += 1
        short = (sizes > 0) & (sizes < min_length)
        if short.any():
            # A session's rows are adjacent: only the dropped sessions' rows are visited.
            rows = rows_of_ranges(first_rows[short], full_lengths[short])
            rows = rows[keep[rows]]
            keep[rows] = False
            sizes[short] = 0
            np.subtract.at(support, codes[rows], support.dtype.type(1))
            events_left -= len(rows)
        steps.record(f"filter round {rounds}: sessions shorter than min_session_length={min_length}", events_left,
                     np.count_nonzero(sizes))  # fmt: skip
        rare = (support > 0) & (support < min_support)
        removed_items = int(np.count_nonzero(rare))
        if removed_items:
            rows = np.flatnonzero(lookup(rare, codes, keep))
            keep[rows] = False
            support[rare] = 0
            np.subtract.at(sizes, index[rows], sizes.dtype.type(1))
            events_left -= len(rows)
        steps.record(f"filter round {rounds}: items with fewer than min_item_support={min_support} events",
                     events_left, np.count_nonzero(sizes), removed_items=removed_items)  # fmt: skip
    # The rows left, in arrays of their own size: the read's full-size arrays are given back one by one.
    index = compress_in_place(index, keep).copy()
    codes = compress_in_place(codes, keep).copy()
    ticks = compress_in_place(ticks, keep).copy()
    del keep
    # Dense session indices again, over the sessions left.
    left = sizes > 0
    renumber = np.cumsum(left, dtype=index.dtype)
    renumber -= 1
    for block in blocks(len(index)):
        index[block] = renumber[index[block]]
    lengths = sizes[left]
    filtered = FilteredEvents(index, codes, ticks, session_numbers[left], starts_of(lengths), lengths, n_items)
    del sizes, full_lengths, first_rows, support
    return filtered, item_values, inputs


def split_masks(filtered: FilteredEvents, steps: Steps, rule: SplitRule, ticks_per_second: int, min_length: int):
    """Steps 3 and 4: masks of the four splits over the filtered rows, and the split time (in ticks)."""
    ticks, first_rows, lengths = filtered.ticks, filtered.first_rows, filtered.lengths
    start = ticks[first_rows]
    period = rule.period_seconds * ticks_per_second
    if rule.split_time is None:
        split = int(ticks.max()) if len(ticks) else 0
    else:
        split = rule.split_time * ticks_per_second
    boundary = split - period
    test_sessions = start >= boundary
    test = np.repeat(test_sessions, lengths)
    steps.record(f"sessions beginning at or after the split time - {rule.period_seconds} s -> test",
                 lengths[test_sessions].sum(), np.count_nonzero(test_sessions), removal=False)  # fmt: skip

    def before(rows: np.ndarray | None, limit: int, name: str) -> np.ndarray:
        early = ticks < limit
        if rows is not None:
            early &= rows
        counts = np.add.reduceat(early, first_rows, dtype=np.int64) if len(first_rows) else lengths
        label = f"events before the split time - {(split - limit) // ticks_per_second} s -> {name}"
        steps.record(label, counts.sum(), np.count_nonzero(counts), removal=False)
        long_enough = counts >= min_length
        early &= np.repeat(long_enough, lengths)
        steps.record(f"{name} sessions shorter than min_session_length={min_length}", counts[long_enough].sum(),
                     np.count_nonzero(long_enough))  # fmt: skip
        return early

    train_full = before(None, boundary, "train_full")
    train_tr = before(train_full, boundary - period, "train_tr")
    valid = train_full & np.repeat(start >= boundary - period, lengths)
    steps.record("train_full sessions beginning in the period before the test period -> valid",
                 np.count_nonzero(valid), runs_with(valid, first_rows), removal=False)  # fmt: skip
    return {"train_full": train_full, "test": test, "train_tr": train_tr, "valid": valid}, split


def split_counts(filtered: FilteredEvents, masks: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """Events, sessions and items of each split."""
    counts = {}
    for name, rows in masks.items():
        counts[name] = {
            "events": int(np.count_nonzero(rows)),
            "sessions": runs_with(rows, filtered.first_rows),
            "items": int(np.count_nonzero(count_codes(filtered.item_codes, filtered.n_items, rows))),
        }
    return counts
