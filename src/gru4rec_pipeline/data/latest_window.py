"""Whether the time split's test window is a day like the others, and whether the test split can measure anything.

The test split is counted back from the latest event. One session with a wrong clock (dated in the year 3000 in a
log of 2014) then makes the whole test split, a handful of events, and every figure after it is noise, with no
error anywhere. :func:`check_test_window` warns, naming the latest session and its time, when the test window
holds fewer than ``FEW_SESSIONS_FRACTION`` of the sessions a typical window holds (the median over the earlier
windows of the same length, counted back from the latest event, that hold any session ending in them), and
refuses a test split giving fewer than ``min_test_predictions`` next-item predictions (``limits`` in the config),
naming that cause where it is the one. The day-by-day evaluation's days (:mod:`.rolling`) are counted back from
the latest event too, and each is a test set: :func:`check_rolling_days` holds each of them to the same rules.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from gru4rec_pipeline.data.codes import row_blocks
from gru4rec_pipeline.errors import DataFormatError

log = logging.getLogger(__name__)

FEW_SESSIONS_FRACTION = 0.1


def utc(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} s after 1970"


def _session_ends(
    session_ids: np.ndarray, times: np.ndarray, rows: np.ndarray | slice
) -> tuple[np.ndarray, np.ndarray]:
    """Each session's id and last time among ``rows`` (a mask or a slice; rows sorted by SessionId, then Time).

    In blocks of rows, carrying a block's last selected row into the next: copying the selected rows whole would
    take two more columns of the data's size (some 500 MB at RSC15 scale) at the split stage's peak.
    """
    if isinstance(rows, slice):  # a view of the columns: nothing is copied
        ids, stamps = session_ids[rows], times[rows]
        session_end = np.r_[ids[1:] != ids[:-1], True] if len(ids) else np.zeros(0, dtype=bool)
        return ids[session_end], stamps[session_end]
    end_ids, end_times = [], []
    carried: tuple[np.ndarray, np.ndarray] | None = None  # the last selected row so far, its session maybe open
    for block in row_blocks(len(rows)):
        selected = rows[block]
        ids, stamps = session_ids[block][selected], times[block][selected]
        if len(ids) == 0:
            continue
        if carried is not None and carried[0][0] != ids[0]:
            end_ids.append(carried[0])
            end_times.append(carried[1])
        session_end = ids[1:] != ids[:-1]
        end_ids.append(ids[:-1][session_end])
        end_times.append(stamps[:-1][session_end])
        carried = ids[-1:], stamps[-1:]
    if carried is not None:
        end_ids.append(carried[0])
        end_times.append(carried[1])
    if not end_ids:
        return session_ids[:0].copy(), times[:0].copy()
    return np.concatenate(end_ids), np.concatenate(end_times)


def typical_window_sessions(last_times: np.ndarray, before: float, window_seconds: float) -> tuple[float, int]:
    """The median number of sessions ending in a window of ``window_seconds``, over the windows counted back from
    ``before`` that end at or before it and hold any (nan when none does), and how many windows those are."""
    earlier = last_times[last_times <= before]
    if len(earlier) == 0:
        return float("nan"), 0
    _, sessions = np.unique(np.floor((before - earlier) / window_seconds).astype(np.int64), return_counts=True)
    return float(np.median(sessions)), len(sessions)


def _outlier_sentence(what: str, sessions: int, typical: float, windows: int, latest: str = "") -> str:
    return (
        f"{what} holds {sessions} sessions, fewer than {FEW_SESSIONS_FRACTION:g} x the {typical:g} of a typical "
        f"window (the median over the {windows} earlier windows holding sessions){latest}: an outlier timestamp?"
    )


def last_window_outlier(session_ids: np.ndarray, times: np.ndarray, rows: np.ndarray, split_seconds: float):
    """A sentence naming the latest session and its time when the last ``split_seconds`` before the latest event
    hold far fewer sessions than a typical window; None otherwise. Rows sorted by SessionId, then Time."""
    last_ids, last_times = _session_ends(session_ids, times, rows)
    if len(last_ids) == 0:
        return None
    latest = int(np.argmax(last_times))
    end = float(last_times[latest])
    in_test = int(np.count_nonzero(last_times > end - split_seconds))
    typical, windows = typical_window_sessions(last_times, end - split_seconds, split_seconds)
    if windows == 0 or in_test >= FEW_SESSIONS_FRACTION * typical:
        return None
    latest_session = f"session {last_ids[latest]} at {utc(end)}"
    what = f"the test window (the last {split_seconds:g} s before the latest event, {latest_session})"
    return _outlier_sentence(what, in_test, typical, windows)


def refuse_few_predictions(source, what: str, predictions: int, min_test_predictions: int, cause: str) -> None:
    """DataFormatError naming ``source``, the set (``what``) and ``cause`` when ``predictions`` fall short of
    ``min_test_predictions`` (config key limits.min_test_predictions)."""
    if predictions >= min_test_predictions:
        return
    raise DataFormatError(
        source,
        f"{what} gives {predictions} next-item predictions, fewer than limits.min_test_predictions="
        f"{min_test_predictions}. {cause[0].upper()}{cause[1:]}, or lower limits.min_test_predictions",
    )


def check_test_window(
    session_ids, times, rows, split_seconds: float, test_counts: dict, min_test_predictions: int, source: str | Path
) -> None:
    """Warn about an outlying test window; DataFormatError naming ``source`` and the cause when the test split
    (``test_counts``: its events and sessions) gives fewer than ``min_test_predictions`` predictions."""
    outlier = last_window_outlier(session_ids, times, rows, split_seconds)
    if outlier is not None:
        log.warning("%s: %s", source, outlier)
    cause = (
        f"{outlier} Correct or drop that session's events"
        if outlier is not None
        else f"the data's last {split_seconds:g} s hold few sessions; use more data or a longer protocol.split_seconds"
    )
    predictions = test_counts["events"] - test_counts["sessions"]
    refuse_few_predictions(source, "the test split", predictions, min_test_predictions, cause)


def check_rolling_days(
    session_ids, times, days: list[dict], day_seconds: float, min_test_predictions: int, source: str | Path
) -> None:
    """The test split's rules for each day of the day-by-day evaluation (``days``: their ``day``, ``start``
    (epoch seconds), ``sessions`` and ``events``, first day first; the rows sorted by SessionId, then Time): a
    warning naming a day that holds far fewer sessions than a typical day before the first one, with the latest
    session and its time, and a DataFormatError for a day giving fewer than ``min_test_predictions``."""
    last_ids, last_times = _session_ends(session_ids, times, np.ones(len(times), dtype=bool))
    latest = int(np.argmax(last_times))
    typical, windows = typical_window_sessions(last_times, days[0]["start"], day_seconds)
    for day in days:
        what = f"rolling day {day['day']} of {len(days)} ({utc(day['start'])} .. {utc(day['start'] + day_seconds)})"
        cause = "the day holds few sessions; use more data or fewer rolling.days"
        if windows and day["sessions"] < FEW_SESSIONS_FRACTION * typical:
            latest_session = f", with the latest session {last_ids[latest]} at {utc(last_times[latest])}"
            facts = (day["sessions"], typical, windows, latest_session)
            log.warning("%s: %s", source, _outlier_sentence(what, *facts))
            cause = f"{_outlier_sentence('the day', *facts)} Correct or drop that session's events"
        refuse_few_predictions(source, what, day["events"] - day["sessions"], min_test_predictions, cause)
