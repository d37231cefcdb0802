"""What each step of the RSC15 protocol kept and removed, and what the split stage says about it.

:class:`StepLog` collects, step by step, the events and sessions left and removed (the split stage
writes them to ``stats.json`` under ``steps``); :func:`check_splits_not_empty` turns a split left
empty into an error that shows them; :func:`report_duplicates` warns about exact duplicate clicks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gru4rec_pipeline.data.codes import codes_present
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.names import SPLITS

log = logging.getLogger(__name__)


class StepLog:
    """What each step of the protocol kept and removed, for stats.json and for the error on an empty split.

    Each entry: ``step`` (what was done, with its setting), ``events`` and ``sessions`` left, and for
    a step that removes rows ``removed_events`` and ``removed_sessions`` (sessions left with no event)
    relative to the entry before it.
    """

    def __init__(self, session_codes: np.ndarray, n_sessions: int):
        self.session_codes = session_codes
        self.n_sessions = n_sessions
        self.entries: list[dict] = []

    def record(self, step: str, rows: np.ndarray, removal: bool = True, **extra: int) -> None:
        entry = {
            "step": step,
            "events": int(np.count_nonzero(rows)),
            "sessions": int(np.count_nonzero(codes_present(self.session_codes, self.n_sessions, rows))),
        }
        if removal and self.entries:
            before = self.entries[-1]
            entry["removed_events"] = before["events"] - entry["events"]
            entry["removed_sessions"] = before["sessions"] - entry["sessions"]
        self.entries.append({**entry, **extra})


def describe_step(step: dict) -> str:
    """One line of a step: ``<what>: removed E events and S sessions; E events in S sessions left``."""
    left = f"{step['events']:,} events in {step['sessions']:,} sessions"
    if "removed_events" not in step:
        return f"{step['step']}: {left}"
    removed = f"{step['removed_events']:,} events and {step['removed_sessions']:,} sessions"
    if "removed_items" in step:
        removed = f"{step['removed_items']:,} items: {removed}"
    return f"{step['step']}: removed {removed}; {left} left"


def _setting(value) -> str:
    """A setting as the config spells it: 86400 for 86400.0, lower-case booleans."""
    return str(value).lower() if isinstance(value, bool) else f"{value:g}"


def check_splits_not_empty(counts: dict, steps: list[dict], settings: dict, source: str | Path) -> None:
    """Refuse splits left empty by the protocol, with what each step removed and the settings to change.

    An empty split is never what the run was meant to produce, and downstream it only shows up
    as a training or evaluation failure that points elsewhere.
    """
    empty = [name for name in SPLITS if counts[name]["events"] == 0]
    if not empty:
        return
    shown = ", ".join(f"protocol.{key}={_setting(value)}" for key, value in settings.items())
    lines = [f"the protocol leaves {', '.join(empty)} empty with {shown}. What each step removed:"]
    lines += [f"  {describe_step(step)}" for step in steps]
    lines.append(
        "Lower protocol.min_session_length or protocol.min_item_support, change protocol.split_seconds "
        "(the test and validation periods), or give more clicks."
    )
    raise DataFormatError(source, "\n".join(lines))


def report_duplicates(n_duplicates: int, settings: dict, source: str | Path) -> None:
    """Log how many exact duplicate clicks the input has: a warning when they are kept."""
    if not n_duplicates:
        return
    if settings["drop_duplicates"]:
        log.info("%s: %d exact duplicate clicks (same SessionId, ItemId, Time) dropped", source, n_duplicates)
        return
    # Kept, as RSC15's published protocol keeps them; but a click logged twice is a target the
    # model predicts from the same item, which can inflate recall@k and MRR@k a lot.
    log.warning(
        "%s: %d exact duplicate clicks (same SessionId, ItemId, Time) kept; they can inflate recall and MRR: "
        "set protocol.drop_duplicates: true to drop them before the filters",
        source,
        n_duplicates,
    )
