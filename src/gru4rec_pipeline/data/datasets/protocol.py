"""The GRU4Rec authors' 2023 preprocessing, after a data set's own reading: one protocol for every set.

The comparison of GRU4Rec implementations (hidasib/gru4rec_third_party_comparison, ``*_preproc.py``)
prepares every data set the same way once its events are sessions in the script's row order (which each
set's module produces, see :class:`SessionEvents`):

1. an event repeating the item of the event before it in the same session is dropped (once);
2. sessions shorter than ``min_session_length`` (2) and items with fewer than ``min_item_support`` (5)
   events are dropped in turn, round after round, until a round removes nothing;
3. with ``tsplit`` the set's split time (a fixed date, or the latest time left) and ``period`` its test
   period (a day, or a week): ``test`` holds the sessions that BEGIN at or after ``tsplit - period`` (all
   of their events), ``train_full`` the events before ``tsplit - period``, less the sessions left shorter
   than ``min_session_length``;
4. ``train_tr`` / ``valid``: the same one period earlier, from ``train_full``: ``train_tr`` its events
   before ``tsplit - 2 period`` (short sessions dropped again), ``valid`` its sessions that began (in the
   filtered data) at or after ``tsplit - 2 period``.

Times stay integers in the raw file's unit (seconds or milliseconds) until the split files are written,
so a comparison with the boundary is exact; the files hold float seconds (milliseconds survive). What
every step kept and removed goes to ``stats.json`` (``steps``), each filter round on its own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gru4rec_pipeline.data.codes import codes_present, count_codes, dense_codes, lookup_codes
from gru4rec_pipeline.data.events import write_event_rows
from gru4rec_pipeline.data.latest_window import check_test_window
from gru4rec_pipeline.data.protocol_steps import StepLog, check_splits_not_empty, describe_step
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.files import atomic_outputs
from gru4rec_pipeline.names import SPLITS

log = logging.getLogger(__name__)

# The settings a run may change, with the authors' values.
AUTHORS_PROTOCOL_DEFAULTS = {"min_session_length": 2, "min_item_support": 5}
ITEM_MAP_SCHEMA = pa.schema([("ItemId", pa.int64()), ("Original", pa.string())])


@dataclasses.dataclass(frozen=True)
class SplitRule:
    """Where a set's test period ends (``split_time``, epoch seconds; None: at the latest event left after
    the filters) and how long it is (``period_seconds``; the validation period is as long)."""

    period_seconds: int
    split_time: int | None = None


@dataclasses.dataclass
class SessionEvents:
    """A set's events as its script leaves them before deduplication: sessions, in the script's row order.

    ``session_ids``, ``item_ids`` (the ids written to the split files), ``ticks`` (integer times in units of
    1/``ticks_per_second`` s); rows sorted by session, then time, then the script's item order. ``steps``:
    what reading and sessionising kept and removed (the first entries of ``stats.json``'s steps); ``raw``:
    counts of the raw files; ``item_names``: for a set whose items are strings, the string of each item id.
    """

    session_ids: np.ndarray
    item_ids: np.ndarray
    ticks: np.ndarray
    ticks_per_second: int
    steps: list[dict]
    raw: dict
    sources: list[str]
    item_names: pa.Array | None = None

    def seconds(self) -> np.ndarray:
        if self.ticks_per_second == 1:
            return self.ticks.astype(np.float64)
        # One correctly rounded division: 1442545200123 ms -> 1442545200.123 exactly as written.
        return self.ticks / float(self.ticks_per_second)


def settings_with_defaults(settings: dict) -> dict:
    unknown = set(settings) - set(AUTHORS_PROTOCOL_DEFAULTS)
    if unknown:
        raise ConfigError(
            "protocol", f"unknown settings {sorted(unknown)}; expected {sorted(AUTHORS_PROTOCOL_DEFAULTS)}"
        )
    merged = {**AUTHORS_PROTOCOL_DEFAULTS, **settings}
    for key, value in merged.items():
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ConfigError(f"protocol.{key}", f"expected a positive integer, got {value!r}")
    return {key: int(value) for key, value in merged.items()}


def is_script_order(session_ids: np.ndarray, ticks: np.ndarray) -> bool:
    """Whether rows are sorted by session, then time (the order the protocol needs)."""
    if len(ticks) < 2:
        return True
    later = session_ids[1:] > session_ids[:-1]
    same = session_ids[1:] == session_ids[:-1]
    return bool(np.all(later | (same & (ticks[1:] >= ticks[:-1]))))


class SessionRuns:
    """Rows sorted by session: per-session counts and per-row lookups over the runs, one pass each (no scatter)."""

    def __init__(self, session_ids: np.ndarray):
        n = len(session_ids)
        new_run = np.ones(n, dtype=bool)
        np.not_equal(session_ids[1:], session_ids[:-1], out=new_run[1:])
        self.starts = np.flatnonzero(new_run)
        self.lengths = np.diff(np.append(self.starts, n))

    def sizes(self, rows: np.ndarray) -> np.ndarray:
        """Rows of each session among ``rows``."""
        if len(self.starts) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.add.reduceat(rows.view(np.int8), self.starts, dtype=np.int64)

    def present(self, rows: np.ndarray) -> int:
        return int(np.count_nonzero(self.sizes(rows)))

    def rows_of(self, flags: np.ndarray) -> np.ndarray:
        """Each row's session's flag."""
        return np.repeat(flags, self.lengths)

    def first(self, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Each session's first value among ``rows`` (sorted by time within a session); int64 max when none."""
        if len(self.starts) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.minimum.reduceat(np.where(rows, values, np.iinfo(np.int64).max), self.starts)


class RunSteps(StepLog):
    """:class:`StepLog` for rows sorted by session: sessions counted over the runs."""

    def __init__(self, runs: SessionRuns, entries: list[dict]):
        self.runs = runs
        self.entries = [dict(entry) for entry in entries]

    def record(self, step: str, rows: np.ndarray, removal: bool = True, **extra: int) -> None:
        entry = {"step": step, "events": int(np.count_nonzero(rows)), "sessions": self.runs.present(rows)}
        if removal and self.entries:
            before = self.entries[-1]
            entry["removed_events"] = before["events"] - entry["events"]
            entry["removed_sessions"] = before["sessions"] - entry["sessions"]
        self.entries.append({**entry, **extra})


def protocol_masks(
    events: SessionEvents, rule: SplitRule, min_session_length: int = 2, min_item_support: int = 5
) -> tuple[dict[str, np.ndarray], list[dict], dict[str, dict[str, int]], float]:
    """Masks of the four splits over the rows of ``events``, the steps (after ``events.steps``), the
    events / sessions / items of the protocol's input (``raw``) and of each split, and the split time (epoch
    seconds)."""
    session_ids, item_ids, ticks = events.session_ids, events.item_ids, events.ticks
    runs = SessionRuns(session_ids)
    item_codes, n_items = dense_codes(item_ids)
    steps = RunSteps(runs, events.steps)
    if not steps.entries:
        steps.record("input events", np.ones(len(ticks), dtype=bool))
    keep = np.ones(len(ticks), dtype=bool)
    keep[1:] = (session_ids[1:] != session_ids[:-1]) | (item_ids[1:] != item_ids[:-1])
    steps.record("an event repeating the item of the event before it in its session dropped", keep)
    rounds, left = 0, -1
    while left != int(np.count_nonzero(keep)):
        left = int(np.count_nonzero(keep))
        rounds += 1
        keep &= runs.rows_of(runs.sizes(keep) >= min_session_length)
        steps.record(f"filter round {rounds}: sessions shorter than min_session_length={min_session_length}", keep)
        support = count_codes(item_codes, n_items, keep)
        keep &= lookup_codes(support >= min_item_support, item_codes)
        rare = int(np.count_nonzero((support > 0) & (support < min_item_support)))
        steps.record(
            f"filter round {rounds}: items with fewer than min_item_support={min_item_support} events",
            keep,
            removed_items=rare,
        )
    start = runs.first(ticks, keep)
    period = rule.period_seconds * events.ticks_per_second
    if rule.split_time is None:
        split = int(np.max(ticks, where=keep, initial=np.iinfo(np.int64).min)) if keep.any() else 0
    else:
        split = rule.split_time * events.ticks_per_second
    boundary = split - period
    test = keep & runs.rows_of(start >= boundary)
    steps.record(f"sessions beginning at or after the split time - {rule.period_seconds} s -> test", test, False)

    def before(rows: np.ndarray, limit: int, name: str) -> np.ndarray:
        early = rows & (ticks < limit)
        steps.record(f"events before the split time - {(split - limit) // events.ticks_per_second} s -> {name}",
                     early, removal=False)  # fmt: skip
        early &= runs.rows_of(runs.sizes(early) >= min_session_length)
        steps.record(f"{name} sessions shorter than min_session_length={min_session_length}", early)
        return early

    train_full = before(keep, boundary, "train_full")
    train_tr = before(train_full, boundary - period, "train_tr")
    valid = train_full & runs.rows_of(start >= boundary - period)
    steps.record("train_full sessions beginning in the period before the test period -> valid", valid, False)
    masks = {"train_full": train_full, "test": test, "train_tr": train_tr, "valid": valid}
    everything = np.ones(len(ticks), dtype=bool)
    counts = {
        name: {
            "events": int(np.count_nonzero(rows)),
            "sessions": runs.present(rows),
            "items": int(np.count_nonzero(codes_present(item_codes, n_items, rows))),
        }
        for name, rows in [("raw", everything), *masks.items()]
    }
    return masks, steps.entries, counts, split / events.ticks_per_second


def write_dataset_splits(
    dataset: str,
    events: SessionEvents,
    rule: SplitRule,
    paths: dict[str, str | Path],
    stats_path: str | Path,
    item_map_path: str | Path | None = None,
    min_test_predictions: int = 1,
    published: dict | None = None,
    **settings,
) -> dict:
    """The split stage of a data set: the split files, ``stats.json`` (and the item map, for sets whose items
    are strings), together or not at all; returns the statistics.

    Refused (DataFormatError naming the raw files) when a split would be empty or the test split would give
    fewer than ``min_test_predictions`` next-item predictions.
    """
    settings = settings_with_defaults(settings)
    source = ", ".join(events.sources)
    if not is_script_order(events.session_ids, events.ticks):
        raise DataFormatError(source, "events are not sorted by session, then time")
    masks, steps, counts, split_time = protocol_masks(events, rule, **settings)
    for step in steps:
        log.info("%s: %s", dataset, describe_step(step))
    check_splits_not_empty(counts, steps, settings, source)
    seconds = events.seconds()
    rows = masks["train_full"] | masks["test"]
    check_test_window(
        events.session_ids, seconds, rows, float(rule.period_seconds), counts["test"], min_test_predictions, source
    )
    stats = {
        "dataset": dataset,
        "sources": events.sources,
        "settings": {**settings, "period_seconds": rule.period_seconds, "fixed_split_time": rule.split_time},
        "split_time": split_time,
        "raw_files": events.raw,
        "splits": counts,
        "steps": steps,
    }
    if published:
        stats["published"] = published
    for path in [*paths.values(), stats_path, *([item_map_path] if item_map_path else [])]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs() as staged:
        for name in SPLITS:
            if name in paths:
                write_event_rows(
                    staged.temporary(paths[name]), events.session_ids, events.item_ids, seconds, masks[name]
                )
        if item_map_path is not None:
            if events.item_names is None:
                raise ConfigError("item_map", f"{dataset} keeps its raw item ids: it has no item map")
            item_ids = np.unique(events.item_ids[rows])
            names = events.item_names.take(pa.array(item_ids)).cast(pa.string())
            pq.write_table(
                pa.table([pa.array(item_ids), names], schema=ITEM_MAP_SCHEMA), staged.temporary(item_map_path)
            )
        staged.temporary(stats_path).write_text(json.dumps(stats, indent=2) + "\n")
    for name, c in counts.items():
        log.info("%s %s: %d events, %d sessions, %d items", dataset, name, c["events"], c["sessions"], c["items"])
    return stats
