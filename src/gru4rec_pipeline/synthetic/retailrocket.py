"""A synthetic RetailRocket ``events.csv`` (``timestamp,visitorid,event,itemid,transactionid``), seeded.

Visitors browse from 2015-05-03 03:00 UTC to the authors' split time, 2015-09-18 03:00 UTC, in epoch
milliseconds; most events are views, some addtocart and transaction (with a transaction id). Sessions sit
exactly on the test week's and the validation week's boundaries (see :mod:`.browsing`).
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
    distinct_integers,
    generate_browsing,
    take_strings,
    write_csv,
)

RAW_FILE = DATASET_RAW_FILES["retailrocket"][0]
SPLIT_TIME = 1442545200  # the authors' split, 2015-09-18 03:00 UTC
PERIOD_SECONDS = 7 * 86400
EVENTS = ("view", "addtocart", "transaction")
PRESETS = {
    "tiny": BrowsingSpec(n_events=30_000, n_items=1_500, n_users=6_000, start=SPLIT_TIME - 138 * 86400, days=138,
                         kind_shares=(0.967, 0.025, 0.008), mean_visit_events=3.0),
    "default": BrowsingSpec(n_events=1_000_000, n_items=60_000, n_users=500_000, start=SPLIT_TIME - 138 * 86400,
                            days=138, kind_shares=(0.967, 0.025, 0.008), mean_visit_events=3.0),
    # The published size: 2,756,101 events by 1,407,580 visitors (the data set's description on Kaggle).
    "full": BrowsingSpec(n_events=2_756_101, n_items=235_000, n_users=1_407_580, start=SPLIT_TIME - 138 * 86400,
                         days=138, kind_shares=(0.967, 0.025, 0.008), mean_visit_events=3.0),
}  # fmt: skip


def write_retailrocket_raw(folder: str | Path, spec: BrowsingSpec, seed: int = 42) -> dict:
    """Write ``folder/events.csv`` (atomically); returns what it holds."""
    rng = np.random.default_rng(seed)
    browsing = generate_browsing(spec, rng)
    tps = spec.ticks_per_second
    boundary = (SPLIT_TIME - PERIOD_SECONDS) * tps
    add_boundary_visits(browsing, boundary, PERIOD_SECONDS * tps, spec.n_users, tps)
    visitor_ids = distinct_integers(rng, spec.n_users + 3, 0, max(1_407_580, 2 * spec.n_users + 6))
    item_ids = distinct_integers(rng, spec.n_items, 0, max(466_868, 2 * spec.n_items))
    kind = browsing.kind.astype(np.int64)
    transaction = kind == EVENTS.index("transaction")
    transaction_ids = np.full(len(kind), -1, dtype=np.int64)
    transaction_ids[transaction] = rng.permutation(int(transaction.sum()))
    columns = {
        "timestamp": browsing.tick,
        "visitorid": visitor_ids[browsing.user],
        "event": lambda start, stop: take_strings(pa.array(EVENTS), kind[start:stop]),
        "itemid": item_ids[browsing.item],
        "transactionid": lambda start, stop: pa.array(
            transaction_ids[start:stop], mask=transaction_ids[start:stop] < 0
        ),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / RAW_FILE) as temporary:
        write_csv(temporary, list(columns), columns, len(kind))
    return {
        "events": len(kind),
        "views": int(np.count_nonzero(kind == 0)),
        "visitors": int(len(np.unique(browsing.user))),
    }
