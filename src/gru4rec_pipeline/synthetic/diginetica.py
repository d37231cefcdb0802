"""A synthetic Diginetica ``train-item-views.csv`` (``sessionId;userId;itemId;timeframe;eventdate``), seeded.

Views from 2016-01-01 to 2016-06-01 (UTC); session ids numbered by the sessions' starts from 1, most sessions
anonymous (userId NA). ``timeframe`` is the milliseconds after the midnight of the session's first day, so the
authors' time (that midnight plus the timeframe) is the process's time; a session running past midnight has
later views dated the next day. Rows are grouped by session but not ordered by time within it. A last session
makes the latest view, and others sit exactly on the test and validation weeks' boundaries counted back from it.
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
    distinct_integers,
    generate_browsing,
    write_csv,
)

RAW_FILE = DATASET_RAW_FILES["diginetica"][0]
MILLISECONDS_PER_DAY = 86_400_000
START = 1451606400  # 2016-01-01 00:00 UTC
PERIOD_SECONDS = 7 * 86400
ANONYMOUS_SHARE = 0.8
PRESETS = {
    "tiny": BrowsingSpec(n_events=30_000, n_items=1_500, n_users=3_000, start=START, days=152, kind_shares=(1.0,),
                         mean_visit_events=4.0),
    "default": BrowsingSpec(n_events=600_000, n_items=40_000, n_users=60_000, start=START, days=152,
                            kind_shares=(1.0,), mean_visit_events=4.0),
    # About the published size: 1,235,380 views of about 120,000 items (CIKM Cup 2016's train-item-views.csv).
    "full": BrowsingSpec(n_events=1_235_380, n_items=120_000, n_users=120_000, start=START, days=152,
                         kind_shares=(1.0,), mean_visit_events=4.0),
}  # fmt: skip


def write_diginetica_raw(folder: str | Path, spec: BrowsingSpec, seed: int = 42) -> dict:
    """Write ``folder/train-item-views.csv`` (atomically); returns what it holds."""
    rng = np.random.default_rng(seed)
    browsing = generate_browsing(spec, rng)
    tps = spec.ticks_per_second
    latest = add_final_visit(browsing, spec.n_users, tps)
    add_boundary_visits(browsing, latest - PERIOD_SECONDS * tps, PERIOD_SECONDS * tps, spec.n_users + 1, tps)
    n_visits = len(browsing.visit_user)
    first_tick = np.full(n_visits, np.iinfo(np.int64).max)
    np.minimum.at(first_tick, browsing.visit, browsing.tick)
    session_of_visit = np.empty(n_visits, dtype=np.int64)
    session_of_visit[np.lexsort((np.arange(n_visits), first_tick))] = np.arange(1, n_visits + 1)
    first_day = first_tick // MILLISECONDS_PER_DAY
    visit, tick = browsing.visit, browsing.tick
    order = np.lexsort((rng.random(len(tick)), session_of_visit[visit]))
    visit, tick, item, user = visit[order], tick[order], browsing.item[order], browsing.user[order]
    user_ids = distinct_integers(rng, spec.n_users + 4, 1, 10 * spec.n_users + 100)
    anonymous = rng.random(spec.n_users + 4) < ANONYMOUS_SHARE
    user_text = np.where(anonymous, "NA", user_ids.astype(str))
    item_ids = distinct_integers(rng, spec.n_items, 1, 10 * spec.n_items + 100)
    columns = {
        "sessionId": session_of_visit[visit],
        "userId": lambda start, stop: pa.array(user_text[user[start:stop]]),
        "itemId": item_ids[item],
        "timeframe": tick - first_day[visit] * MILLISECONDS_PER_DAY,
        "eventdate": lambda start, stop: pa.array((tick[start:stop] // MILLISECONDS_PER_DAY).astype(np.int32)).cast(
            pa.date32()
        ),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / RAW_FILE) as temporary:
        write_csv(temporary, list(columns), columns, len(tick), delimiter=";")
    return {"views": len(tick), "sessions": n_visits}
