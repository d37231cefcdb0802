"""Session arrays for training and evaluation: the stage between the protocol's splits and the model.

- :func:`to_session_arrays`: a split as :class:`~gru4rec_pipeline.data.arrays.SessionArrays` over the
  training vocabulary's indices, sessions ordered by start time (the order GRU4Rec's session-parallel
  minibatches consume them);
- :func:`build_sessions`: the stage's driver: the vocabulary of the training split and the session arrays
  of the training and evaluation splits, with counts of what was dropped on the way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.codes import count_codes, dense_codes, lookup_codes, row_blocks
from gru4rec_pipeline.data.events import event_arrays, read_events, session_time_order
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import write_json_atomic

log = logging.getLogger(__name__)

# Sessions per block when reordering events: about a million events at RSC15's ~4 per session.
CHUNK_SESSIONS = 1 << 18


def to_session_arrays(
    events: pd.DataFrame, vocab: Vocabulary, min_session_length: int = 2
) -> tuple[SessionArrays, dict[str, int]]:
    """Sessions of ``events`` with items mapped to vocabulary indices.

    Events whose item is not in ``vocab`` are dropped, then sessions shorter than
    ``min_session_length``. Sessions are ordered by start time (ties: SessionId), events within a
    session by Time (ties: input order). The dict counts what went in, what was dropped and what
    came out, so the stage can log it.
    """
    session_ids, item_ids, times = event_arrays(events)
    n = len(item_ids)

    # Item ids -> vocabulary indices, block by block (-1: unknown item).
    items = np.empty(n, dtype=np.int32 if vocab.n_items < 2**31 else np.int64)
    known = np.empty(n, dtype=bool)
    for block in row_blocks(n):
        position = vocab.index_of(item_ids[block])
        np.greater_equal(position, 0, out=known[block])
        items[block] = position

    session_codes, n_codes = dense_codes(session_ids)
    all_lengths = count_codes(session_codes, n_codes)
    lengths = count_codes(session_codes, n_codes, known)
    short = (lengths < min_session_length) & (lengths > 0)
    keep = known & ~lookup_codes(short, session_codes)
    counts = {
        "events_in": n,
        "sessions_in": int(np.count_nonzero(all_lengths)),
        "unknown_item_events": int(n - np.count_nonzero(known)),
        "short_sessions": int(np.count_nonzero(short)),
        "short_session_events": int(np.sum(lengths[short])),
    }
    del session_codes, known, all_lengths, lengths, short
    if not keep.all():
        session_ids, items, times = session_ids[keep], items[keep], times[keep]
    del keep

    order = session_time_order(session_ids, times)
    if order is not None:
        session_ids, items, times = session_ids[order], items[order], times[order]
        del order
    # Sessions are now contiguous runs, each sorted by time: its first event is its start.
    starts = (
        np.flatnonzero(np.r_[True, session_ids[1:] != session_ids[:-1]]) if len(session_ids) else np.zeros(0, np.int64)
    )
    run_lengths = np.diff(np.r_[starts, len(session_ids)])
    session_order = np.lexsort((session_ids[starts], times[starts]))
    offsets = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(run_lengths[session_order], out=offsets[1:])

    ordered_items = np.empty(len(items), dtype=np.int64)
    ordered_times = np.empty(len(times), dtype=np.float64)
    # Gather in groups of sessions: event k of the output, in session s, comes from the old
    # start of s plus (k - offsets[s]).
    group = max(1, CHUNK_SESSIONS)
    for first in range(0, len(session_order), group):
        sessions = session_order[first : first + group]
        low, high = offsets[first], offsets[first + len(sessions)]
        source = np.repeat(starts[sessions] - offsets[first : first + len(sessions)], run_lengths[sessions])
        source += np.arange(low, high)
        ordered_items[low:high] = items[source]
        ordered_times[low:high] = times[source]

    arrays = SessionArrays(
        offsets=offsets,
        items=ordered_items,
        times=ordered_times,
        session_ids=session_ids[starts[session_order]].astype(np.int64, copy=False),
        vocabulary=vocab.fingerprint(),
    )
    counts["sessions_out"] = arrays.n_sessions
    counts["events_out"] = arrays.n_events
    return arrays, counts


def log_counts(name: str, counts: dict[str, int]) -> None:
    log.info(
        "%s: %d events in %d sessions; dropped %d events with items unknown to the vocabulary, "
        "then %d sessions (%d events) shorter than the minimum; kept %d sessions, %d events",
        name,
        counts["events_in"],
        counts["sessions_in"],
        counts["unknown_item_events"],
        counts["short_sessions"],
        counts["short_session_events"],
        counts["sessions_out"],
        counts["events_out"],
    )


def build_sessions(
    train_path: str | Path,
    eval_path: str | Path,
    vocab_path: str | Path,
    train_out: str | Path,
    eval_out: str | Path,
    counts_path: str | Path,
    min_session_length: int = 2,
) -> dict:
    """The sessions stage: ``vocab.parquet`` from the training split, session arrays of the training and
    evaluation splits, and ``counts.json`` recording what the conversion dropped (never silently)."""
    train = read_events(train_path)
    vocab = Vocabulary.from_item_ids(event_arrays(train, source=train_path)[1])
    if vocab.n_items == 0:
        raise DataFormatError(train_path, "the training split has no events: no vocabulary to build")
    train_arrays, train_counts = to_session_arrays(train, vocab, min_session_length)
    del train
    log_counts("train", train_counts)
    eval_arrays, eval_counts = to_session_arrays(read_events(eval_path), vocab, min_session_length)
    log_counts("eval", eval_counts)
    log.info("vocabulary: %d items", vocab.n_items)
    counts = {"items": vocab.n_items, "train": train_counts, "evaluation": eval_counts}
    # Arrays first, the vocabulary last: a run that fails midway leaves no vocab.parquet.
    for path in (vocab_path, train_out, eval_out, counts_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    train_arrays.save(train_out)
    eval_arrays.save(eval_out)
    write_json_atomic(counts_path, counts)
    vocab.save(vocab_path)
    return counts
