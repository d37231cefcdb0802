"""Synthetic Rees46 ``2019-Oct.csv`` and ``2019-Nov.csv`` (eCommerce behaviour of a multi-category store), seeded.

Columns ``event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session``:
``2019-10-01 00:00:00 UTC`` times (whole seconds, so events of a user often share one), views, carts and
purchases, products with a category, a category code and a brand (either may be empty) and a price, users and a
UUID per visit. October's events in the first file, November's in the second, in time order. Sessions sit
exactly on the boundaries of the authors' test day (2019-11-30) and validation day (2019-11-29).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gru4rec_pipeline.files import atomic_outputs
from gru4rec_pipeline.names import DATASET_RAW_FILES, REES46_TIME_FORMAT
from gru4rec_pipeline.synthetic.browsing import (
    BrowsingSpec,
    add_boundary_visits,
    distinct_integers,
    generate_browsing,
    hex_ids,
    take_strings,
    write_csv,
)

RAW_FILES = DATASET_RAW_FILES["rees46"]
START = 1569888000  # 2019-10-01 00:00 UTC
NOVEMBER = 1572566400  # 2019-11-01 00:00 UTC
SPLIT_TIME = 1575158400  # the authors' split, 2019-12-01 00:00 UTC
PERIOD_SECONDS = 86400
EVENT_TYPES = ("view", "cart", "purchase")
CATEGORY_CODES = ("", "electronics.smartphone", "appliances.kitchen.refrigerators", "computers.notebook",
                  "apparel.shoes", "furniture.living_room.sofa", "electronics.audio.headphone")  # fmt: skip
BRANDS = ("", "samsung", "apple", "xiaomi", "huawei", "lucente", "sony", "bosch", "lg", "acer")
COLUMNS = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id",
           "user_session"]  # fmt: skip
PRESETS = {
    "tiny": BrowsingSpec(n_events=40_000, n_items=2_000, n_users=4_000, start=START, days=61, ticks_per_second=1,
                         kind_shares=(0.95, 0.035, 0.015), mean_visit_events=5.0),
    "default": BrowsingSpec(n_events=2_000_000, n_items=40_000, n_users=150_000, start=START, days=61,
                            ticks_per_second=1, kind_shares=(0.95, 0.035, 0.015), mean_visit_events=5.0),
    # About the published size: 42.4 and 67.5 million rows (Kaggle's description of the two files), some
    # 200,000 products and 5.3 million users.
    "full": BrowsingSpec(n_events=109_950_743, n_items=200_000, n_users=5_300_000, start=START, days=61,
                         ticks_per_second=1, kind_shares=(0.95, 0.035, 0.015), mean_visit_events=5.0),
}  # fmt: skip


def write_rees46_raw(folder: str | Path, spec: BrowsingSpec, seed: int = 42) -> dict:
    """Write ``folder/2019-Oct.csv`` and ``folder/2019-Nov.csv`` (together, atomically); returns what they hold."""
    rng = np.random.default_rng(seed)
    browsing = generate_browsing(spec, rng)
    add_boundary_visits(browsing, SPLIT_TIME - PERIOD_SECONDS, PERIOD_SECONDS, spec.n_users, 1)
    n_users = spec.n_users + 3
    user_ids = distinct_integers(rng, n_users, 510_000_000, 580_000_000)
    product_ids = distinct_integers(rng, spec.n_items, 1_000_000, 100_000_000)
    n_categories = max(10, spec.n_items // 50)
    category_ids = distinct_integers(rng, n_categories, 2_053_013_552_226_107_603, 2_300_000_000_000_000_000)
    item_category = rng.integers(0, n_categories, size=spec.n_items)
    category_code = rng.integers(0, len(CATEGORY_CODES), size=n_categories)
    item_brand = rng.integers(0, len(BRANDS), size=spec.n_items)
    item_price = np.round(rng.lognormal(np.log(80.0), 1.0, size=spec.n_items), 2)
    sessions = hex_ids(rng, len(browsing.visit_user), 16)
    uuids = pc.binary_join_element_wise(
        *[pc.utf8_slice_codeunits(sessions, a, b) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))], "-"
    )
    kind = browsing.kind.astype(np.int64)
    tick, item, user, visit = browsing.tick, browsing.item, browsing.user, browsing.visit

    def times(start: int, stop: int) -> pa.Array:
        stamps = pa.array(tick[start:stop], type=pa.timestamp("s", tz="UTC"))
        return pc.strftime(stamps, format=REES46_TIME_FORMAT)

    columns = {
        "event_time": times,
        "event_type": lambda start, stop: take_strings(pa.array(EVENT_TYPES), kind[start:stop]),
        "product_id": product_ids[item],
        "category_id": category_ids[item_category][item],
        "category_code": lambda start, stop: take_strings(
            pa.array(CATEGORY_CODES), category_code[item_category[item[start:stop]]]
        ),
        "brand": lambda start, stop: take_strings(pa.array(BRANDS), item_brand[item[start:stop]]),
        "price": item_price[item],
        "user_id": user_ids[user],
        "user_session": lambda start, stop: take_strings(uuids, visit[start:stop]),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cut = int(np.searchsorted(tick, NOVEMBER))
    summary = {}
    with atomic_outputs() as staged:
        for name, part in zip(RAW_FILES, (slice(0, cut), slice(cut, len(tick)))):
            rows = part.stop - part.start
            sliced = {
                key: (lambda a, b, f=column, o=part.start: f(a + o, b + o)) if callable(column) else column[part]
                for key, column in columns.items()
            }
            write_csv(staged.temporary(folder / name), COLUMNS, sliced, rows)
            summary[name] = rows
    return summary
