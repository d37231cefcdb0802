"""Item vocabulary, session arrays for training/evaluation, and exports for other implementations.

- ``build_vocabulary``: the items of the training split, dense indices in ItemId order.
- ``to_session_arrays``: a split as :class:`~gru4rec_pipeline.data.arrays.SessionArrays`, sessions ordered
  by start time (the order GRU4Rec's session-parallel mini-batches consume them).
- ``write_gru4rec_tsv`` / ``write_paddle_text``: the input formats of the official GRU4Rec code and
  of the PaddlePaddle (PaddleRec) port, so the same splits can be fed to either.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.events import event_arrays, read_events, row_blocks, session_time_order
from gru4rec_pipeline.data.protocol import count_codes, dense_codes, lookup_codes
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.files import atomic_output, write_text_atomic

log = logging.getLogger(__name__)

# Sessions per block when reordering events: about a million events at RSC15's ~4 per session.
CHUNK_SESSIONS = 1 << 18

VOCAB_SCHEMA = pa.schema([("ItemId", pa.int64()), ("ItemIdx", pa.int64()), ("Support", pa.int64())])


def build_vocabulary(train: pd.DataFrame) -> pd.DataFrame:
    """ItemId, ItemIdx (dense 0..n-1 in ascending ItemId order), Support (events in ``train``)."""
    _, item_ids, _ = event_arrays(train, source="train")
    codes, uniques = pd.factorize(item_ids, sort=False)
    support = np.bincount(codes, minlength=len(uniques))
    order = np.argsort(uniques, kind="stable")
    return pd.DataFrame(
        {
            "ItemId": np.asarray(uniques, dtype=np.int64)[order],
            "ItemIdx": np.arange(len(uniques), dtype=np.int64),
            "Support": support[order].astype(np.int64),
        }
    )


def _vocabulary_arrays(vocab: pd.DataFrame, source: str | Path = "<vocabulary>") -> tuple[np.ndarray, np.ndarray]:
    """(ItemId sorted ascending, matching ItemIdx), checked."""
    missing = [c for c in ("ItemId", "ItemIdx") if c not in vocab.columns]
    if missing:
        raise DataFormatError(source, f"missing columns {missing}; expected ItemId int64, ItemIdx int64, Support int64")
    item_ids = vocab["ItemId"].to_numpy(dtype=np.int64)
    item_idx = vocab["ItemIdx"].to_numpy(dtype=np.int64)
    order = np.argsort(item_ids, kind="stable")
    item_ids, item_idx = item_ids[order], item_idx[order]
    if len(item_ids) > 1 and (np.diff(item_ids) == 0).any():
        raise DataFormatError(source, "ItemId values repeat; expected one row per item")
    if not np.array_equal(np.sort(item_idx), np.arange(len(item_idx))):
        raise DataFormatError(source, f"ItemIdx must be a permutation of 0..{len(item_idx) - 1}")
    return item_ids, item_idx


def to_session_arrays(
    events: pd.DataFrame, vocab: pd.DataFrame, min_session_length: int = 2
) -> tuple[SessionArrays, dict[str, int]]:
    """Sessions of ``events`` with items mapped to vocabulary indices.

    Events whose item is not in ``vocab`` are dropped, then sessions shorter than
    ``min_session_length``. Sessions are ordered by start time (ties: SessionId), events within a
    session by Time (ties: input order). The dict counts what went in, what was dropped and what
    came out, so the stage can log it.
    """
    session_ids, item_ids, times = event_arrays(events)
    vocab_ids, vocab_idx = _vocabulary_arrays(vocab)
    n = len(item_ids)

    # Item ids -> vocabulary indices through a hash index, block by block (-1: unknown item).
    index_of_id = pd.Index(vocab_ids)
    items = np.empty(n, dtype=np.int32 if len(vocab_idx) < 2**31 else np.int64)
    known = np.empty(n, dtype=bool)
    for block in row_blocks(n):
        position = index_of_id.get_indexer(item_ids[block])
        np.greater_equal(position, 0, out=known[block])
        items[block] = vocab_idx[position] if len(vocab_idx) else 0

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
    )
    counts["sessions_out"] = arrays.n_sessions
    counts["events_out"] = arrays.n_events
    return arrays, counts


# ----------------------------------------------------------------------------------------------
# Exports.


def write_gru4rec_tsv(events: pd.DataFrame, path: str | Path) -> None:
    """The official GRU4Rec input: tab-separated, header ``SessionId\\tItemId\\tTime``, one event
    per line, rows in the order given (split files: by SessionId then Time). Times are written
    with the shortest decimal that reads back as the same float64."""
    session_ids, item_ids, times = event_arrays(events)
    table = pa.table({"SessionId": session_ids, "ItemId": item_ids, "Time": times})
    options = pacsv.WriteOptions(delimiter="\t", quoting_style="none", quoting_header="none")
    with atomic_output(path) as temporary:
        pacsv.write_csv(table, temporary, write_options=options)


def write_paddle_text(arrays: SessionArrays, vocab: pd.DataFrame, path: str | Path, ids: str = "index") -> None:
    """The PaddleRec GRU4Rec port's text input: one line per session, item ids separated by spaces.

    What the port does (PaddleRec ``models/recall/gru4rec``): ``convert_format.py`` turns the
    official TSV (header skipped, rows grouped by SessionId in file order) into one line per
    session of the ORIGINAL ItemIds, each followed by a space; ``text2paddle.py`` then replaces
    each id by a dense 0-based index (its own dictionary: by descending frequency over train and
    test, ties by the id's string) and writes each line as ``"idx idx ... \\n"``; its reader
    splits a line on whitespace and trains on (line[:-1] -> line[1:]).

    Here ``ids="index"`` (default) writes the project's vocabulary indices (ItemIdx, ItemId order)
    so that a model trained by the port sees the same item numbering as this project;
    ``ids="item"`` writes original ItemIds (the intermediate ``convert_format.py`` output).
    Ids are separated by single spaces, without the port's trailing space (its reader splits on
    whitespace, so both read the same), and every line ends in ``\\n``. Sessions appear in the
    order of ``arrays`` (by start time).
    """
    if ids not in ("index", "item"):
        raise ValueError(f"ids must be 'index' or 'item', not {ids!r}")
    values = arrays.items
    if ids == "item":
        vocab_ids, vocab_idx = _vocabulary_arrays(vocab)
        item_of_index = np.empty(len(vocab_idx), dtype=np.int64)
        item_of_index[vocab_idx] = vocab_ids
        values = item_of_index[values]
    tokens = pc.cast(pa.array(values, type=pa.int64()), pa.string())
    sessions = pa.ListArray.from_arrays(
        pa.array(arrays.offsets.astype(np.int32 if arrays.n_events < 2**31 else np.int64)), tokens
    )
    lines = pc.binary_join(sessions, " ")
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with atomic_output(path) as temporary:
        pacsv.write_csv(pa.table({"line": lines}), temporary, write_options=options)


def write_paddle_vocab_size(vocab: pd.DataFrame, path: str | Path) -> None:
    """The port's ``vocab.txt``: a single line holding the number of items."""
    write_text_atomic(path, f"{len(vocab)}\n")


# ----------------------------------------------------------------------------------------------
# Files and command line.


def write_vocabulary(vocab: pd.DataFrame, path: str | Path) -> None:
    table = pa.Table.from_pandas(vocab[["ItemId", "ItemIdx", "Support"]], schema=VOCAB_SCHEMA, preserve_index=False)
    with atomic_output(path) as temporary:
        pq.write_table(table, temporary)


def read_vocabulary(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "file not found")
    vocab = pd.read_parquet(path)
    _vocabulary_arrays(vocab, source=path)
    return vocab


def _log_counts(name: str, counts: dict[str, int]) -> None:
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


def _run_sessions(args) -> int:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train = read_events(args.train)
    vocab = build_vocabulary(train)
    train_arrays, train_counts = to_session_arrays(train, vocab, args.min_session_length)
    del train
    _log_counts("train", train_counts)
    eval_arrays, eval_counts = to_session_arrays(read_events(args.eval), vocab, args.min_session_length)
    _log_counts("eval", eval_counts)
    log.info("vocabulary: %d items", len(vocab))
    # Arrays first, vocabulary last: a run that fails midway leaves no vocab.parquet.
    train_arrays.save(out_dir / "train.npz")
    eval_arrays.save(out_dir / "eval.npz")
    write_vocabulary(vocab, out_dir / "vocab.parquet")
    return 0


def _run_export(args) -> int:
    if args.tsv is None and args.paddle is None:
        raise ConfigError("--tsv/--paddle", "nothing to export: give --tsv and/or --paddle")
    events = read_events(args.events)
    if args.tsv is not None:
        write_gru4rec_tsv(events, args.tsv)
    if args.paddle is not None:
        if args.vocab is None:
            raise ConfigError("--vocab", "--paddle needs --vocab (vocab.parquet of the training split)")
        vocab = read_vocabulary(args.vocab)
        arrays, counts = to_session_arrays(events, vocab, args.min_session_length)
        _log_counts(str(args.events), counts)
        write_paddle_text(arrays, vocab, args.paddle, ids=args.paddle_ids)
        if args.paddle_vocab is not None:
            write_paddle_vocab_size(vocab, args.paddle_vocab)
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "sessions",
        help="build the item vocabulary and session arrays (.npz) from split files",
        description="Write vocab.parquet, train.npz and eval.npz into --out-dir.",
    )
    parser.add_argument("--train", required=True, help="training split parquet (defines the vocabulary)")
    parser.add_argument("--eval", required=True, help="evaluation split parquet (test or valid)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument(
        "--min-session-length",
        type=int,
        default=2,
        help="drop sessions shorter than this after unknown items are removed (default 2)",
    )
    parser.set_defaults(func=_run_sessions)

    parser = subparsers.add_parser(
        "export",
        help="write a split in the official GRU4Rec TSV and/or the PaddleRec text format",
    )
    parser.add_argument("--events", required=True, help="split parquet (SessionId, ItemId, Time)")
    parser.add_argument("--tsv", help="official GRU4Rec TSV to write")
    parser.add_argument("--paddle", help="PaddleRec text file to write (needs --vocab)")
    parser.add_argument("--vocab", help="vocab.parquet of the training split")
    parser.add_argument(
        "--paddle-ids",
        choices=("index", "item"),
        default="index",
        help="vocabulary indices (what the port trains on) or original ItemIds",
    )
    parser.add_argument("--paddle-vocab", help="also write the port's vocab.txt (the number of items)")
    parser.add_argument(
        "--min-session-length", type=int, default=2, help="for --paddle: drop sessions shorter than this (default 2)"
    )
    parser.set_defaults(func=_run_export)
