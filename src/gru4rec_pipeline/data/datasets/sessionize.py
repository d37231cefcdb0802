"""What the data sets' scripts do before the common protocol: pick event types, order rows, cut sessions.

- :func:`event_mask` / :func:`event_counts`: rows of one event type, and the rows of each type, of a
  (dictionary-encoded) string column;
- :func:`script_order`: the order of ``DataFrame.sort_values([group, time, item])`` over integer keys;
- :func:`distinct_count`: distinct integers, for the raw files' counts;
- :func:`cut_sessions`: numbers of sessions cut where the user (or the raw session) changes or two consecutive
  events are more than a gap apart, counted from 0 in row order as ``cumsum`` numbers them;
- :func:`first_entry`: the first step of ``stats.json``, what reading and sessionising kept of the raw rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gru4rec_pipeline.data.codes import codes_present, dense_codes
from gru4rec_pipeline.data.yoochoose import session_time_item_order


def _chunks(column: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def event_mask(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """Rows whose value is ``name`` (missing values are not)."""
    parts = []
    for chunk in _chunks(column):
        if pa.types.is_dictionary(chunk.type):
            codes = np.flatnonzero(chunk.dictionary.to_numpy(zero_copy_only=False) == name)
            indices = chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            parts.append(np.isin(indices, codes))
        else:
            parts.append(pc.fill_null(pc.equal(chunk, name), False).to_numpy(zero_copy_only=False))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def event_counts(column: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    """Rows of each value (missing values under ``""``), most frequent first."""
    counts: dict[str, int] = {}
    for chunk in _chunks(column):
        if pa.types.is_dictionary(chunk.type):
            chunk = chunk.cast(pa.string())
        for entry in pc.value_counts(chunk).to_pylist():
            key = "" if entry["values"] is None else entry["values"]
            counts[key] = counts.get(key, 0) + entry["counts"]
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def script_order(groups: np.ndarray, ticks: np.ndarray, items: np.ndarray) -> np.ndarray | None:
    """The permutation sorting rows by group, time, item (``DataFrame.sort_values`` over the three), or None when
    sorted. Rows equal in all three may come in any order: they differ only in columns the scripts drop.

    One packed (group, time) key and a sort of the few tied runs by item (``yoochoose.session_time_item_order``),
    not a three-key lexsort.
    """
    return session_time_item_order(groups, ticks, items)


def distinct_count(values: np.ndarray) -> int:
    """The number of distinct integers in ``values``."""
    if len(values) == 0:
        return 0
    low, high = int(values.min()), int(values.max())
    if high - low <= 8 * len(values):
        return int(np.count_nonzero(np.bincount(values - low)))
    ordered = np.sort(values)
    return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1


def cut_sessions(groups: np.ndarray, ticks: np.ndarray, gap: int) -> np.ndarray:
    """Session numbers of rows sorted by group, then time: a new session where the group changes or the time
    advances by more than ``gap``; the first row's session is 0."""
    sessions = np.zeros(len(ticks), dtype=np.int64)
    if len(ticks) > 1:
        new = groups[1:] != groups[:-1]
        new |= (ticks[1:] - ticks[:-1]) > gap
        np.cumsum(new, out=sessions[1:])
    return sessions


def first_entry(step: str, session_ids: np.ndarray, n_read: int) -> dict:
    """The first step of ``stats.json``: the events the protocol starts from, and the raw rows left out."""
    codes, n = dense_codes(session_ids)
    sessions = int(np.count_nonzero(codes_present(codes, n, np.ones(len(codes), dtype=bool))))
    return {
        "step": step,
        "events": int(len(session_ids)),
        "sessions": sessions,
        "raw_rows_left_out": n_read - len(codes),
    }
