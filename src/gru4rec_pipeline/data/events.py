"""Event tables (SessionId int64, ItemId int64, Time float64): checked arrays, order, Parquet files.

The format of ``clicks.parquet`` (its first three columns) and of the split files
``{train_full,test,train_tr,valid}.parquet``. Every stage that reads events goes through
:func:`read_events` / :func:`event_arrays`, so a wrong column or dtype is reported the same way
everywhere. Split files are sorted by SessionId then Time and written by :func:`write_splits`
(frames) or :func:`write_event_rows` (selected rows of sorted arrays, as the split stage does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gru4rec_pipeline.data.codes import CHUNK_ROWS
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_outputs

EVENT_COLUMNS = ("SessionId", "ItemId", "Time")
EVENT_SCHEMA = pa.schema([("SessionId", pa.int64()), ("ItemId", pa.int64()), ("Time", pa.float64())])
EXPECTED_COLUMNS = "expected SessionId int64, ItemId int64, Time float64"

# ----------------------------------------------------------------------------------------------
# Checked columns.


def events_from_table(table: pa.Table, source: str | Path = "<events>") -> pd.DataFrame:
    """SessionId, ItemId, Time of a pyarrow table (e.g. ``clicks.read_clicks``) as a DataFrame.

    Each column is copied out and then dropped from the local table, so when the caller holds
    no other reference the Arrow memory is released column by column rather than all at the end.
    """
    missing = [c for c in EVENT_COLUMNS if c not in table.column_names]
    if missing:
        raise DataFormatError(source, f"missing columns {missing}; {EXPECTED_COLUMNS}")
    table = table.select(list(EVENT_COLUMNS))
    columns = {}
    for name in EVENT_COLUMNS:
        columns[name] = table.column(name).to_numpy()
        table = table.drop_columns([name])
        # Hand the freed blocks back to the OS now: the allocator would keep them, and the
        # next column's contiguous copy cannot reuse them.
        pa.default_memory_pool().release_unused()
    return event_frame(*event_arrays(pd.DataFrame(columns, copy=False), source=source))


def event_arrays(
    events: pd.DataFrame | pa.Table, source: str | Path = "<events>"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SessionId, ItemId, Time as int64/int64/float64 numpy arrays (views when possible), checked."""
    if isinstance(events, pa.Table):
        events = events_from_table(events, source=source)
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise DataFormatError(source, f"missing columns {missing}; {EXPECTED_COLUMNS}")
    arrays = []
    for name, dtype in (("SessionId", np.int64), ("ItemId", np.int64), ("Time", np.float64)):
        column = events[name]
        kind = "if" if dtype is np.float64 else "iu"
        if column.dtype.kind not in kind or column.isna().any():
            raise DataFormatError(
                source, f"column {name} has dtype {column.dtype} (or missing values); expected {np.dtype(dtype)}"
            )
        arrays.append(np.asarray(column.to_numpy(dtype=dtype)))
    if not np.isfinite(arrays[2]).all():
        raise DataFormatError(source, "column Time has non-finite values; expected UTC epoch seconds")
    return arrays[0], arrays[1], arrays[2]


def event_frame(session_ids: np.ndarray, item_ids: np.ndarray, times: np.ndarray) -> pd.DataFrame:
    """A SessionId, ItemId, Time DataFrame over the given arrays, without copying them."""
    return pd.DataFrame({"SessionId": session_ids, "ItemId": item_ids, "Time": times}, copy=False)


# ----------------------------------------------------------------------------------------------
# Order: split files are sorted by SessionId, then Time (stable).


def is_sorted_by_session_time(session_ids: np.ndarray, times: np.ndarray) -> bool:
    last = len(times) - 1
    for start in range(0, max(last, 0), CHUNK_ROWS):
        end = min(start + CHUNK_ROWS, last)
        here, after = slice(start, end), slice(start + 1, end + 1)
        if (session_ids[after] < session_ids[here]).any():
            return False
        if ((session_ids[after] == session_ids[here]) & (times[after] < times[here])).any():
            return False
    return True


def session_time_order(session_ids: np.ndarray, times: np.ndarray) -> np.ndarray | None:
    """Stable permutation sorting by SessionId then Time, or None when already sorted."""
    if is_sorted_by_session_time(session_ids, times):
        return None
    return np.lexsort((times, session_ids))


def duplicate_rows(session_ids: np.ndarray, item_ids: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Rows that repeat an earlier row's SessionId, ItemId and Time exactly (the first one is not marked).

    Only rows sharing their session and time with a neighbour in (SessionId, Time) order can repeat
    one another, so only those few are sorted by item: cheap on sorted input, one lexsort otherwise.
    """
    n = len(times)
    duplicate = np.zeros(n, dtype=bool)
    if n < 2:
        return duplicate
    order = session_time_order(session_ids, times)
    sessions, stamps = (session_ids, times) if order is None else (session_ids[order], times[order])
    tie = sessions[1:] == sessions[:-1]
    tie &= stamps[1:] == stamps[:-1]
    candidate = np.zeros(n, dtype=bool)
    candidate[1:] |= tie
    candidate[:-1] |= tie
    del tie
    rows = np.flatnonzero(candidate)
    if order is not None:
        rows = np.sort(order[rows])
    # Stable on rows in input order: the first of equal rows stays unmarked.
    rows = rows[np.lexsort((item_ids[rows], times[rows], session_ids[rows]))]
    same = session_ids[rows[1:]] == session_ids[rows[:-1]]
    same &= item_ids[rows[1:]] == item_ids[rows[:-1]]
    same &= times[rows[1:]] == times[rows[:-1]]
    duplicate[rows[1:][same]] = True
    return duplicate


# ----------------------------------------------------------------------------------------------
# Parquet files.

# Sorted session ids compress well as deltas; float times as split byte streams. Smaller and
# cheaper to write than dictionary encoding, which never pays off on these columns.
PARQUET_OPTIONS = dict(
    use_dictionary=False,
    column_encoding={"SessionId": "DELTA_BINARY_PACKED", "ItemId": "PLAIN", "Time": "BYTE_STREAM_SPLIT"},
    compression="snappy",
)
ROW_GROUP_ROWS = 1 << 20


def write_event_rows(
    path: Path, session_ids: np.ndarray, item_ids: np.ndarray, times: np.ndarray, rows: np.ndarray | None = None
) -> None:
    """Write ``rows`` (all when None) of the event arrays to the parquet file ``path``.

    Selected rows are gathered block by block into row groups of about ROW_GROUP_ROWS, so a
    split is never materialized whole. ``path`` is written in place: callers pass the
    temporary of an atomic output.
    """
    pending: list[pa.Table] = []
    pending_rows = 0
    with pq.ParquetWriter(path, EVENT_SCHEMA, **PARQUET_OPTIONS) as writer:
        for start in range(0, len(times), ROW_GROUP_ROWS):
            block = slice(start, start + ROW_GROUP_ROWS)
            selected = slice(None) if rows is None else rows[block]
            columns = [session_ids[block][selected], item_ids[block][selected], times[block][selected]]
            pending.append(pa.Table.from_arrays([pa.array(c) for c in columns], schema=EVENT_SCHEMA))
            pending_rows += len(columns[0])
            if pending_rows >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending), row_group_size=2 * ROW_GROUP_ROWS)
                pending, pending_rows = [], 0
        if pending_rows:
            writer.write_table(pa.concat_tables(pending), row_group_size=2 * ROW_GROUP_ROWS)


def write_splits(splits: dict[str, pd.DataFrame], paths: dict[str, str | Path]) -> None:
    """Write each split named in ``paths`` as parquet (SessionId int64, ItemId int64, Time float64),
    sorted by SessionId then Time. All files appear together: nothing is renamed into place
    unless every file was written."""
    with atomic_outputs() as staged:
        for name, path in paths.items():
            session_ids, item_ids, times = event_arrays(splits[name], source=name)
            order = session_time_order(session_ids, times)
            if order is not None:
                session_ids, item_ids, times = session_ids[order], item_ids[order], times[order]
            write_event_rows(staged.temporary(path), session_ids, item_ids, times)


def read_events(path: str | Path) -> pd.DataFrame:
    """Read a split or clicks parquet file: columns SessionId, ItemId, Time, checked."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "file not found")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFormatError(path, f"not a parquet file ({exc})") from exc
    missing = [c for c in EVENT_COLUMNS if c not in schema.names]
    if missing:
        raise DataFormatError(path, f"missing columns {missing}; {EXPECTED_COLUMNS}")
    return events_from_table(pq.read_table(path, columns=list(EVENT_COLUMNS)), source=path)
