"""The split stage's outputs for a public data set: the four split files, ``stats.json`` and the item map.

:func:`write_dataset_splits` runs the protocol (``protocol.py``) over a set's :class:`SessionEvents` and writes
``train_full``, ``test``, ``train_tr`` and ``valid`` in the event file format (SessionId int64, ItemId int64,
Time float64 seconds; ``data/events.py``'s schema and Parquet options, which ``EVENT_SCHEMA`` and
``PARQUET_OPTIONS`` repeat here so that this stage needs neither pandas nor the modules that import it; a test
keeps the two equal), ``stats.json`` (every step's removals) and, for a set whose items are strings, the item map.
All appear together or not at all.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from gru4rec_pipeline.data.datasets.arrays import count_codes
from gru4rec_pipeline.data.datasets.columns import numpy_array
from gru4rec_pipeline.data.datasets.phases import phase
from gru4rec_pipeline.data.datasets.protocol import (
    FilteredEvents,
    SessionEvents,
    SplitRule,
    Steps,
    filter_rounds,
    is_script_order,
    settings_with_defaults,
    split_counts,
    split_masks,
)
from gru4rec_pipeline.data.latest_window import check_test_window
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.files import atomic_outputs
from gru4rec_pipeline.names import SPLITS

log = logging.getLogger(__name__)

EVENT_SCHEMA = pa.schema([("SessionId", pa.int64()), ("ItemId", pa.int64()), ("Time", pa.float64())])
PARQUET_OPTIONS = dict(
    use_dictionary=False,
    column_encoding={"SessionId": "DELTA_BINARY_PACKED", "ItemId": "PLAIN", "Time": "BYTE_STREAM_SPLIT"},
    compression="snappy",
)
# Rows per row group at most: the Parquet writer holds a row group's encoded pages until it is complete.
WRITE_BLOCK_ROWS = 1 << 18
ITEM_MAP_SCHEMA = pa.schema([("ItemId", pa.int64()), ("Original", pa.string())])


def describe_step(step: dict) -> str:
    """One line of a step: ``<what>: removed E events and S sessions; E events in S sessions left`` (the line
    ``data/protocol_steps.describe_step`` writes for RSC15's steps)."""
    left = f"{step['events']:,} events in {step['sessions']:,} sessions"
    if "removed_events" not in step:
        return f"{step['step']}: {left}"
    removed = f"{step['removed_events']:,} events and {step['removed_sessions']:,} sessions"
    if "removed_items" in step:
        removed = f"{step['removed_items']:,} items: {removed}"
    return f"{step['step']}: removed {removed}; {left} left"


def check_splits_not_empty(counts: dict, steps: list[dict], settings: dict, source: str) -> None:
    """Refuse splits left empty by the protocol, with what each step removed and the settings to change."""
    empty = [name for name in SPLITS if counts[name]["events"] == 0]
    if not empty:
        return
    shown = ", ".join(f"protocol.{key}={value}" for key, value in settings.items())
    lines = [f"the protocol leaves {', '.join(empty)} empty with {shown}. What each step removed:"]
    lines += [f"  {describe_step(step)}" for step in steps]
    lines.append("Lower protocol.min_session_length or protocol.min_item_support, or give more of the data set.")
    raise DataFormatError(source, "\n".join(lines))


def write_event_rows(
    path: Path, filtered: FilteredEvents, rows: np.ndarray, item_values: np.ndarray, ticks_per_second: int
) -> None:
    """Write the ``rows`` of the filtered events as a split file: a row group for the selected rows of each block of
    WRITE_BLOCK_ROWS filtered rows, each column built for its block only."""
    # Imported here: pyarrow.parquet brings pyarrow's file systems along, which the reading needs not hold.
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, EVENT_SCHEMA, **PARQUET_OPTIONS) as writer:
        for start in range(0, len(rows), WRITE_BLOCK_ROWS):
            block = slice(start, start + WRITE_BLOCK_ROWS)
            selected = rows[block]
            if not selected.any():
                continue
            columns = [
                filtered.session_numbers[filtered.session_index[block][selected]].astype(np.int64),
                item_values[filtered.item_codes[block][selected]],
                _seconds(filtered.ticks[block][selected], ticks_per_second),
            ]
            arrays = [numpy_array(column, type) for column, type in zip(columns, EVENT_SCHEMA.types)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA), row_group_size=len(selected))


def _seconds(ticks: np.ndarray, ticks_per_second: int) -> np.ndarray:
    if ticks_per_second == 1:
        return ticks.astype(np.float64)
    # One correctly rounded division: 1442545200123 ms -> 1442545200.123 exactly as written.
    return ticks / float(ticks_per_second)


def _item_map(item_names: pa.Array, item_ids: np.ndarray) -> pa.Table:
    """The item map of ``item_ids``: their strings (the empty one, a missing id in the raw file, as null)."""
    names = item_names.to_pylist()
    chosen = [name.encode() if isinstance(name, str) else name for name in (names[i] for i in item_ids.tolist())]
    lengths = np.array([len(name) for name in chosen], dtype=np.int32)
    offsets = np.zeros(len(chosen) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    valid = np.packbits(lengths > 0, bitorder="little")
    strings = pa.Array.from_buffers(
        pa.string(), len(chosen), [pa.py_buffer(valid), pa.py_buffer(offsets), pa.py_buffer(b"".join(chosen))]
    )
    try:
        strings.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise DataFormatError("item map", f"an item's id is not UTF-8 text: {exc}") from None
    return pa.Table.from_arrays([numpy_array(item_ids.astype(np.int64), pa.int64()), strings], schema=ITEM_MAP_SCHEMA)


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
    if item_map_path is not None and events.item_names is None:
        raise ConfigError("item_map", f"{dataset} keeps its raw item ids: it has no item map")
    steps = Steps(events.steps)
    with phase(f"{dataset}: repeats and filter rounds"):
        filtered, item_values, raw_counts = filter_rounds(events, steps, settings)
    with phase(f"{dataset}: split"):
        masks, split = split_masks(filtered, steps, rule, events.ticks_per_second, settings["min_session_length"])
        counts = {"raw": raw_counts, **split_counts(filtered, masks)}
    for step in steps.entries:
        log.info("%s: %s", dataset, describe_step(step))
    check_splits_not_empty(counts, steps.entries, settings, source)
    with phase(f"{dataset}: test window check"):
        rows = masks["train_full"] | masks["test"]
        # The check looks at each session's last event: give it just those. A session's rows among these are its
        # first ones (all of a test session's, a train_full session's before a time), so its last is first + n - 1.
        taken = np.add.reduceat(rows, filtered.first_rows, dtype=np.int64) if len(rows) else np.zeros(0, np.int64)
        last = (filtered.first_rows + taken - 1)[taken > 0]
        del taken
        session_numbers = filtered.session_numbers[filtered.session_index[last]]
        seconds = _seconds(filtered.ticks[last], events.ticks_per_second)
        period = float(rule.period_seconds)
        every_end = np.ones(len(session_numbers), dtype=bool)  # a mask over the rows: these are all session ends
        check_test_window(session_numbers, seconds, every_end, period, counts["test"], min_test_predictions, source)
        del last, session_numbers, seconds
    stats = {
        "dataset": dataset,
        "sources": events.sources,
        "settings": {**settings, "period_seconds": rule.period_seconds, "fixed_split_time": rule.split_time},
        "split_time": split / events.ticks_per_second,
        "raw_files": events.raw,
        "splits": counts,
        "steps": steps.entries,
    }
    if published:
        stats["published"] = published
    for path in [*paths.values(), stats_path, *([item_map_path] if item_map_path else [])]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs() as staged:
        for name in SPLITS:
            if name in paths:
                with phase(f"{dataset}: write {name}"):
                    write_event_rows(
                        staged.temporary(paths[name]), filtered, masks[name], item_values, events.ticks_per_second
                    )
        if item_map_path is not None:
            import pyarrow.parquet as pq

            kept = np.flatnonzero(count_codes(filtered.item_codes, filtered.n_items, rows))
            pq.write_table(_item_map(events.item_names, item_values[kept]), staged.temporary(item_map_path))
        staged.temporary(stats_path).write_text(json.dumps(stats, indent=2) + "\n")
    for name, c in counts.items():
        log.info("%s %s: %d events, %d sessions, %d items", dataset, name, c["events"], c["sessions"], c["items"])
    return stats
