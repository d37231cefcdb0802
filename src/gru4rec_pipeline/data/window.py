"""session-rec's sliding-window protocol (``protocol.preset: window``; rn5l/session-rec ``preprocess_slices``).

The clicks are filtered once as RSC15's protocol filters them (sessions shorter than
``min_session_length``, items with fewer than ``min_item_support`` clicks, short sessions again). With
``t0`` the first click left and a day of 86,400 s, slice ``i`` (0 .. ``slices`` - 1) spans

    start  = t0 + (days_offset + i * days_shift) days
    middle = start + days_train days
    end    = middle + days_test days

and holds the sessions whose LAST click lies in ``[start, end]``: those ending before ``middle`` are its
``train_full``, the others its ``test``, less the test clicks of items not in its training sessions and
the test sessions then shorter than ``min_session_length``. A session belongs to one part of a slice
only; slices may share sessions when ``days_shift`` is shorter than a slice. A slice whose training or test period
ends after the last click is refused, naming the key (it would cover fewer days than the others).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from gru4rec_pipeline.data.codes import codes_present, count_codes, dense_codes, lookup_codes
from gru4rec_pipeline.data.events import event_arrays, read_events, session_time_order, write_event_rows
from gru4rec_pipeline.data.protocol import filter_sessions
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.files import atomic_outputs
from gru4rec_pipeline.names import PROTOCOL_DEFAULTS, WINDOW_DEFAULTS

log = logging.getLogger(__name__)

DAY = 86400.0
WINDOW_SPLITS = ("train_full", "test")


def check_window(window: dict) -> dict:
    unknown = set(window) - set(WINDOW_DEFAULTS)
    if unknown:
        raise ConfigError("protocol.window", f"unknown settings {sorted(unknown)}; expected {sorted(WINDOW_DEFAULTS)}")
    settings = {**WINDOW_DEFAULTS, **window}
    for key, value in settings.items():
        positive = key in ("slices", "days_train", "days_test")
        if value < 0 or (positive and value <= 0):
            raise ConfigError(
                f"protocol.window.{key}", f"must be {'positive' if positive else 'non-negative'}, got {value}"
            )
    return settings


def slice_bounds(first_time: float, window: dict) -> list[tuple[float, float, float]]:
    """(start, middle, end) epoch seconds of each slice."""
    bounds = []
    for i in range(int(window["slices"])):
        start = first_time + (window["days_offset"] + i * window["days_shift"]) * DAY
        middle = start + window["days_train"] * DAY
        bounds.append((start, middle, middle + window["days_test"] * DAY))
    return bounds


def window_masks(session_ids, item_ids, times, window: dict, min_session_length: int = 2, min_item_support: int = 5):
    """Per slice: masks over the (session, time sorted) rows for train_full and test, and the slice's bounds."""
    session_codes, n_sessions = dense_codes(session_ids)
    item_codes, n_items = dense_codes(item_ids)
    last = np.full(n_sessions, -np.inf)
    np.maximum.at(last, session_codes, times)
    first_time, last_time = float(times.min()), float(times.max())
    slices = []
    for i, (start, middle, end) in enumerate(slice_bounds(first_time, window)):
        if middle > last_time:
            raise ConfigError(
                "protocol.window.days_train",
                f"slice {i}: its training period ends {iso(middle)}, after the last click ({iso(last_time)}); "
                "shorten days_train, days_offset or days_shift, or use fewer slices",
            )
        if end > last_time:
            raise ConfigError(
                "protocol.window.days_test",
                f"slice {i}: its test period ends {iso(end)}, after the last click ({iso(last_time)}), so it would "
                "test on less than its days_test; shorten days_test, days_offset or days_shift, or use fewer slices",
            )
        in_slice = (last >= start) & (last <= end)
        train = lookup_codes(in_slice & (last < middle), session_codes)
        test = lookup_codes(in_slice & (last >= middle), session_codes)
        test &= lookup_codes(codes_present(item_codes, n_items, train), item_codes)
        test &= lookup_codes(count_codes(session_codes, n_sessions, test) >= min_session_length, session_codes)
        if not test.any():
            raise ConfigError(
                "protocol.window",
                f"slice {i} ({iso(middle)} to {iso(end)}) has no test sessions: raise days_test or move the slices "
                "(days_offset, days_shift, slices)",
            )
        slices.append({"train_full": train, "test": test, "bounds": (start, middle, end)})
    return slices


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def split_window(clicks_path, out_dir, stats_path, window: dict | None = None, **thresholds) -> dict:
    """The window preset's split stage: ``{out_dir}/{slice}/{train_full,test}.parquet`` and ``stats.json``."""
    window = check_window(window or {})
    settings = {**PROTOCOL_DEFAULTS, **thresholds}
    clicks = filter_sessions(read_events(clicks_path), settings["min_session_length"], settings["min_item_support"])
    session_ids, item_ids, times = event_arrays(clicks, source=clicks_path)
    order = session_time_order(session_ids, times)
    if order is not None:
        session_ids, item_ids, times = session_ids[order], item_ids[order], times[order]
    slices = window_masks(session_ids, item_ids, times, window, settings["min_session_length"])
    out_dir = Path(out_dir)
    stats = {"preset": "window", "window": window, "thresholds": settings, "slices": []}
    with atomic_outputs() as staged:
        for i, masks in enumerate(slices):
            (out_dir / str(i)).mkdir(parents=True, exist_ok=True)
            entry = {"slice": i, **dict(zip(("start", "middle", "end"), map(iso, masks["bounds"])))}
            for name in WINDOW_SPLITS:
                rows = masks[name]
                write_event_rows(
                    staged.temporary(out_dir / str(i) / f"{name}.parquet"), session_ids, item_ids, times, rows
                )
                entry[name] = {
                    "events": int(rows.sum()),
                    "sessions": int(len(np.unique(session_ids[rows]))),
                    "items": int(len(np.unique(item_ids[rows]))),
                }
            log.info("slice %d: %s", i, entry)
            stats["slices"].append(entry)
        Path(stats_path).parent.mkdir(parents=True, exist_ok=True)
        staged.temporary(stats_path).write_text(json.dumps(stats, indent=2) + "\n")
    return stats
