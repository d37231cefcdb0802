"""Whether the time split's test window is a day like the others, and whether the test split can measure anything.

The test split is counted back from the latest event. One session with a wrong clock (dated in the year 3000 in a
log of 2014) then makes the whole test split, a handful of events, and every figure after it is noise, with no
error anywhere. :func:`check_test_window` warns, naming the latest session and its time, when the test window
holds fewer than ``FEW_SESSIONS_FRACTION`` of the sessions a typical window holds (the median over the earlier
windows of the same length, counted back from the latest event, that hold any session ending in them), and
refuses a test split giving fewer than ``min_test_predictions`` next-item predictions (``limits`` in the config),
naming that cause where it is the one.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from gru4rec_pipeline.errors import DataFormatError

log = logging.getLogger(__name__)

FEW_SESSIONS_FRACTION = 0.1


def _utc(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} s after 1970"


def last_window_outlier(session_ids: np.ndarray, times: np.ndarray, rows: np.ndarray, split_seconds: float):
    """A sentence naming the latest session and its time when the last ``split_seconds`` before the latest event
    hold far fewer sessions than a typical window; None otherwise. Rows sorted by SessionId, then Time."""
    ids, stamps = session_ids[rows], times[rows]
    if len(ids) == 0:
        return None
    session_end = np.r_[ids[1:] != ids[:-1], True]
    last_times, last_ids = stamps[session_end], ids[session_end]
    latest = int(np.argmax(last_times))
    windows = np.floor((last_times[latest] - last_times) / split_seconds).astype(np.int64)
    window, sessions = np.unique(windows, return_counts=True)
    in_test = int(sessions[0]) if window[0] == 0 else 0
    earlier = sessions[window > 0]
    if len(earlier) == 0:
        return None
    typical = float(np.median(earlier))
    if in_test >= FEW_SESSIONS_FRACTION * typical:
        return None
    return (
        f"the test window (the last {split_seconds:g} s before the latest event, session {last_ids[latest]} at "
        f"{_utc(float(last_times[latest]))}) holds {in_test} sessions, fewer than {FEW_SESSIONS_FRACTION:g} x the "
        f"{typical:g} of a typical window (the median over the {len(earlier)} earlier windows holding sessions): "
        "an outlier timestamp?"
    )


def check_test_window(
    session_ids, times, rows, split_seconds: float, test_counts: dict, min_test_predictions: int, source: str | Path
) -> None:
    """Warn about an outlying test window; DataFormatError naming ``source`` and the cause when the test split
    (``test_counts``: its events and sessions) gives fewer than ``min_test_predictions`` predictions."""
    outlier = last_window_outlier(session_ids, times, rows, split_seconds)
    if outlier is not None:
        log.warning("%s: %s", source, outlier)
    predictions = test_counts["events"] - test_counts["sessions"]
    if predictions >= min_test_predictions:
        return
    cause = (
        f"{outlier[0].upper()}{outlier[1:]} Correct or drop that session's events"
        if outlier is not None
        else f"the data's last {split_seconds:g} s hold few sessions; use more data or a longer protocol.split_seconds"
    )
    raise DataFormatError(
        source,
        f"the test split gives {predictions} next-item predictions, fewer than limits.min_test_predictions="
        f"{min_test_predictions}. {cause}, or lower limits.min_test_predictions",
    )
