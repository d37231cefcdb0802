"""Diginetica (CIKM Cup 2016, track 2): ``train-item-views.csv`` to the protocol's sessions.

The raw file, ``;``-separated with a header: ``sessionId;userId;itemId;timeframe;eventdate``
(``1;NA;81766;526309;2016-05-09``): integer session and item ids, the user id (NA or empty when anonymous),
the milliseconds since the session's start and the date of the view.

As the authors' ``diginetica_preproc.py`` prepares it: a view's time is the midnight (UTC) of its session's
earliest date plus its timeframe, in milliseconds; rows ordered by session, time and item id; the raw session
and item ids kept. Its split: the week before the latest view left after the filters is the test period.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from gru4rec_pipeline.data.codes import dense_codes
from gru4rec_pipeline.data.datasets.protocol import SessionEvents
from gru4rec_pipeline.data.datasets.raw import CsvLayout, existing_raw_file, read_table
from gru4rec_pipeline.data.datasets.sessionize import distinct_count, first_entry, script_order
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
    table = read_table(path, LAYOUT, list(LAYOUT.columns))
    session_ids = table.column("sessionId").to_numpy()
    item_ids = table.column("itemId").to_numpy()
    timeframe = table.column("timeframe").to_numpy()
    days = table.column("eventdate").cast(pa.int32()).to_numpy().astype(np.int64)
    users = table.column("userId")
    raw = {
        RAW_FILE: {
            "rows": table.num_rows,
            "sessions": distinct_count(session_ids),
            "items": distinct_count(item_ids),
            "users": int(len(users.unique().drop_null())),
            "anonymous_rows": int(users.null_count),
        }
    }
    del table, users
    codes, n_sessions = dense_codes(session_ids)
    first_day = np.full(n_sessions, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_day, codes, days)
    ticks = first_day[codes] * MILLISECONDS_PER_DAY + timeframe
    del codes, days, timeframe
    order = script_order(session_ids, ticks, item_ids)
    if order is not None:
        session_ids, item_ids, ticks = session_ids[order], item_ids[order], ticks[order]
    step = first_entry(
        f"views of {RAW_FILE}, timed from their session's first date plus timeframe", session_ids, len(ticks)
    )
    return SessionEvents(session_ids, item_ids, ticks, 1000, [step], raw, [str(path)])
