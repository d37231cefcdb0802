"""New clicks for a trained model: read, filtered by the protocol, mapped to a vocabulary that grows.

A model keeps learning on clicks that arrive after its training data (``gru4rec-pipeline retrain``):

- :func:`read_new_clicks` reads them through the data stage's readers: the yoochoose ``.dat`` format
  (``clicks.read_clicks``) or an event Parquet file (``events.read_events``: SessionId, ItemId, Time);
- the protocol's filters (``protocol.filter_sessions``: short sessions, then items with fewer than
  ``min_item_support`` events *within the new clicks*, then sessions left short) run on them as the data
  stage runs them on a whole click log;
- :func:`grow_vocabulary` keeps every item of the parent vocabulary at its index and appends the items
  never seen before, in ascending ItemId order, so every old row of the model stays where it was;
- the sampler's support is recomputed from the new clicks, plus ``support_decay`` times the parent's
  support (0: the new clicks only, the default; see :func:`grow_vocabulary`);
- :func:`warn_about_old_sessions`: new sessions that end by the end of the parent's data (older clicks, or
  clicks of the parent's own period, which it may have been trained on) are warned about, naming the file and
  the period they cover.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.clicks import read_clicks
from gru4rec_pipeline.data.codes import dense_codes
from gru4rec_pipeline.data.events import event_arrays, events_from_table, read_events
from gru4rec_pipeline.data.protocol import filter_sessions
from gru4rec_pipeline.data.sessions import log_counts, to_session_arrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.names import PROTOCOL_DEFAULTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewSessions:
    """The new clicks as training sessions over the grown vocabulary, and what was done on the way."""

    arrays: SessionArrays
    vocabulary: Vocabulary
    new_items: int
    time_range: tuple[float, float]
    counts: dict


def read_new_clicks(path: str | Path) -> pd.DataFrame:
    """SessionId, ItemId, Time of a yoochoose-format ``.dat`` click log or an event Parquet file."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "clicks file not found")
    if path.suffix == ".dat":
        return events_from_table(read_clicks(path, with_category=False), source=path)
    return read_events(path)


def grow_vocabulary(parent: Vocabulary, item_ids: np.ndarray, support_decay: float = 0.0) -> tuple[Vocabulary, int]:
    """The parent's items at their indices, then the new items of ``item_ids`` (ascending ItemId); the number of
    new items.

    Support (what the negative sampler draws by): each item's events in ``item_ids`` plus ``support_decay``
    times its parent support, rounded. 0 is the default: a retrain then samples negatives by the popularity of
    the clicks it trains on, as a training from scratch on them would, and a retrain on the very same data
    continues the parent's training exactly. A positive decay keeps items that faded from the new clicks as
    negatives (their scores still get pushed down) at the cost of sampling by a popularity that is no longer
    today's.
    """
    if not 0.0 <= support_decay <= 1.0:
        raise ConfigError("retrain.support_decay", f"got {support_decay!r}, expected a number in [0, 1]")
    distinct, counts = np.unique(np.asarray(item_ids, dtype=np.int64), return_counts=True)
    index = parent.index_of(distinct)
    unseen = index < 0
    item_ids_grown = np.concatenate([parent.item_ids, distinct[unseen]])
    support = np.rint(support_decay * parent.support.astype(np.float64)).astype(np.int64)
    support = np.concatenate([support, np.zeros(int(unseen.sum()), dtype=np.int64)])
    support[np.where(unseen, parent.n_items + np.cumsum(unseen) - 1, index)] += counts
    return Vocabulary(item_ids_grown, support), int(unseen.sum())


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def warn_about_old_sessions(
    clicks_path: str | Path, session_ids: np.ndarray, times: np.ndarray, parent_range: tuple[float, float]
) -> int:
    """Warn, naming ``clicks_path`` and the period, when sessions of the new clicks end by the end of the data the
    parent was trained on (``parent_range``: its first and last click): all of them (older clicks), or some (clicks
    overlapping the parent's period, which may be clicks it has seen: retrained on, they count twice). A session
    that begins in the parent's period and ends after it is new (the protocol gives a session to the period of
    its last click). Returns the number of such sessions."""
    codes, n_sessions = dense_codes(session_ids)
    first, last = np.full(n_sessions, np.inf), np.full(n_sessions, -np.inf)
    np.minimum.at(first, codes, times)
    np.maximum.at(last, codes, times)
    old = last <= parent_range[1]
    count = int(np.count_nonzero(old))
    parent = f"{utc(parent_range[0])} .. {utc(parent_range[1])}"
    if count == n_sessions:
        log.warning(
            "%s (%s .. %s) is not newer than the data the model was trained on (%s): retraining on older clicks",
            clicks_path, utc(first.min()), utc(last.max()), parent,
        )  # fmt: skip
    elif count:
        log.warning(
            "%s overlaps the data the model was trained on (%s): %d of its %d sessions end by its end, from %s to "
            "%s; if the model saw them, the retrain counts them twice",
            clicks_path, parent, count, n_sessions, utc(first[old].min()), utc(last[old].max()),
        )  # fmt: skip
    return count


def new_sessions(
    clicks_path: str | Path,
    parent: Vocabulary,
    protocol: dict | None = None,
    support_decay: float = 0.0,
    parent_range: tuple[float, float] | None = None,
) -> NewSessions:
    """The new clicks of ``clicks_path`` filtered by the protocol (``protocol``: the config's section; its
    ``min_session_length`` and ``min_item_support`` apply) and mapped to the grown vocabulary; ``parent_range``
    (the first and last click the parent was trained on): sessions not newer than it are warned about.

    Refuses clicks that leave no session of two or more events, naming the file and the settings.
    """
    settings = {**PROTOCOL_DEFAULTS, **(protocol or {})}
    min_length, min_support = int(settings["min_session_length"]), int(settings["min_item_support"])
    clicks = read_new_clicks(clicks_path)
    filtered = filter_sessions(clicks, min_session_length=min_length, min_item_support=min_support)
    if len(filtered) == 0:
        raise DataFormatError(
            clicks_path,
            f"no session is left of its {len(clicks):,} clicks after the protocol's filters (sessions of at least "
            f"protocol.min_session_length={min_length} events, items with at least "
            f"protocol.min_item_support={min_support} events within these clicks): nothing to retrain on",
        )
    session_ids, item_ids, times = event_arrays(filtered, source=clicks_path)
    if parent_range is not None:
        warn_about_old_sessions(clicks_path, session_ids, times, parent_range)
    vocabulary, n_new = grow_vocabulary(parent, item_ids, support_decay)
    arrays, counts = to_session_arrays(filtered, vocabulary, min_length)
    log_counts(f"new clicks {clicks_path}", counts)
    log.info("vocabulary grows from %d to %d items (%d new)", parent.n_items, vocabulary.n_items, n_new)
    counts = {"clicks": len(clicks), "after_filters": len(filtered), **counts}
    return NewSessions(arrays, vocabulary, n_new, (float(times.min()), float(times.max())), counts)
