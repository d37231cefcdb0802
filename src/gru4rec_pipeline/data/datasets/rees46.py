"""Rees46 (eCommerce behaviour data from a multi-category store): ``2019-Oct.csv`` and ``2019-Nov.csv`` to sessions.

The raw files, comma-separated with a header:
``event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session``
(``2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-...``).

As the authors' ``rees46_preproc.py`` prepares them: October's rows, then November's; users and products
numbered by order of first appearance over all rows (every event type); times cut to whole seconds; the
views ordered by user number, time and product number; sessions cut where the user changes or consecutive
views are more than an hour apart, numbered from 0 in that order (the files' own ``user_session`` is not
used); the raw product ids kept. Its split: the day before 2019-12-01 00:00 UTC (1575158400) is the test period.

The views are ordered by sorting one packed integer key (user, second, product) when its parts fit in 64 bits,
which they do at the published size, instead of a three-key sort of 110 million rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from gru4rec_pipeline.data.datasets.protocol import SessionEvents
from gru4rec_pipeline.data.datasets.raw import CsvLayout, appearance_codes, existing_raw_file, read_table
from gru4rec_pipeline.data.datasets.sessionize import cut_sessions, event_counts, event_mask, first_entry
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
    tables = [read_table(path, LAYOUT, COLUMNS) for path in paths]
    raw = {
        path.name: {"rows": table.num_rows, "events": event_counts(table.column("event_type"))}
        for path, table in zip(paths, tables)
    }
    table = pa.concat_tables(tables)
    del tables
    n_rows = table.num_rows
    view = event_mask(table.column("event_type"), "view")
    users, user_ids = appearance_codes(table.column("user_id"))
    products, product_ids = appearance_codes(table.column("product_id"))
    seconds = table.column("event_time").cast(pa.int64()).to_numpy()
    raw["all"] = {"rows": n_rows, "users": len(user_ids), "products": len(product_ids)}
    del table, user_ids
    users, seconds, products = users[view], seconds[view], products[view]
    del view
    users, seconds, products = script_sorted(users, seconds, products)
    sessions = cut_sessions(users, seconds, SESSION_GAP_SECONDS)
    del users
    item_ids = product_ids.to_numpy(zero_copy_only=False)[products]
    del products
    step = first_entry(
        f"views of {' and '.join(RAW_FILES)}, sessions cut where a user's consecutive views are over "
        f"{SESSION_GAP_SECONDS} s apart (other event types removed)",
        sessions,
        n_rows,
    )
    return SessionEvents(sessions, item_ids, seconds, 1, [step], raw, [str(path) for path in paths])


def script_sorted(users: np.ndarray, seconds: np.ndarray, products: np.ndarray):
    """(users, seconds, products) sorted by user, then second, then product (all integers >= 0 but seconds).

    Rows equal in all three are interchangeable, so one sort of a packed key suffices when it fits in 64 bits.
    """
    if len(seconds) == 0:
        return users, seconds, products
    first = int(seconds.min())
    bits = [int(np.max(part)).bit_length() for part in (users, seconds - first, products)]
    if sum(bits) > 64:
        order = np.lexsort((products, seconds, users))
        return users[order], seconds[order], products[order]
    key = users.astype(np.uint64) << np.uint64(bits[1] + bits[2])
    key |= (seconds - first).astype(np.uint64) << np.uint64(bits[2])
    key |= products.astype(np.uint64)
    key.sort()
    sorted_products = (key & np.uint64((1 << bits[2]) - 1)).astype(np.int64)
    key >>= np.uint64(bits[2])
    sorted_seconds = (key & np.uint64((1 << bits[1]) - 1)).astype(np.int64) + first
    key >>= np.uint64(bits[1])
    return key.astype(np.int64), sorted_seconds, sorted_products
