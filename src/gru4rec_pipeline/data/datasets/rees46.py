"""Rees46 (eCommerce behaviour data from a multi-category store): ``2019-Oct.csv`` and ``2019-Nov.csv`` to sessions.

The raw files, comma-separated with a header:
``event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session``
(``2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-...``).

As the authors' ``rees46_preproc.py`` prepares them: October's rows, then November's; users and products
numbered by order of first appearance over all rows (every event type); times cut to whole seconds; the
views ordered by user number, time and product number; sessions cut where the user changes or consecutive
views are more than an hour apart, numbered from 0 in that order (the files' own ``user_session`` is not
used); the raw product ids kept. Its split: the day before 2019-12-01 00:00 UTC (1575158400) is the test period.

Users and products are numbered as the rows are read (``appearance.IntegerAppearanceCodes``); only the views are
kept. They are ordered by sorting one packed integer key (user, second, product) when its parts fit in 64 bits,
which they do at the published size, instead of a three-key sort of 110 million rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from gru4rec_pipeline.data.datasets.appearance import IntegerAppearanceCodes
from gru4rec_pipeline.data.datasets.arrays import compress_in_place
from gru4rec_pipeline.data.datasets.columns import Column, ValueCounts, column_values, equal_rows
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
    sort_by_group_time,
    sort_packed,
    sort_ties_by_item,
)
from gru4rec_pipeline.names import DATASET_RAW_FILES, REES46_TIME_FORMAT

RAW_FILES = DATASET_RAW_FILES["rees46"]
SESSION_GAP_SECONDS = 3600
TIME_FORMAT = REES46_TIME_FORMAT
LAYOUT = CsvLayout(
    name="Rees46 eCommerce behaviour CSV",
    columns=(
        "event_time",
        "event_type",
        "product_id",
        "category_id",
        "category_code",
        "brand",
        "price",
        "user_id",
        "user_session",
    ),
    delimiter=",",
    types={
        "event_time": pa.timestamp("s"),
        "event_type": pa.dictionary(pa.int32(), pa.string()),
        "product_id": pa.int64(),
        "user_id": pa.int64(),
    },
    expected={
        "event_time": "a UTC time like 2019-10-01 00:00:00 UTC",
        "event_type": "an event type (view, cart, purchase, ...)",
        "product_id": "an integer product id",
        "user_id": "an integer user id",
    },
    timestamp_formats=(TIME_FORMAT,),
)
COLUMNS = ["event_time", "event_type", "product_id", "user_id"]


def rees46_events(raw_dir: str | Path) -> SessionEvents:
    """The views of ``raw_dir``'s October and November files as sessions, in the script's order."""
    paths = [existing_raw_file(Path(raw_dir) / name, LAYOUT) for name in RAW_FILES]
    rows = sum(estimated_rows(path) for path in paths)
    seconds, view = Column(np.int32, rows, integers=True), Column(bool, rows)
    users, products = IntegerAppearanceCodes(rows), IntegerAppearanceCodes(rows)
    raw = {}
    for path in paths:
        events = ValueCounts()
        with phase(f"rees46: read {path.name}"):
            for table in iter_tables(path, LAYOUT, COLUMNS):
                seconds.extend(table.column("event_time"))
                view.append(equal_rows(table.column("event_type"), "view"))
                events.add(table.column("event_type"))
                for part in column_values(table.column("user_id"), np.int64):
                    users.append(part)
                for part in column_values(table.column("product_id"), np.int64):
                    products.append(part)
            del table
        raw[path.name] = {"rows": sum(events.counts.values()), "events": events.most_frequent_first()}
    with phase("rees46: users and products numbered"):
        seconds, view = seconds.finish(), view.finish()
        user_codes, product_codes = users.finish(), products.finish()
        product_ids = products.values()
        raw["all"] = {"rows": len(seconds), "users": users.n_values, "products": len(product_ids)}
        del users, products
    n_rows = len(seconds)
    with phase("rees46: views ordered by user and time"):
        user_codes = compress_in_place(user_codes, view)
        seconds = compress_in_place(seconds, view)
        product_codes = compress_in_place(product_codes, view)
        del view
        if not sort_packed([user_codes, seconds, product_codes]):
            user_codes, seconds, product_codes = sort_by_group_time(user_codes, seconds, product_codes)
            sort_ties_by_item(user_codes, seconds, product_codes)
    with phase("rees46: sessions"):
        sessions = cut_sessions(user_codes, seconds, SESSION_GAP_SECONDS)
        del user_codes
    step = first_entry(
        f"views of {' and '.join(RAW_FILES)}, sessions cut where a user's consecutive views are over "
        f"{SESSION_GAP_SECONDS} s apart (other event types removed)",
        sessions,
        n_rows,
    )
    return SessionEvents(
        sessions, product_codes, seconds, 1, [step], raw, [str(path) for path in paths], item_values=product_ids
    )
