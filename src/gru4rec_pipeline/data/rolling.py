"""The days of the day-by-day evaluation: the clicks before each of the last days, and each day's sessions.

The protocol's filters (``protocol.filter_sessions``: short sessions, rare items, sessions left short) run once
over the whole click log, as the split stage runs them. Day ``d`` of ``D`` (1 .. D, the last one ending with the
data) covers ``[tmax - (D - d + 1) * 86400, tmax - (D - d) * 86400)``, the last day its end included; a session
belongs to the day of its last event, as the protocol's time split assigns sessions. For each day the stage
writes ``before_{d}.parquet`` (every session ending before day ``d``: what a training from scratch for that
day learns from) and ``day_{d}.parquet`` (the day's sessions: its test set, and the next day's warm retrain's
new clicks), and ``days.json`` with each day's period, sessions, events and the items new on that day.

Each day is a test set, held to the test split's rules (:func:`.latest_window.check_rolling_days`): a day with
far fewer sessions than a typical day is warned about, naming the latest session and its time (one session with
a wrong clock would otherwise be a day of its own), and a day giving fewer than ``min_test_predictions``
next-item predictions (config key limits.min_test_predictions) is refused.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from gru4rec_pipeline.data.codes import dense_codes
from gru4rec_pipeline.data.events import event_arrays, read_events, session_time_order, write_event_rows
from gru4rec_pipeline.data.latest_window import check_rolling_days
from gru4rec_pipeline.data.protocol import filter_sessions
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_outputs
from gru4rec_pipeline.names import PROTOCOL_DEFAULTS

log = logging.getLogger(__name__)

DAY_SECONDS = 86400.0


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def split_days(
    clicks_path: str | Path,
    before_paths: list[str | Path],
    day_paths: list[str | Path],
    days_path: str | Path,
    protocol: dict | None = None,
    min_test_predictions: int = 1,
) -> dict:
    """Write the ``D = len(day_paths)`` days (see the module docstring); return what ``days.json`` holds.

    Refuses (nothing written) a first day with nothing before it to train on, and a day giving fewer than
    ``min_test_predictions`` next-item predictions.
    """
    n_days = len(day_paths)
    settings = {**PROTOCOL_DEFAULTS, **(protocol or {})}
    events = filter_sessions(
        read_events(clicks_path),
        min_session_length=int(settings["min_session_length"]),
        min_item_support=int(settings["min_item_support"]),
    )
    session_ids, item_ids, times = event_arrays(events, source=clicks_path)
    order = session_time_order(session_ids, times)
    if order is not None:
        session_ids, item_ids, times = session_ids[order], item_ids[order], times[order]
    if len(times) == 0:
        raise DataFormatError(clicks_path, "no clicks are left after the protocol's filters: no days to evaluate")
    codes, n_sessions = dense_codes(session_ids)
    last = np.full(n_sessions, -np.inf)
    np.maximum.at(last, codes, times)
    session_last = last[codes]
    end = float(times.max())
    starts = [end - (n_days - d) * DAY_SECONDS for d in range(n_days)]
    record = {"days": [], "protocol": {k: settings[k] for k in ("min_session_length", "min_item_support")}}
    masks = []
    for d, start in enumerate(starts, 1):
        before = session_last < start
        in_day = (session_last >= start) & ((session_last < start + DAY_SECONDS) if d < n_days else True)
        known = np.unique(item_ids[before])
        day_items = np.unique(item_ids[in_day])
        entry = {
            "day": d,
            "start": _utc(start),
            "end": _utc(min(start + DAY_SECONDS, end)),
            "sessions": int(len(np.unique(codes[in_day]))),
            "events": int(np.count_nonzero(in_day)),
            "items": int(len(day_items)),
            "new_items": int(np.count_nonzero(~np.isin(day_items, known))),
            "sessions_before": int(len(np.unique(codes[before]))),
            "events_before": int(np.count_nonzero(before)),
        }
        if entry["events_before"] == 0:
            raise DataFormatError(
                clicks_path,
                f"rolling day {d} of {n_days} ({entry['start']} .. {entry['end']}): the clicks before it have no "
                "session after the protocol's filters; lower rolling.days",
            )
        log.info("day %d: %s", d, entry)
        record["days"].append(entry)
        masks.append((before, in_day))
    tested = [{**entry, "start": start} for entry, start in zip(record["days"], starts)]
    check_rolling_days(session_ids, times, tested, DAY_SECONDS, min_test_predictions, clicks_path)
    with atomic_outputs() as staged:
        for (before, in_day), before_path, day_path in zip(masks, before_paths, day_paths):
            write_event_rows(staged.temporary(before_path), session_ids, item_ids, times, before)
            write_event_rows(staged.temporary(day_path), session_ids, item_ids, times, in_day)
        staged.temporary(days_path).write_text(json.dumps(record, indent=2) + "\n")
    return record
