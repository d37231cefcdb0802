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

import pyarrow as pa

from gru4rec_pipeline.data.datasets.protocol import SessionEvents
from gru4rec_pipeline.data.datasets.raw import CsvLayout, existing_raw_file, read_table
from gru4rec_pipeline.data.datasets.sessionize import (
    cut_sessions,
    distinct_count,
    event_counts,
    event_mask,
    first_entry,
    script_order,
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


def retailrocket_events(raw_dir: str | Path) -> SessionEvents:
    """The views of ``raw_dir/events.csv`` as sessions, in the script's order."""
    path = existing_raw_file(Path(raw_dir) / RAW_FILE, LAYOUT)
    table = read_table(path, LAYOUT, ["timestamp", "visitorid", "event", "itemid"])
    ticks = table.column("timestamp").to_numpy()
    visitors = table.column("visitorid").to_numpy()
    items = table.column("itemid").to_numpy()
    view = event_mask(table.column("event"), "view")
    raw = {
        RAW_FILE: {
            "rows": table.num_rows,
            "events": event_counts(table.column("event")),
            "visitors": distinct_count(visitors),
            "items": distinct_count(items),
        }
    }
    del table
    order = script_order(visitors, ticks, items)
    if order is not None:
        visitors, ticks, items, view = visitors[order], ticks[order], items[order], view[order]
    sessions = cut_sessions(visitors, ticks, SESSION_GAP_SECONDS * 1000)
    session_ids, item_ids, view_ticks = sessions[view], items[view], ticks[view]
    step = first_entry(
        f"views of {RAW_FILE}, sessions cut where a visitor's consecutive events are over {SESSION_GAP_SECONDS} s "
        "apart (other event types removed)",
        session_ids,
        len(ticks),
    )
    return SessionEvents(session_ids, item_ids, view_ticks, 1000, [step], raw, [str(path)])
