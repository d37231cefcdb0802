"""The RSC15 evaluation protocol of GRU4Rec: session/item filtering and the time-based split.

The protocol, one pass per step and in this order (it does not iterate to a fixed point):

0. only with ``drop_duplicates`` (off by default: the published protocol keeps them): drop exact
   duplicate clicks, rows repeating an earlier row's SessionId, ItemId and Time; either way they are
   counted (``duplicate_events`` of ``raw`` in stats.json);
1. drop sessions with fewer than ``min_session_length`` (2) events;
2. drop items with fewer than ``min_item_support`` (5) events among what is left;
3. drop sessions that became shorter than ``min_session_length``.

Then the split: a session belongs to the test set when its LAST event is at or after
``tmax - split_seconds`` (``tmax``: the latest timestamp of the filtered data, ``split_seconds``:
86400, one day); every other session is training data (``train_full``). Test events whose item
never occurs in ``train_full`` are dropped, and then test sessions shorter than
``min_session_length``. The same split applied to ``train_full`` gives ``train_tr`` / ``valid``.

The stage (:func:`split_clicks`) records what each of these steps removed in ``stats.json`` and
refuses to write anything when one of the four splits would be empty: the error names the input,
the settings and the step that emptied it, where an empty split would otherwise surface later as a
training or evaluation failure pointing elsewhere.

Everything is computed on dense integer codes with ``np.bincount`` and boolean masks over the
input rows, so the 33M RSC15 clicks are filtered and split without per-row Python and with one
factorization of the ids. Reading, checking and writing the event files themselves is
:mod:`gru4rec_pipeline.data.events`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gru4rec_pipeline.data.codes import codes_present, count_codes, dense_codes, lookup_codes
from gru4rec_pipeline.data.events import (
    duplicate_rows,
    event_arrays,
    event_frame,
    read_events,
    session_time_order,
    write_event_rows,
)
from gru4rec_pipeline.data.latest_window import check_test_window
from gru4rec_pipeline.data.protocol_steps import StepLog, check_splits_not_empty, describe_step, report_duplicates
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.files import atomic_outputs
from gru4rec_pipeline.names import PROTOCOL_DEFAULTS, SPLITS

log = logging.getLogger(__name__)


# What the original GRU4Rec preprocessing script reports on the real yoochoose-clicks.dat
# (raw counts: the RecSys Challenge 2015 data description). Kept here, beside the protocol they
# belong to, so a run on the real data can be checked against them in stats.json.
RSC15_PUBLISHED_STATS = {
    "raw": {"events": 33_003_944, "sessions": 9_249_729, "items": 52_739},
    "train_full": {"events": 31_637_239, "sessions": 7_966_257, "items": 37_483},
    "test": {"events": 71_222, "sessions": 15_324, "items": 6_751},
    "train_tr": {"events": 31_579_006, "sessions": 7_953_885, "items": 37_483},
    "valid": {"events": 58_233, "sessions": 12_372, "items": 6_359},
}


def _filter_mask(
    session_codes: np.ndarray,
    item_codes: np.ndarray,
    n_sessions: int,
    n_items: int,
    min_session_length: int,
    min_item_support: int,
    rows: np.ndarray | None = None,
    steps: StepLog | None = None,
) -> np.ndarray:
    """Steps 1-3 over ``rows`` (all when None)."""
    keep = lookup_codes(count_codes(session_codes, n_sessions, rows) >= min_session_length, session_codes)
    if rows is not None:
        keep &= rows
    if steps is not None:
        steps.record(f"sessions shorter than min_session_length={min_session_length}", keep)
    support = count_codes(item_codes, n_items, keep)
    keep &= lookup_codes(support >= min_item_support, item_codes)
    if steps is not None:
        rare = int(np.count_nonzero((support > 0) & (support < min_item_support)))
        steps.record(f"items with fewer than min_item_support={min_item_support} events", keep, removed_items=rare)
    keep &= lookup_codes(count_codes(session_codes, n_sessions, keep) >= min_session_length, session_codes)
    if steps is not None:
        steps.record(f"sessions shorter than min_session_length={min_session_length} after the item filter", keep)
    return keep


def _split_masks(
    session_codes: np.ndarray,
    item_codes: np.ndarray,
    times: np.ndarray,
    rows: np.ndarray,
    n_sessions: int,
    n_items: int,
    split_seconds: float,
    min_session_length: int,
    steps: StepLog | None = None,
    names: tuple[str, str] = ("train", "test"),
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) masks over all input rows, splitting the rows selected by ``rows``.

    ``names``: what the two parts are called in ``steps``.
    """
    boundary = np.max(times, where=rows, initial=-np.inf) - split_seconds
    # A session's last event is at/after the boundary exactly when any of its events is.
    late = times >= boundary
    late &= rows
    in_test_session = lookup_codes(codes_present(session_codes, n_sessions, late), session_codes)
    del late
    test = rows & in_test_session
    train = np.logical_not(in_test_session, out=in_test_session)
    train &= rows
    train_name, test_name = names
    if steps is not None:
        split = f"time split (split_seconds={split_seconds:g})"
        steps.record(f"{split}: sessions ending earlier -> {train_name}", train, removal=False)
        steps.record(f"{split}: sessions ending in the last {split_seconds:g} s -> {test_name}", test, removal=False)
    test &= lookup_codes(codes_present(item_codes, n_items, train), item_codes)
    if steps is not None:
        steps.record(f"{test_name} events whose item is not in {train_name}", test)
    test &= lookup_codes(count_codes(session_codes, n_sessions, test) >= min_session_length, session_codes)
    if steps is not None:
        steps.record(f"{test_name} sessions shorter than min_session_length={min_session_length}", test)
    return train, test


def _sorted_frame(events: pd.DataFrame) -> pd.DataFrame:
    session_ids, item_ids, times = event_arrays(events)
    order = session_time_order(session_ids, times)
    if order is None:
        return event_frame(session_ids, item_ids, times)
    return event_frame(session_ids[order], item_ids[order], times[order])


# ----------------------------------------------------------------------------------------------
# The protocol on DataFrames.


def filter_sessions(clicks: pd.DataFrame, min_session_length: int = 2, min_item_support: int = 5) -> pd.DataFrame:
    """Steps 1-3 of the protocol; keeps the input row order and the columns SessionId, ItemId, Time."""
    session_ids, item_ids, times = event_arrays(clicks)
    session_codes, n_sessions = dense_codes(session_ids)
    item_codes, n_items = dense_codes(item_ids)
    keep = _filter_mask(session_codes, item_codes, n_sessions, n_items, min_session_length, min_item_support)
    return event_frame(session_ids[keep], item_ids[keep], times[keep])


def _thresholds(thresholds: dict) -> dict:
    unknown = set(thresholds) - set(PROTOCOL_DEFAULTS)
    if unknown:
        raise ConfigError("protocol", f"unknown settings {sorted(unknown)}; expected {sorted(PROTOCOL_DEFAULTS)}")
    return {**PROTOCOL_DEFAULTS, **thresholds}


def protocol_masks(
    session_ids: np.ndarray, item_ids: np.ndarray, times: np.ndarray, **thresholds
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, int]], list[dict]]:
    """Boolean masks over the input rows for the four splits, event/session/item counts, and the steps.

    The counts include ``raw`` (the input, with ``duplicate_events``: rows repeating an earlier row's
    SessionId, ItemId and Time); the steps say what each filter and split kept and removed (see
    :class:`StepLog`). With ``drop_duplicates`` those repeats are dropped before the filters. One
    factorization of the ids serves every step.
    """
    t = _thresholds(thresholds)
    session_codes, n_sessions = dense_codes(session_ids)
    item_codes, n_items = dense_codes(item_ids)
    steps = StepLog(session_codes, n_sessions)
    steps.record("input clicks", np.ones(len(times), dtype=bool))
    duplicates = duplicate_rows(session_ids, item_ids, times)
    n_duplicates = int(np.count_nonzero(duplicates))
    rows = None
    if t["drop_duplicates"]:
        rows = np.logical_not(duplicates, out=duplicates)
        steps.record("exact duplicate clicks (same SessionId, ItemId, Time) dropped", rows)
    del duplicates
    kept = _filter_mask(
        session_codes,
        item_codes,
        n_sessions,
        n_items,
        t["min_session_length"],
        t["min_item_support"],
        rows=rows,
        steps=steps,
    )
    del rows
    split = (n_sessions, n_items, float(t["split_seconds"]), int(t["min_session_length"]))
    train_full, test = _split_masks(
        session_codes, item_codes, times, kept, *split, steps=steps, names=("train_full", "test")
    )
    del kept
    train_tr, valid = _split_masks(
        session_codes, item_codes, times, train_full, *split, steps=steps, names=("train_tr", "valid")
    )
    masks = {"train_full": train_full, "test": test, "train_tr": train_tr, "valid": valid}

    def counts(rows: np.ndarray | None) -> dict[str, int]:
        if rows is None:
            return {
                "events": len(times),
                "sessions": int(np.count_nonzero(count_codes(session_codes, n_sessions))),
                "items": int(np.count_nonzero(count_codes(item_codes, n_items))),
            }
        return {
            "events": int(np.count_nonzero(rows)),
            "sessions": int(np.count_nonzero(codes_present(session_codes, n_sessions, rows))),
            "items": int(np.count_nonzero(codes_present(item_codes, n_items, rows))),
        }

    stats = {"raw": {**counts(None), "duplicate_events": n_duplicates}, **{n: counts(m) for n, m in masks.items()}}
    return masks, stats, steps.entries


def event_counts(events: pd.DataFrame) -> dict[str, int]:
    return {
        "events": int(len(events)),
        "sessions": int(events["SessionId"].nunique()),
        "items": int(events["ItemId"].nunique()),
    }


def _with_ratios(counts: dict[str, dict[str, int]]) -> dict[str, float]:
    raw, train_full = counts.get("raw"), counts.get("train_full")
    ratios: dict[str, float] = {}
    if raw and train_full:
        for key in ("sessions", "items", "events"):
            ratios[f"{key}_kept_pct"] = round(100.0 * train_full[key] / raw[key], 3) if raw[key] else 0.0
    for name, c in counts.items():
        ratios[f"{name}_events_per_session"] = round(c["events"] / c["sessions"], 4) if c["sessions"] else 0.0
    return ratios


def split_statistics(
    splits: dict, raw: pd.DataFrame | dict | None = None, thresholds: dict | None = None, steps: list | None = None
) -> dict:
    """Events, sessions and items per split (and of the raw clicks when given), beside the
    published RSC15 figures, with the kept ratios (of train_full against raw) and events per session,
    and (when given) what each step of the protocol kept and removed.

    ``splits`` maps split names to DataFrames or to already computed counts; so may ``raw``.
    """
    counts: dict[str, dict[str, int]] = {}
    if raw is not None:
        counts["raw"] = dict(raw) if isinstance(raw, dict) else event_counts(raw)
    for name, value in splits.items():
        counts[name] = dict(value) if isinstance(value, dict) else event_counts(value)
    stats = {
        "thresholds": _thresholds(thresholds or {}),
        "splits": counts,
        "ratios": _with_ratios(counts),
        "published_rsc15": RSC15_PUBLISHED_STATS,
        "published_rsc15_ratios": _with_ratios(RSC15_PUBLISHED_STATS),
    }
    if steps is not None:
        stats["steps"] = steps
    return stats


# ----------------------------------------------------------------------------------------------
# The stage.


def split_clicks(
    clicks: pd.DataFrame,
    paths: dict[str, str | Path],
    stats_path: str | Path | None = None,
    source: str | Path = "<clicks>",
    min_test_predictions: int = 1,
    **thresholds,
) -> dict:
    """The whole stage, memory-lean: protocol masks over the clicks, each split materialized,
    written and freed in turn; returns (and writes to ``stats_path``) the statistics. The split
    files and the statistics appear together or not at all, and not at all when a split would be
    empty (DataFormatError naming ``source``, the settings and what each step removed)."""
    session_ids, item_ids, times = event_arrays(clicks, source=source)
    order = session_time_order(session_ids, times)
    if order is not None:
        log.info("clicks are not sorted by SessionId, Time: sorting %d rows", len(order))
        session_ids, item_ids, times = session_ids[order], item_ids[order], times[order]
        del order
    masks, counts, steps = protocol_masks(session_ids, item_ids, times, **thresholds)
    for step in steps:
        log.info("%s", describe_step(step))
    settings = _thresholds(thresholds)
    report_duplicates(counts["raw"]["duplicate_events"], settings, source)
    check_splits_not_empty(counts, steps, settings, source)
    filtered = masks["train_full"] | masks["test"]
    split_seconds = float(settings["split_seconds"])
    check_test_window(session_ids, times, filtered, split_seconds, counts["test"], min_test_predictions, source)
    with atomic_outputs() as staged:
        for name in SPLITS:
            if name in paths:
                write_event_rows(staged.temporary(paths[name]), session_ids, item_ids, times, masks[name])
        stats = split_statistics({n: counts[n] for n in SPLITS}, raw=counts["raw"], thresholds=thresholds, steps=steps)
        if stats_path is not None:
            staged.temporary(stats_path).write_text(json.dumps(stats, indent=2) + "\n")
    for name, c in counts.items():
        log.info("%s: %d events, %d sessions, %d items", name, c["events"], c["sessions"], c["items"])
    return stats


def run_split(
    clicks_path: str | Path,
    split_paths: dict[str, str | Path],
    stats_path: str | Path,
    min_test_predictions: int = 1,
    **thresholds,
) -> dict:
    """The split stage: ``clicks.parquet`` to the four split files and ``stats.json``; returns the statistics.
    A test split of fewer than ``min_test_predictions`` next-item predictions is refused (latest_window.py)."""
    for path in [*split_paths.values(), stats_path]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    events = read_events(clicks_path)
    return split_clicks(
        events, split_paths, stats_path=stats_path, source=clicks_path, min_test_predictions=min_test_predictions,
        **thresholds,
    )  # fmt: skip
