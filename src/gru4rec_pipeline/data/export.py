"""Exports of a split for other implementations: the official GRU4Rec's TSV and the PaddleRec port's text.

So the very same splits (and item numbering) can be fed to either to compare them with this project.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.events import event_arrays, read_events
from gru4rec_pipeline.data.sessions import log_counts, to_session_arrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.files import atomic_output, write_text_atomic

log = logging.getLogger(__name__)

# What the PaddleRec text holds: the project's vocabulary indices, or the original ItemIds.
PADDLE_ID_KINDS = ("index", "item")


def write_gru4rec_tsv(events: pd.DataFrame, path: str | Path) -> None:
    """The official GRU4Rec input: tab-separated, header ``SessionId\\tItemId\\tTime``, one event
    per line, rows in the order given (split files: by SessionId then Time). Times are written
    with the shortest decimal that reads back as the same float64."""
    session_ids, item_ids, times = event_arrays(events)
    table = pa.table({"SessionId": session_ids, "ItemId": item_ids, "Time": times})
    options = pacsv.WriteOptions(delimiter="\t", quoting_style="none", quoting_header="none")
    with atomic_output(path) as temporary:
        pacsv.write_csv(table, temporary, write_options=options)


def write_paddle_text(arrays: SessionArrays, vocab: Vocabulary, path: str | Path, ids: str = "index") -> None:
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
    if ids not in PADDLE_ID_KINDS:
        raise ConfigError("--paddle-ids", f"got {ids!r}, expected one of {', '.join(PADDLE_ID_KINDS)}")
    values = vocab.item_of(arrays.items) if ids == "item" else arrays.items
    tokens = pc.cast(pa.array(values, type=pa.int64()), pa.string())
    sessions = pa.ListArray.from_arrays(
        pa.array(arrays.offsets.astype(np.int32 if arrays.n_events < 2**31 else np.int64)), tokens
    )
    lines = pc.binary_join(sessions, " ")
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with atomic_output(path) as temporary:
        pacsv.write_csv(pa.table({"line": lines}), temporary, write_options=options)


def write_paddle_vocab_size(vocab: Vocabulary, path: str | Path) -> None:
    """The port's ``vocab.txt``: a single line holding the number of items."""
    write_text_atomic(path, f"{len(vocab)}\n")


def export_split(
    events_path: str | Path,
    tsv_path: str | Path | None = None,
    paddle_path: str | Path | None = None,
    vocab_path: str | Path | None = None,
    paddle_ids: str = "index",
    paddle_vocab_path: str | Path | None = None,
    min_session_length: int = 2,
) -> None:
    """The export stage: the split ``events_path`` as an official GRU4Rec TSV and/or PaddleRec text."""
    if tsv_path is None and paddle_path is None:
        raise ConfigError("--tsv/--paddle", "nothing to export: give --tsv and/or --paddle")
    events = read_events(events_path)
    if tsv_path is not None:
        write_gru4rec_tsv(events, tsv_path)
    if paddle_path is not None:
        if vocab_path is None:
            raise ConfigError("--vocab", "--paddle needs --vocab (vocab.parquet of the training split)")
        vocab = Vocabulary.load(vocab_path)
        arrays, counts = to_session_arrays(events, vocab, min_session_length)
        log_counts(str(events_path), counts)
        write_paddle_text(arrays, vocab, paddle_path, ids=paddle_ids)
        if paddle_vocab_path is not None:
            write_paddle_vocab_size(vocab, paddle_vocab_path)
