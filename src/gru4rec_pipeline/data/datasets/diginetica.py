"""Diginetica (CIKM Cup 2016, track 2): ``train-item-views.csv`` to the protocol's sessions.

The raw file, ``;``-separated with a header: ``sessionId;userId;itemId;timeframe;eventdate``
(``1;NA;81766;526309;2016-05-09``): integer session and item ids, the user id (NA or empty when anonymous),
the milliseconds since the session's start and the date of the view.

As the authors' ``diginetica_preproc.py`` prepares it: a view's time is the midnight (UTC) of its session's
earliest date plus its timeframe, in milliseconds; rows ordered by session, time and item id; the raw session
and item ids kept. Its split: the week before the latest view left after the filters is the test period.

A session's views share its first date, so ordering them by time is ordering them by timeframe: (session rank,
timeframe, item rank) packed into one 64-bit key and sorted orders every row at once, ties included, when the
three fit (they do at the published size); otherwise the times are computed first and sorted as the other sets'.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from gru4rec_pipeline.data.datasets.arrays import blocks, dense_ranks
from gru4rec_pipeline.data.datasets.columns import Column, distinct_count, present_values
from gru4rec_pipeline.data.datasets.phases import phase
from gru4rec_pipeline.data.datasets.protocol import SessionEvents
from gru4rec_pipeline.data.datasets.raw import (
    CsvLayout,
    estimated_rows,
    existing_raw_file,
    iter_tables,
)
from gru4rec_pipeline.data.datasets.sessionize import first_entry, sort_by_group_time, sort_packed, sort_ties_by_item
from gru4rec_pipeline.names import DATASET_RAW_FILES

RAW_FILE = DATASET_RAW_FILES["diginetica"][0]
MILLISECONDS_PER_DAY = 86_400_000
LAYOUT = CsvLayout(
    name="Diginetica train-item-views.csv",
    columns=("sessionId", "userId", "itemId", "timeframe", "eventdate"),
    delimiter=";",
    types={
        "sessionId": pa.int64(),
        "userId": pa.int64(),
        "itemId": pa.int64(),
        "timeframe": pa.int64(),
        "eventdate": pa.date32(),
    },
    expected={
        "sessionId": "an integer session id",
        "userId": "an integer user id, or NA",
        "itemId": "an integer item id",
        "timeframe": "an integer number of milliseconds",
        "eventdate": "a date like 2016-05-09",
    },
    nullable=frozenset({"userId"}),
    null_values=("", "NA"),
)


def diginetica_events(raw_dir: str | Path) -> SessionEvents:
    """The views of ``raw_dir/train-item-views.csv`` as sessions, in the script's order."""
    path = existing_raw_file(Path(raw_dir) / RAW_FILE, LAYOUT)
    rows = estimated_rows(path)
    sessions, items = Column(np.int32, rows, integers=True), Column(np.int32, rows, integers=True)
    timeframes, days = Column(np.int32, rows, integers=True), Column(np.int32, rows)
    users, anonymous = Column(np.int32, 1 << 16, integers=True), 0
    with phase(f"diginetica: read {RAW_FILE}"):
        for table in iter_tables(path, LAYOUT, list(LAYOUT.columns)):
            sessions.extend(table.column("sessionId"))
            items.extend(table.column("itemId"))
            timeframes.extend(table.column("timeframe"))
            days.extend(table.column("eventdate"))
            for chunk in table.column("userId").chunks:
                users.append(present_values(chunk, np.int64))
                anonymous += chunk.null_count
        del table
        sessions, items, timeframes, days = sessions.finish(), items.finish(), timeframes.finish(), days.finish()
    raw = {
        RAW_FILE: {
            "rows": len(sessions),
            "sessions": distinct_count(sessions),
            "items": distinct_count(items),
            "users": distinct_count(users.finish()),
            "anonymous_rows": anonymous,
        }
    }
    del users
    with phase("diginetica: times and order"):
        session_ids, item_ids, ticks = script_order(sessions, items, timeframes, days)
    step = first_entry(
        f"views of {RAW_FILE}, timed from their session's first date plus timeframe", session_ids, len(ticks)
    )
    return SessionEvents(session_ids, item_ids, ticks, 1000, [step], raw, [str(path)])


def script_order(sessions: np.ndarray, items: np.ndarray, timeframes: np.ndarray, days: np.ndarray):
    """(session ids, item ids, millisecond times) sorted by session, time and item; the arrays passed in are
    reused."""
    session_ranks, session_ids = dense_ranks(sessions)
    first_day = np.full(len(session_ids), np.iinfo(np.int32).max, dtype=np.int32)
    np.minimum.at(first_day, session_ranks, days)
    del days
    item_ranks, item_ids = dense_ranks(items)
    if not sort_packed([session_ranks, timeframes, item_ranks]):
        ticks = first_day[session_ranks].astype(np.int64) * MILLISECONDS_PER_DAY + timeframes
        del session_ranks, item_ranks, timeframes
        sessions, ticks, items = sort_by_group_time(sessions, ticks, items)
        sort_ties_by_item(sessions, ticks, items)
        return sessions, items, ticks
    ticks = np.empty(len(sessions), dtype=np.int64)
    for block in blocks(len(sessions)):
        ranks = session_ranks[block]
        np.multiply(first_day[ranks], MILLISECONDS_PER_DAY, out=ticks[block], dtype=np.int64)
        ticks[block] += timeframes[block]
        np.take(session_ids, ranks, out=sessions[block], mode="clip")
        np.take(item_ids, item_ranks[block], out=items[block], mode="clip")
    return sessions, items, ticks
