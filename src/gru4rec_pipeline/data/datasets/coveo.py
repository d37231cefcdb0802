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

import pyarrow as pa

from gru4rec_pipeline.data.datasets.protocol import SessionEvents
from gru4rec_pipeline.data.datasets.raw import CsvLayout, appearance_codes, existing_raw_file, read_table
from gru4rec_pipeline.data.datasets.sessionize import cut_sessions, event_counts, event_mask, first_entry, script_order
from gru4rec_pipeline.names import DATASET_RAW_FILES

RAW_FILE = DATASET_RAW_FILES["coveo"][0]
SESSION_GAP_SECONDS = 3600
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
        "session_id_hash": pa.string(),
        "product_action": pa.dictionary(pa.int32(), pa.string()),
        "product_skus_hash": pa.string(),
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


def coveo_events(raw_dir: str | Path) -> SessionEvents:
    """The ``detail`` events of ``raw_dir/release_10_23_2020.csv`` as sessions, in the script's order."""
    path = existing_raw_file(Path(raw_dir) / RAW_FILE, LAYOUT)
    columns = ["session_id_hash", "product_action", "product_skus_hash", "server_timestamp_epoch_ms"]
    table = read_table(path, LAYOUT, columns)
    ticks = table.column("server_timestamp_epoch_ms").to_numpy()
    detail = event_mask(table.column("product_action"), "detail")
    actions = event_counts(table.column("product_action"))
    session_numbers, session_hashes = appearance_codes(table.column("session_id_hash"))
    table = table.drop_columns(["session_id_hash", "product_action"])
    # The numbers' names: the hashes in order of first appearance, the missing one too.
    product_numbers, item_names = appearance_codes(table.column("product_skus_hash"))
    raw = {
        RAW_FILE: {
            "rows": table.num_rows,
            "product_actions": actions,
            "session_hashes": len(session_hashes),
            "products": len(item_names) - item_names.null_count,
        }
    }
    del session_hashes
    del table
    order = script_order(session_numbers, ticks, product_numbers)
    if order is not None:
        session_numbers, ticks, product_numbers, detail = (
            session_numbers[order], ticks[order], product_numbers[order], detail[order]
        )  # fmt: skip
    del order
    sessions = cut_sessions(session_numbers, ticks, SESSION_GAP_SECONDS * 1000)
    session_ids, item_ids, detail_ticks = sessions[detail], product_numbers[detail], ticks[detail]
    step = first_entry(
        f"detail events of {RAW_FILE}, sessions cut again where a session's consecutive events are over "
        f"{SESSION_GAP_SECONDS} s apart (other events removed)",
        session_ids,
        len(ticks),
    )
    return SessionEvents(session_ids, item_ids, detail_ticks, 1000, [step], raw, [str(path)], item_names)
