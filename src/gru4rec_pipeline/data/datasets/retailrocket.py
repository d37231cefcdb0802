"""RetailRocket (Kaggle, retailrocket/ecommerce-dataset): ``events.csv`` to the protocol's sessions.

The raw file, comma-separated with a header: ``timestamp,visitorid,event,itemid,transactionid``
(``1433221332117,257597,view,355908,``): epoch milliseconds, integer visitor and item ids, the event
(view, addtocart, transaction) and, for a transaction, its id.

As the authors' ``retailrocket_preproc.py`` prepares it: every event ordered by visitor, time and item id;
sessions cut where the visitor changes or consecutive events (of any type) are more than an hour apart,
numbered from 0 in that order; then only the views, with the visitor's raw item ids and the millisecond
times. Its split: the week before 2015-09-18 03:00 UTC (1442545200) is the test period.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from gru4rec_pipeline.data.datasets.arrays import compress_in_place
from gru4rec_pipeline.data.datasets.columns import Column, ValueCounts, distinct_count, equal_rows
from gru4rec_pipeline.data.datasets.phases import phase
from gru4rec_pipeline.data.datasets.protocol import SessionEvents
from gru4rec_pipeline.data.datasets.raw import (
    CsvLayout,
    estimated_rows,
    existing_raw_file,
    iter_tables,
)
from gru4rec_pipeline.data.datasets.sessionize import (
    cut_sessions,
    first_entry,
    session_count,
    sort_by_group_time,
    sort_ties_by_item,
)
from gru4rec_pipeline.names import DATASET_RAW_FILES

RAW_FILE = DATASET_RAW_FILES["retailrocket"][0]
SESSION_GAP_SECONDS = 3600
LAYOUT = CsvLayout(
    name="RetailRocket events.csv",
    columns=("timestamp", "visitorid", "event", "itemid", "transactionid"),
    delimiter=",",
    types={
        "timestamp": pa.int64(),
        "visitorid": pa.int64(),
        "event": pa.dictionary(pa.int32(), pa.string()),
        "itemid": pa.int64(),
    },
    expected={
        "timestamp": "an integer time in epoch milliseconds",
        "visitorid": "an integer visitor id",
        "event": "an event name (view, addtocart or transaction)",
        "itemid": "an integer item id",
    },
)
COLUMNS = ["timestamp", "visitorid", "event", "itemid"]


def retailrocket_events(raw_dir: str | Path) -> SessionEvents:
    """The views of ``raw_dir/events.csv`` as sessions, in the script's order."""
    path = existing_raw_file(Path(raw_dir) / RAW_FILE, LAYOUT)
    rows = estimated_rows(path)
    ticks, view = Column(np.int64, rows), Column(bool, rows)
    visitors, items = Column(np.int32, rows, integers=True), Column(np.int32, rows, integers=True)
    events = ValueCounts()
    with phase(f"retailrocket: read {RAW_FILE}"):
        for table in iter_tables(path, LAYOUT, COLUMNS):
            ticks.extend(table.column("timestamp"))
            visitors.extend(table.column("visitorid"))
            items.extend(table.column("itemid"))
            view.append(equal_rows(table.column("event"), "view"))
            events.add(table.column("event"))
        del table
        ticks, visitors, items, view = ticks.finish(), visitors.finish(), items.finish(), view.finish()
    with phase("retailrocket: order by visitor and time"):
        visitors, ticks, items, view = sort_by_group_time(visitors, ticks, items, view)
    raw = {
        RAW_FILE: {
            "rows": len(ticks),
            "events": events.most_frequent_first(),
            "visitors": session_count(visitors),
            "items": distinct_count(items),
        }
    }
    with phase("retailrocket: sessions"):
        n_rows = len(ticks)
        session_ids = compress_in_place(cut_sessions(visitors, ticks, SESSION_GAP_SECONDS * 1000), view)
        item_ids, view_ticks = compress_in_place(items, view), compress_in_place(ticks, view)
        del visitors, items, ticks, view
        sort_ties_by_item(session_ids, view_ticks, item_ids)
    step = first_entry(
        f"views of {RAW_FILE}, sessions cut where a visitor's consecutive events are over {SESSION_GAP_SECONDS} s "
        "apart (other event types removed)",
        session_ids,
        n_rows,
    )
    return SessionEvents(session_ids, item_ids, view_ticks, 1000, [step], raw, [str(path)])
