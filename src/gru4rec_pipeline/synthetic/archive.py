"""A synthetic stand-in for ``yoochoose-data.7z`` (RecSys Challenge 2015), generated from a seed.

The archive has the four members of the real one, in their formats (comma-separated, no header):

* ``yoochoose-clicks.dat``: SessionID,Timestamp,ItemID,Category
  (``1,2014-04-07T10:51:09.277Z,214536502,0``)
* ``yoochoose-buys.dat``: SessionID,Timestamp,ItemID,Price,Quantity
* ``yoochoose-test.dat``: clicks format, sessions disjoint from the clicks file
* ``dataset-README.txt``: what the data is

Sessions come from the hidden-intent process of :mod:`.synthetic_process`; its parameters are
saved next to the archive so that :class:`.oracle.Oracle` can compute the Bayes-optimal next-item
distribution later. The same preset, overrides and seed give a byte-identical archive.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.files import atomic_outputs
from gru4rec_pipeline.synthetic.process import (
    SampledSessions,
    SyntheticProcess,
    SyntheticSpec,
    build_process,
    sample_sessions,
)

log = logging.getLogger(__name__)

PRESETS: dict[str, SyntheticSpec] = {
    # Seconds for everything downstream; used by the tests.
    "tiny": SyntheticSpec(n_items=400, n_sessions=5_500, n_intents=8, n_days=30, boost_days=4),
    # The whole pipeline, GRU training included, in minutes on two cores.
    "default": SyntheticSpec(final_day_volume=4.0),  # a busier last day: ~15-20k test events
    # RSC15 scale; its last day is partial, giving a test split of about 15k sessions.
    "full": SyntheticSpec(
        n_items=80_000, n_sessions=9_250_000, item_popularity_sigma=2.65, final_day_volume=0.35, compression_preset=0
    ),
}

MEMBER_NAMES = ("yoochoose-clicks.dat", "yoochoose-buys.dat", "yoochoose-test.dat", "dataset-README.txt")
# Category strings: '0' (unknown), 'S' (special offer), '1'..'12', then brand ids.
FIXED_CATEGORIES = ["0", "S"] + [str(number) for number in range(1, 13)]
CSV_CHUNK_ROWS = 2_000_000


def resolve_spec(preset: str, overrides: dict | None = None) -> SyntheticSpec:
    """The preset's spec with ``overrides`` applied; unknown names or bad values raise ConfigError."""
    if preset not in PRESETS:
        raise ConfigError("preset", f"unknown preset '{preset}', expected one of {sorted(PRESETS)}")
    spec = PRESETS[preset]
    fields = {field.name: field for field in dataclasses.fields(SyntheticSpec)}
    changes = {}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise ConfigError(key, f"not a synthetic data setting; expected one of {sorted(fields)}")
        default = getattr(spec, key)
        try:
            changes[key] = type(default)(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(key, f"expected a {type(default).__name__}, got {value!r}") from exc
    spec = dataclasses.replace(spec, **changes)
    check_spec(spec)
    return spec


def check_spec(spec: SyntheticSpec) -> None:
    positive = ["n_items", "n_sessions", "n_days", "n_intents", "max_session_length", "boost_days"]
    for key in positive:
        if getattr(spec, key) < 1:
            raise ConfigError(key, f"must be at least 1, got {getattr(spec, key)}")
    shares = [
        "switch_prob",
        "repeat_prob",
        "one_click_share",
        "long_session_share",
        "initial_item_share",
        "launch_boost_share",
        "random_boost_share",
        "buy_session_share",
        "zero_price_share",
    ]
    for key in shares:
        if not 0.0 <= getattr(spec, key) <= 1.0:
            raise ConfigError(key, f"must be a probability in [0, 1], got {getattr(spec, key)}")
    if spec.repeat_prob >= 1.0:
        raise ConfigError("repeat_prob", "must be below 1, or no session could ever change item")
    if spec.n_items > 1_000_000:
        raise ConfigError("n_items", f"at most 1,000,000 distinct 9-digit item ids, got {spec.n_items}")
    if not 0 <= spec.compression_preset <= 9:
        raise ConfigError("compression_preset", f"LZMA presets are 0..9, got {spec.compression_preset}")
    try:
        np.datetime64(spec.start_date, "D")
    except ValueError as exc:
        raise ConfigError("start_date", f"expected YYYY-MM-DD, got {spec.start_date!r}") from exc


@dataclasses.dataclass
class SyntheticData:
    process: SyntheticProcess
    sessions: SampledSessions  # clicks and test-file sessions together, in start order
    session_ids: np.ndarray  # int64 [S], increasing with start time
    in_test_file: np.ndarray  # bool [S]
    click_category: np.ndarray  # int64 [E] code into ``categories``
    categories: list[str]
    buys: dict  # SessionID, time_ms, ItemID, Price, Quantity arrays


def generate(spec: SyntheticSpec, seed: int) -> SyntheticData:
    """Draw the process and the sessions; independent random streams per part."""
    process_rng, session_rng, category_rng, buy_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(4)
    )
    process = build_process(spec, process_rng)
    n_all = int(round(spec.n_sessions * (1.0 + spec.test_file_share)))
    sessions = sample_sessions(process, spec, n_all, session_rng)
    session_ids = np.arange(1, n_all + 1, dtype=np.int64)
    in_test_file = session_rng.random(n_all) < spec.test_file_share / (1.0 + spec.test_file_share)

    n_brands = max(1, spec.n_items // 20)
    brands = 2_000_000_000 + category_rng.choice(100_000_000, size=n_brands, replace=False)
    categories = FIXED_CATEGORIES + [str(brand) for brand in brands]
    item_category = np.where(
        category_rng.random(spec.n_items) < 0.7,
        2 + category_rng.integers(0, 12, size=spec.n_items),
        len(FIXED_CATEGORIES) + category_rng.integers(0, n_brands, size=spec.n_items),
    )
    shown = category_rng.random(sessions.item_index.size)
    click_category = np.select([shown < 0.6, shown < 0.65], [0, 1], item_category[sessions.item_index])

    buys = draw_buys(process, spec, sessions, session_ids, ~in_test_file, buy_rng)
    return SyntheticData(process, sessions, session_ids, in_test_file, click_category, categories, buys)


def draw_buys(
    process: SyntheticProcess,
    spec: SyntheticSpec,
    sessions: SampledSessions,
    session_ids: np.ndarray,
    eligible: np.ndarray,
    rng: np.random.Generator,
) -> dict:
    """Purchases of clicked items shortly after a session's last click (about 2.3 per buying session)."""
    item_price = np.maximum(1, np.rint(rng.lognormal(np.log(1500.0), 1.0, size=process.n_items))).astype(np.int64)
    buying = np.flatnonzero(eligible & (rng.random(session_ids.size) < spec.buy_session_share))
    n_buys = rng.geometric(1.0 / 2.3, size=buying.size)
    session = np.repeat(buying, n_buys)
    lengths = sessions.lengths[session]
    event = sessions.offsets[session] + (rng.random(session.size) * lengths).astype(np.int64)
    last_click_ms = sessions.time_ms[sessions.offsets[session + 1] - 1]
    time_ms = last_click_ms + np.rint(rng.lognormal(np.log(300_000.0), 0.7, size=session.size)).astype(np.int64)
    item_index = sessions.item_index[event]
    zero = rng.random(session.size) < spec.zero_price_share
    quantity = np.where(zero, 0, rng.geometric(0.8, size=session.size))
    price = np.where(zero, 0, item_price[item_index])
    order = np.lexsort((time_ms, session))
    return {
        "SessionID": session_ids[session][order],
        "time_ms": time_ms[order],
        "ItemID": process.item_ids[item_index][order],
        "Price": price[order],
        "Quantity": quantity[order],
    }


def timestamp_strings(time_ms: np.ndarray) -> pa.Array:
    """RSC15's timestamp format: 2014-04-07T10:51:09.277Z."""
    stamps = pa.array(time_ms, type=pa.timestamp("ms", tz="UTC"))
    return pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ")


def write_csv_chunks(path: Path, columns: dict, n_rows: int) -> None:
    """Write columns (numpy arrays, or callables for derived string columns) without header or quotes.

    ``columns`` maps a name to either an array or a function ``(start, stop) -> pa.Array``;
    chunks bound the memory taken by the string columns at RSC15 scale.
    """
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    writer = None
    try:
        for start in range(0, max(n_rows, 1), CSV_CHUNK_ROWS):
            stop = min(start + CSV_CHUNK_ROWS, n_rows)
            chunk = {
                name: column(start, stop) if callable(column) else pa.array(column[start:stop])
                for name, column in columns.items()
            }
            table = pa.table(chunk)
            if writer is None:
                writer = pa_csv.CSVWriter(str(path), table.schema, write_options=options)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def write_click_file(path: Path, data: SyntheticData, session_mask: np.ndarray) -> int:
    sessions = data.sessions
    lengths = sessions.lengths
    event_mask = np.repeat(session_mask, lengths)
    session_id = np.repeat(data.session_ids, lengths)[event_mask]
    time_ms = sessions.time_ms[event_mask]
    item_id = data.process.item_ids[sessions.item_index[event_mask]]
    category_code = data.click_category[event_mask].astype(np.int32)
    dictionary = pa.array(data.categories)

    def category(start: int, stop: int) -> pa.Array:
        codes = pa.array(category_code[start:stop])
        return pa.DictionaryArray.from_arrays(codes, dictionary).cast(pa.string())

    columns = {
        "SessionID": session_id,
        "Timestamp": lambda start, stop: timestamp_strings(time_ms[start:stop]),
        "ItemID": item_id,
        "Category": category,
    }
    write_csv_chunks(path, columns, int(event_mask.sum()))
    return int(event_mask.sum())


def write_buy_file(path: Path, buys: dict) -> int:
    columns = {
        "SessionID": buys["SessionID"],
        "Timestamp": lambda start, stop: timestamp_strings(buys["time_ms"][start:stop]),
        "ItemID": buys["ItemID"],
        "Price": buys["Price"],
        "Quantity": buys["Quantity"],
    }
    write_csv_chunks(path, columns, buys["SessionID"].size)
    return int(buys["SessionID"].size)


def readme_text(spec: SyntheticSpec, preset: str, seed: int, summary: dict) -> str:
    return f"""SYNTHETIC yoochoose data (a stand-in for the RecSys Challenge 2015 data set)
================================================================================

This archive was generated by gru4rec_pipeline.synthetic.archive (preset '{preset}', seed {seed}).
It is NOT the YOOCHOOSE data: no real user is behind any click. It only mimics the
layout and the broad statistics of the original, so that the pipeline can run end to end.

Sessions follow a hidden-intent process: each session has an intent that persists
from click to click (switching with probability {spec.switch_prob}), items are drawn from
the intent's heavy-tailed item distribution, an event repeats the previous item with
probability {spec.repeat_prob}, items appear over the {spec.n_days} days from {spec.start_date}
(UTC) and some have popularity boosts. Session length does not depend on the intent.
The process parameters are saved separately (.npz) so that the exact Bayes-optimal
next-item distribution of any session prefix can be computed.

Files (comma-separated, no header line):

yoochoose-clicks.dat  {summary["clicks"]:,} clicks in {summary["sessions"]:,} sessions
    SessionID  integer, increases with the session's start time
    Timestamp  UTC, e.g. 2014-04-07T10:51:09.277Z (millisecond resolution)
    ItemID     9-digit item id
    Category   0 (unknown), S (special offer), 1-12 (a category) or a brand id

yoochoose-buys.dat    {summary["buys"]:,} purchases
    SessionID, Timestamp, ItemID as above; Price (integer, 0 if unknown);
    Quantity (integer, 0 if unknown)

yoochoose-test.dat    {summary["test_file_clicks"]:,} clicks in {summary["test_file_sessions"]:,} sessions
    clicks format; sessions disjoint from those in yoochoose-clicks.dat
"""


class FixedTimeSevenZipFile:
    """py7zr archive whose member timestamps are a fixed value, so output bytes depend only on content."""

    def __new__(cls, path, member_time: float, filters):
        import py7zr
        from py7zr.helpers import ArchiveTimestamp

        class _Archive(py7zr.SevenZipFile):
            @staticmethod
            def _make_file_info_from_name(bio, size, arcname):
                info = py7zr.SevenZipFile._make_file_info_from_name(bio, size, arcname)
                stamp = ArchiveTimestamp.from_datetime(member_time)
                info["creationtime"] = info["lastwritetime"] = info["lastaccesstime"] = stamp
                return info

        return _Archive(path, mode="w", filters=filters)


def write_archive(
    archive_path: Path, member_paths: dict[str, Path], member_time: float, compression_preset: int
) -> None:
    import py7zr

    filters = [{"id": py7zr.FILTER_LZMA2, "preset": compression_preset}]
    with FixedTimeSevenZipFile(archive_path, member_time, filters) as archive:
        for name in MEMBER_NAMES:
            with open(member_paths[name], "rb") as handle:
                archive.writef(handle, name)


def write_synthetic_archive(archive_path, process_path, preset: str = "default", seed: int = 42, **overrides) -> dict:
    """Generate the synthetic data set; write the 7z archive and the process .npz atomically.

    Returns a summary: clicks, sessions, items (distinct clicked), buys, test-file clicks and
    sessions, the preset, seed and the seconds it took.
    """
    started = time.perf_counter()
    spec = resolve_spec(preset, overrides)
    archive_path, process_path = Path(archive_path), Path(process_path)
    log.info("generating synthetic yoochoose data: preset %s, seed %d", preset, seed)
    data = generate(spec, int(seed))

    clicks_mask = ~data.in_test_file
    click_events = np.repeat(clicks_mask, data.sessions.lengths)
    summary = {
        "preset": preset,
        "seed": int(seed),
        "clicks": int(click_events.sum()),
        "sessions": int(clicks_mask.sum()),
        "items": int(np.unique(data.sessions.item_index[click_events]).size),
        "process_items": data.process.n_items,
        "buys": int(data.buys["SessionID"].size),
        "test_file_clicks": int((~click_events).sum()),
        "test_file_sessions": int(data.in_test_file.sum()),
    }
    member_time = data.process.start_epoch + spec.n_days * 86400.0

    archive_path.parent.mkdir(parents=True, exist_ok=True)
    process_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=archive_path.parent, prefix=".synthesize-") as work_dir:
        work = Path(work_dir)
        members = {name: work / name for name in MEMBER_NAMES}
        write_click_file(members["yoochoose-clicks.dat"], data, clicks_mask)
        write_click_file(members["yoochoose-test.dat"], data, data.in_test_file)
        write_buy_file(members["yoochoose-buys.dat"], data.buys)
        members["dataset-README.txt"].write_text(readme_text(spec, preset, seed, summary))
        log.info("compressing %s (LZMA2 preset %d)", archive_path.name, spec.compression_preset)
        # The archive and the process appear together, whole, or not at all.
        with atomic_outputs() as staged:
            write_archive(staged.temporary(archive_path), members, member_time, spec.compression_preset)
            data.process.save(staged.temporary(process_path))
    summary["seconds"] = round(time.perf_counter() - started, 2)
    log.info("wrote %s and %s: %s", archive_path, process_path, summary)
    return summary
