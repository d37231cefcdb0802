"""The deduplicated "Yoochoose" protocol of the GRU4Rec authors' third-party comparison (2023).

``protocol.preset: yoochoose`` (hidasib/gru4rec_third_party_comparison, ``yoochoose_preproc.py``):

1. the clicks of ``yoochoose-clicks.dat`` and ``yoochoose-test.dat`` together, times cut to integer
   seconds, ordered by SessionId, Time, ItemId;
2. a click repeating the item of the click before it in the same session is dropped (once, before
   the filters);
3. sessions shorter than ``min_session_length`` (2) and items with fewer than ``min_item_support`` (5)
   clicks are dropped in turn, again and again until neither removes anything;
4. with ``tmax`` the latest time left and ``day`` = ``split_seconds`` (86400): ``test`` holds the
   sessions that BEGIN at or after ``tmax - day`` (every click of them, unfiltered); ``train_full``
   the clicks before ``tmax - day``, less the sessions left shorter than ``min_session_length``;
5. ``train_tr`` / ``valid``: the same one day earlier, taken from ``train_full``: ``train_tr`` its
   clicks before ``tmax - 2 day`` (short sessions dropped again), ``valid`` its sessions beginning
   at or after ``tmax - 2 day``.

Unlike RSC15's protocol nothing removes test clicks of items unknown to training here; the
sessions stage drops those as it maps items to the vocabulary. Everything runs on dense codes and
boolean masks over the sorted rows, like :mod:`.protocol`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import py7zr
import pyarrow.parquet as pq

from gru4rec_pipeline.data.clicks import clicks_to_parquet
from gru4rec_pipeline.data.codes import codes_present, count_codes, dense_codes, lookup_codes
from gru4rec_pipeline.data.events import EVENT_SCHEMA, event_arrays, read_events, write_event_rows
from gru4rec_pipeline.data.extract import extract_members
from gru4rec_pipeline.data.latest_window import check_test_window, utc
from gru4rec_pipeline.data.protocol import split_statistics
from gru4rec_pipeline.data.protocol_steps import StepLog, check_splits_not_empty, describe_step
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_output, atomic_outputs
from gru4rec_pipeline.names import PROTOCOL_DEFAULTS, SPLITS

log = logging.getLogger(__name__)

TEST_FILE = "yoochoose-test.dat"


def yoochoose_masks(
    session_ids: np.ndarray,
    item_ids: np.ndarray,
    times: np.ndarray,
    min_session_length: int = 2,
    min_item_support: int = 5,
    split_seconds: float = 86400.0,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray], list[dict], dict]:
    """The sorted event arrays (integer-second times), masks of the four splits over them, the steps, and the
    events / sessions / items of the input (``raw``) and of each split."""
    seconds = np.floor(times)
    order = session_time_item_order(session_ids, seconds, item_ids)
    if order is not None:
        session_ids, item_ids, seconds = session_ids[order], item_ids[order], seconds[order]
    del order
    session_codes, n_sessions = dense_codes(session_ids)
    item_codes, n_items = dense_codes(item_ids)
    steps = StepLog(session_codes, n_sessions)
    steps.record("input clicks (clicks file and test file, integer seconds)", np.ones(len(seconds), dtype=bool))
    keep = np.ones(len(seconds), dtype=bool)
    keep[1:] = (session_ids[1:] != session_ids[:-1]) | (item_ids[1:] != item_ids[:-1])
    steps.record("repeated consecutive clicks of an item in a session collapsed", keep)
    rounds, left = 0, -1
    while left != int(np.count_nonzero(keep)):
        left = int(np.count_nonzero(keep))
        rounds += 1
        keep &= lookup_codes(count_codes(session_codes, n_sessions, keep) >= min_session_length, session_codes)
        keep &= lookup_codes(count_codes(item_codes, n_items, keep) >= min_item_support, item_codes)
    steps.record(
        f"sessions shorter than min_session_length={min_session_length} and items with fewer than "
        f"min_item_support={min_item_support} clicks, repeated until nothing changed ({rounds} rounds)",
        keep,
    )
    start = _session_starts(session_codes, n_sessions, seconds, keep)
    boundary = np.max(seconds, where=keep, initial=-np.inf) - split_seconds
    test = keep & lookup_codes(start >= boundary, session_codes)
    steps.record(f"sessions beginning in the last {split_seconds:g} s -> test", test, removal=False)

    def before(rows: np.ndarray, limit: float, name: str) -> np.ndarray:
        early = rows & (seconds < limit)
        steps.record(f"clicks before the split -> {name}", early, removal=False)
        early &= lookup_codes(count_codes(session_codes, n_sessions, early) >= min_session_length, session_codes)
        steps.record(f"{name} sessions shorter than min_session_length={min_session_length}", early)
        return early

    train_full = before(keep, boundary, "train_full")
    train_tr = before(train_full, boundary - split_seconds, "train_tr")
    valid = train_full & lookup_codes(start >= boundary - split_seconds, session_codes)
    steps.record(f"train_full sessions beginning in the {split_seconds:g} s before test -> valid", valid, False)
    masks = {"train_full": train_full, "test": test, "train_tr": train_tr, "valid": valid}
    counts = {
        name: {
            "events": int(np.count_nonzero(rows)),
            "sessions": int(np.count_nonzero(codes_present(session_codes, n_sessions, rows))),
            "items": int(np.count_nonzero(codes_present(item_codes, n_items, rows))),
        }
        for name, rows in [("raw", np.ones(len(seconds), dtype=bool)), *masks.items()]
    }
    return (session_ids, item_ids, seconds), masks, steps.entries, counts


def session_time_item_order(session_ids: np.ndarray, seconds: np.ndarray, item_ids: np.ndarray) -> np.ndarray | None:
    """An order of the rows by session, second, item (``np.lexsort((item_ids, seconds, session_ids))`` up to
    rows equal in all three), or None when they are in that order already.

    The clicks come sorted by session and time (the clicks file and the test file one after the other), so
    session and second are packed into one int64 key whose stable sort (timsort) merges the sorted runs in
    linear time; items are then sorted only within runs of equal (session, second), which are few.
    """
    n = len(seconds)
    if n < 2:
        return None
    low_session, high_session = int(session_ids.min()), int(session_ids.max())
    low_second, high_second = float(seconds.min()), float(seconds.max())
    second_span = int(high_second - low_second) + 1
    if not np.isfinite(low_second + high_second) or (high_session - low_session + 1) * second_span >= 2**62:
        return np.lexsort((item_ids, seconds, session_ids))
    key = session_ids.astype(np.int64) - low_session
    key *= second_span
    key += (seconds - low_second).astype(np.int64)
    order = None
    if (key[1:] < key[:-1]).any():
        order = np.argsort(key, kind="stable")
        key = key[order]
    same = key[1:] == key[:-1]
    del key
    if not same.any():
        return order
    # rows in runs of equal (session, second): order them by item within their run
    tied = np.flatnonzero(np.concatenate([[False], same]) | np.concatenate([same, [False]]))
    run = np.cumsum(np.concatenate([[True], ~same[tied[1:] - 1]]))
    rows = tied if order is None else order[tied]
    within = tied[np.lexsort((item_ids[rows], run))]
    if np.array_equal(within, tied):
        return order
    if order is None:
        order = np.arange(n)
    order[tied] = order[within]
    return order


def _session_starts(session_codes: np.ndarray, n_sessions: int, seconds: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each session's first time among ``rows`` (rows sorted by session then time; inf when none)."""
    kept = np.flatnonzero(rows)
    first = kept[np.concatenate([[True], session_codes[kept][1:] != session_codes[kept][:-1]])] if len(kept) else kept
    start = np.full(n_sessions, np.inf)
    start[session_codes[first]] = seconds[first]
    return start


def with_test_file(clicks, test_clicks_path: str | Path | None, clicks_path: str | Path = "<clicks>", margin=86400.0):
    """SessionId, ItemId, Time arrays of the clicks (read from ``clicks_path``) and, when there are any, of the test
    file's clicks.

    A test file that is missing or holds no clicks is warned about: the protocol's test day then has
    only the clicks file's sessions. One that cannot belong with the clicks is refused, naming both files: one
    whose session ids the clicks file has too (the protocol joins the files by session id, so those sessions
    would merge; in RSC15 the two files' ids are disjoint, so a shared id means a test file of other data), or
    one whose clicks lie outside the clicks file's period by more than ``margin`` seconds (in RSC15 both cover
    the same six months; a test file of another period or with a wrong clock would become the test split).
    """
    session_ids, item_ids, times = event_arrays(clicks)
    if test_clicks_path is None or not Path(test_clicks_path).exists():
        log.warning("%s not given: the yoochoose protocol adds its sessions to the clicks; 0 sessions added", TEST_FILE)
        return session_ids, item_ids, times
    extra = read_events(test_clicks_path)
    if len(extra) == 0:
        log.warning("%s (%s) holds no clicks: 0 sessions added to the clicks", TEST_FILE, test_clicks_path)
        return session_ids, item_ids, times
    extra_sessions, extra_items, extra_times = event_arrays(extra, source=test_clicks_path)
    test_source = f"{test_clicks_path} ({TEST_FILE}'s clicks)"
    shared = np.intersect1d(np.unique(extra_sessions), session_ids, assume_unique=False)
    if len(shared):
        raise DataFormatError(
            test_source,
            f"{len(shared):,} of its session ids are session ids of {clicks_path} too (e.g. {shared[0]}); the "
            "protocol joins the two files by session id, which would merge those sessions into one. In RSC15 the "
            f"two files' ids are disjoint: is {TEST_FILE} from the same data as the clicks?",
        )
    if len(times) and (extra_times.min() < times.min() - margin or extra_times.max() > times.max() + margin):
        raise DataFormatError(
            test_source,
            f"its clicks span {utc(extra_times.min())} .. {utc(extra_times.max())}, outside the period of "
            f"{clicks_path} ({utc(times.min())} .. {utc(times.max())}) by more than protocol.split_seconds="
            f"{margin:g} s; in RSC15 both files cover the same six months: a test file of other data or a wrong clock?",
        )
    log.info(
        "%s: %d clicks in %d sessions added to the clicks",
        test_clicks_path,
        len(extra_times),
        len(np.unique(extra_sessions)),
    )
    return (
        np.concatenate([session_ids, extra_sessions]),
        np.concatenate([item_ids, extra_items]),
        np.concatenate([times, extra_times]),
    )


def extract_test_clicks(archive: str | Path, parquet_path: str | Path) -> int:
    """``yoochoose-test.dat`` of ``archive`` as an events parquet file; returns its clicks.

    An archive without that member (or with an empty one) gives an empty file and a warning naming it:
    the yoochoose protocol then runs on the clicks file alone.
    """
    archive, parquet_path = Path(archive), Path(parquet_path)
    parquet_path.parent.mkdir(parents=True, exist_ok=True)
    with py7zr.SevenZipFile(archive, mode="r") as seven_zip:
        names = [entry.filename for entry in seven_zip.list() if Path(entry.filename).name == TEST_FILE]
    if not names:
        log.warning("%s has no %s: 0 sessions will be added to the clicks", archive, TEST_FILE)
        _write_empty(parquet_path)
        return 0
    with tempfile.TemporaryDirectory(dir=parquet_path.parent, prefix=".test-clicks-") as staging:
        dat = extract_members(archive, staging, [names[0]])[names[0]]
        if dat.stat().st_size == 0:
            log.warning("%s: %s is empty: 0 sessions will be added to the clicks", archive, TEST_FILE)
            _write_empty(parquet_path)
            return 0
        try:
            return clicks_to_parquet(dat, parquet_path)
        except DataFormatError as exc:
            # Named as the member of the archive it is: the extracted copy is gone when this is read.
            raise DataFormatError(f"{names[0]} in {archive}", exc.detail, line=exc.line) from None


def _write_empty(path: Path) -> None:
    with atomic_output(path) as temporary:
        pq.write_table(EVENT_SCHEMA.empty_table(), temporary)


def split_yoochoose(
    clicks_path: str | Path,
    paths: dict[str, str | Path],
    stats_path: str | Path,
    test_clicks_path: str | Path | None = None,
    min_test_predictions: int = 1,
    **thresholds,
) -> dict:
    """The split stage under the yoochoose preset: the four split files and ``stats.json``, together or not at all.

    ``thresholds``: min_session_length, min_item_support, split_seconds (drop_duplicates has no effect:
    repeated consecutive clicks are always collapsed).
    """
    settings = {**PROTOCOL_DEFAULTS, **thresholds}
    arrays = with_test_file(read_events(clicks_path), test_clicks_path, clicks_path, float(settings["split_seconds"]))
    (session_ids, item_ids, seconds), masks, steps, counts = yoochoose_masks(
        *arrays,
        min_session_length=int(settings["min_session_length"]),
        min_item_support=int(settings["min_item_support"]),
        split_seconds=float(settings["split_seconds"]),
    )
    del arrays
    for step in steps:
        log.info("%s", describe_step(step))
    check_splits_not_empty(counts, steps, settings, clicks_path)
    rows = masks["train_full"] | masks["test"]
    split_seconds = float(settings["split_seconds"])
    check_test_window(session_ids, seconds, rows, split_seconds, counts["test"], min_test_predictions, clicks_path)
    for path in [*paths.values(), stats_path]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs() as staged:
        for name in SPLITS:
            if name in paths:
                write_event_rows(staged.temporary(paths[name]), session_ids, item_ids, seconds, masks[name])
        stats = split_statistics({n: counts[n] for n in SPLITS}, raw=counts["raw"], thresholds=thresholds, steps=steps)
        stats["preset"] = "yoochoose"
        staged.temporary(stats_path).write_text(json.dumps(stats, indent=2) + "\n")
    return stats
