"""A synthetic Coveo ``release_10_23_2020.csv``, seeded.

Columns ``session_id_hash,event_type,product_action,product_skus_hash,server_timestamp_epoch_ms,hashed_url``:
64-character hexadecimal hashes, page views with a product (``detail``) or without one (no action, no
product), and events (add, remove, purchase, click) on products, in epoch milliseconds from 2018-11-26 to
2018-12-26 (UTC). A visit is one session hash; some hold a gap of exactly an hour, or an hour and a
millisecond, which the authors' script cuts. A last session makes the latest event, and others sit exactly
on the test and validation days' boundaries counted back from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from gru4rec_pipeline.files import atomic_output
from gru4rec_pipeline.names import DATASET_RAW_FILES
from gru4rec_pipeline.synthetic.browsing import (
    BrowsingSpec,
    add_boundary_visits,
    add_final_visit,
    generate_browsing,
    hex_ids,
    take_strings,
    write_csv,
)

RAW_FILE = DATASET_RAW_FILES["coveo"][0]
START = 1543190400  # 2018-11-26 00:00 UTC
PERIOD_SECONDS = 86400
# Kinds of the process, in order: what each row is.
EVENT_TYPES = ("pageview", "pageview", "event", "event", "event", "event")
PRODUCT_ACTIONS = ("detail", "", "add", "remove", "purchase", "click")
KIND_SHARES = (0.45, 0.45, 0.04, 0.02, 0.01, 0.03)
PRESETS = {
    "tiny": BrowsingSpec(n_events=40_000, n_items=1_500, n_users=3_000, start=START, days=30,
                         kind_shares=KIND_SHARES, mean_visit_events=10.0),
    "default": BrowsingSpec(n_events=1_000_000, n_items=20_000, n_users=60_000, start=START, days=30,
                            kind_shares=KIND_SHARES, mean_visit_events=10.0),
    # The published size: 5,433,611 events (the data set's description, coveooss/shopper-intent-prediction-nature-2020).
    "full": BrowsingSpec(n_events=5_433_611, n_items=60_000, n_users=300_000, start=START, days=30,
                         kind_shares=KIND_SHARES, mean_visit_events=10.0),
}  # fmt: skip


def write_coveo_raw(folder: str | Path, spec: BrowsingSpec, seed: int = 42) -> dict:
    """Write ``folder/release_10_23_2020.csv`` (atomically); returns what it holds."""
    rng = np.random.default_rng(seed)
    browsing = generate_browsing(spec, rng)
    tps = spec.ticks_per_second
    latest = add_final_visit(browsing, spec.n_users, tps)
    add_boundary_visits(browsing, latest - PERIOD_SECONDS * tps, PERIOD_SECONDS * tps, spec.n_users + 1, tps)
    kind = browsing.kind.astype(np.int64)
    product = np.where(np.asarray(PRODUCT_ACTIONS)[kind] == "", -1, browsing.item)
    session_hashes = hex_ids(rng, len(browsing.visit_user))
    product_hashes = hex_ids(rng, spec.n_items)
    urls = hex_ids(rng, 2 * spec.n_items)
    url = rng.integers(0, len(urls), size=len(kind))
    visit = browsing.visit
    columns = {
        "session_id_hash": lambda start, stop: take_strings(session_hashes, visit[start:stop]),
        "event_type": lambda start, stop: take_strings(pa.array(EVENT_TYPES), kind[start:stop]),
        "product_action": lambda start, stop: take_strings(pa.array(PRODUCT_ACTIONS), kind[start:stop]),
        "product_skus_hash": lambda start, stop: take_strings(product_hashes, product[start:stop]),
        "server_timestamp_epoch_ms": browsing.tick,
        "hashed_url": lambda start, stop: take_strings(urls, url[start:stop]),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / RAW_FILE) as temporary:
        write_csv(temporary, list(columns), columns, len(kind))
    return {"events": len(kind), "details": int(np.count_nonzero(kind == 0)), "sessions": len(session_hashes)}
