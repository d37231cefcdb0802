"""Coveo (shopper intent prediction data, Requena et al. 2020): ``release_10_23_2020.csv`` to sessions.

The raw file, comma-separated with a header:
``session_id_hash,event_type,product_action,product_skus_hash,server_timestamp_epoch_ms,hashed_url``: hashed
(hexadecimal) session, product and URL ids, the event type (pageview or event), the product action (detail,
add, purchase, remove, click; empty for a page view without a product) and epoch milliseconds.

As the authors' ``coveo_preproc.py`` prepares it: session hashes and product hashes (the empty one
included) numbered by order of first appearance; every event ordered by session number, time and product
number; sessions cut again where consecutive events of a session hash are more than an hour apart, numbered
from 0 in that order; then only the ``detail`` events, with the product numbers as item ids (the item map
gives back the hashes). Its split: the day before the latest event left after the filters is the test period.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from gru4rec_pipeline.data.datasets.appearance import AppearanceCodes
from gru4rec_pipeline.data.datasets.arrays import compress_in_place
from gru4rec_pipeline.data.datasets.columns import Column, ValueCounts, equal_rows
from gru4rec_pipeline.data.datasets.phases import phase
from gru4rec_pipeline.data.datasets.protocol import SessionEvents
from gru4rec_pipeline.data.datasets.raw import (
    CsvLayout,
    estimated_rows,
    existing_raw_file,
    iter_tables,
)
from gru4rec_pipeline.data.datasets.sessionize import cut_sessions, first_entry, sort_by_group_time, sort_ties_by_item
from gru4rec_pipeline.names import DATASET_RAW_FILES

RAW_FILE = DATASET_RAW_FILES["coveo"][0]
SESSION_GAP_SECONDS = 3600
HASH = pa.dictionary(pa.int32(), pa.binary())
LAYOUT = CsvLayout(
    name="Coveo release_10_23_2020.csv",
    columns=(
        "session_id_hash",
        "event_type",
        "product_action",
        "product_skus_hash",
        "server_timestamp_epoch_ms",
        "hashed_url",
    ),
    delimiter=",",
    types={
        # Hashes stay bytes (no text check on 5 million of them); each chunk's are numbered by the parser.
        "session_id_hash": HASH,
        "product_action": pa.dictionary(pa.int32(), pa.string()),
        "product_skus_hash": HASH,
        "server_timestamp_epoch_ms": pa.int64(),
    },
    expected={
        "session_id_hash": "a session hash",
        "product_action": "a product action (detail, add, purchase, remove, click) or empty",
        "product_skus_hash": "a product hash or empty",
        "server_timestamp_epoch_ms": "an integer time in epoch milliseconds",
    },
    nullable=frozenset({"product_action", "product_skus_hash"}),
)
COLUMNS = ["session_id_hash", "product_action", "product_skus_hash", "server_timestamp_epoch_ms"]


def coveo_events(raw_dir: str | Path) -> SessionEvents:
    """The ``detail`` events of ``raw_dir/release_10_23_2020.csv`` as sessions, in the script's order."""
    path = existing_raw_file(Path(raw_dir) / RAW_FILE, LAYOUT)
    rows = estimated_rows(path)
    ticks, detail = Column(np.int64, rows), Column(bool, rows)
    session_hashes, product_hashes = AppearanceCodes(HASH.value_type, rows), AppearanceCodes(HASH.value_type, rows)
    actions = ValueCounts()
    with phase(f"coveo: read {RAW_FILE}"):
        for table in iter_tables(path, LAYOUT, COLUMNS):
            ticks.extend(table.column("server_timestamp_epoch_ms"))
            detail.append(equal_rows(table.column("product_action"), "detail"))
            actions.add(table.column("product_action"))
            session_hashes.append(table.column("session_id_hash"))
            product_hashes.append(table.column("product_skus_hash"))
        del table
        ticks, detail = ticks.finish(), detail.finish()
        session_numbers, n_session_hashes = session_hashes.finish(), session_hashes.n_values
        products, item_names = product_hashes.finish(), product_hashes.values()
        del session_hashes, product_hashes
    raw = {
        RAW_FILE: {
            "rows": len(ticks),
            "product_actions": actions.most_frequent_first(),
            "session_hashes": n_session_hashes,
            # The empty hash (a page view without a product) is numbered like the others, but is no product.
            "products": len(item_names) - int(b"" in set(item_names.to_pylist())),
        }
    }
    with phase("coveo: order by session and time"):
        session_numbers, ticks, products, detail = sort_by_group_time(session_numbers, ticks, products, detail)
    with phase("coveo: sessions"):
        n_rows = len(ticks)
        session_ids = compress_in_place(cut_sessions(session_numbers, ticks, SESSION_GAP_SECONDS * 1000), detail)
        item_ids, detail_ticks = compress_in_place(products, detail), compress_in_place(ticks, detail)
        del session_numbers, products, ticks, detail
        sort_ties_by_item(session_ids, detail_ticks, item_ids)
    step = first_entry(
        f"detail events of {RAW_FILE}, sessions cut again where a session's consecutive events are over "
        f"{SESSION_GAP_SECONDS} s apart (other events removed)",
        session_ids,
        n_rows,
    )
    return SessionEvents(session_ids, item_ids, detail_ticks, 1000, [step], raw, [str(path)], item_names)
