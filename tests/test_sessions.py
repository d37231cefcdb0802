"""Vocabulary, session arrays and the export formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gru4rec_pipeline import cli
from gru4rec_pipeline.data import codes, export, sessions
from gru4rec_pipeline.data import events as event_files
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError


def events(rows) -> pd.DataFrame:
    session, item, time = zip(*rows)
    return pd.DataFrame(
        {
            "SessionId": np.array(session, dtype=np.int64),
            "ItemId": np.array(item, dtype=np.int64),
            "Time": np.array(time, dtype=np.float64),
        }
    )


TRAIN = events(
    [
        (1, 30, 10.0),
        (1, 10, 11.0),
        (1, 30, 12.0),
        (2, 20, 5.0),
        (2, 10, 6.0),
        (3, 10, 5.0),
        (3, 20, 7.0),
    ]
)


def vocabulary_of(frame: pd.DataFrame) -> Vocabulary:
    return Vocabulary.from_item_ids(frame["ItemId"].to_numpy())


def test_vocabulary_is_dense_in_item_order_with_support(tmp_path):
    vocab = vocabulary_of(TRAIN)
    assert vocab.item_ids.tolist() == [10, 20, 30] and vocab.support.tolist() == [3, 2, 2]
    vocab.save(tmp_path / "vocab.parquet")
    frame = pd.read_parquet(tmp_path / "vocab.parquet")
    assert frame["ItemIdx"].tolist() == [0, 1, 2]
    assert [str(t) for t in frame.dtypes] == ["int64", "int64", "int64"]
    loaded = Vocabulary.load(tmp_path / "vocab.parquet")
    assert loaded.fingerprint() == vocab.fingerprint() and loaded.index_of([30, 99]).tolist() == [2, -1]


def test_sessions_ordered_by_start_time_ties_by_session_id():
    vocab = vocabulary_of(TRAIN)
    arrays, counts = sessions.to_session_arrays(TRAIN.iloc[::-1], vocab)
    assert arrays.session_ids.tolist() == [2, 3, 1]  # 2 and 3 both start at 5.0
    assert arrays.offsets.tolist() == [0, 2, 4, 7]
    assert arrays.items.tolist() == [1, 0, 0, 1, 2, 0, 2]
    assert arrays.times.tolist() == [5.0, 6.0, 5.0, 7.0, 10.0, 11.0, 12.0]
    assert counts["unknown_item_events"] == 0 and counts["short_sessions"] == 0
    arrays.validate()


def test_events_with_equal_times_keep_input_order():
    vocab = vocabulary_of(TRAIN)
    tied = events([(9, 30, 1.0), (9, 10, 1.0), (9, 20, 1.0), (9, 20, 0.5)])
    arrays, _ = sessions.to_session_arrays(tied, vocab)
    assert arrays.items.tolist() == [1, 2, 0, 1]


def test_unknown_items_dropped_then_short_sessions_dropped_and_counted():
    vocab = vocabulary_of(TRAIN)
    evaluation = events(
        [
            (7, 10, 1.0),
            (7, 99, 2.0),
            (7, 20, 3.0),  # one unknown event, session stays (2 left)
            (8, 99, 1.0),
            (8, 30, 2.0),  # one unknown, then too short
            (9, 20, 4.0),  # too short from the start
        ]
    )
    arrays, counts = sessions.to_session_arrays(evaluation, vocab)
    assert arrays.session_ids.tolist() == [7]
    assert arrays.items.tolist() == [0, 1]
    assert counts == {
        "events_in": 6,
        "sessions_in": 3,
        "unknown_item_events": 2,
        "short_sessions": 2,
        "short_session_events": 2,
        "sessions_out": 1,
        "events_out": 2,
    }
    longer, counts = sessions.to_session_arrays(TRAIN, vocab, min_session_length=3)
    assert longer.session_ids.tolist() == [1] and counts["short_sessions"] == 2


def test_empty_result_is_valid():
    vocab = vocabulary_of(TRAIN)
    arrays, counts = sessions.to_session_arrays(events([(1, 99, 1.0)]), vocab)
    assert arrays.n_sessions == 0 and arrays.offsets.tolist() == [0]
    assert counts["unknown_item_events"] == 1
    arrays.validate()


def test_bad_vocabulary_is_reported(tmp_path):
    path = tmp_path / "vocab.parquet"
    pd.DataFrame({"ItemId": [1, 1], "ItemIdx": [0, 1], "Support": [1, 1]}).to_parquet(path)
    with pytest.raises(DataFormatError, match="more than one row"):
        Vocabulary.load(path)
    pd.DataFrame({"ItemId": [1, 2], "ItemIdx": [0, 5], "Support": [1, 1]}).to_parquet(path)
    with pytest.raises(DataFormatError, match="permutation"):
        Vocabulary.load(path)
    pd.DataFrame({"ItemId": [1, 2], "ItemIdx": [0, 1]}).to_parquet(path)
    with pytest.raises(DataFormatError, match="missing columns"):
        Vocabulary.load(path)


def test_gru4rec_tsv_round_trip(tmp_path):
    frame = events([(1, 214536502, 1396867869.277), (1, 214536500, 1396867869.3), (22, 5, 1.5e9 + 1e-3)])
    path = tmp_path / "train.tsv"
    export.write_gru4rec_tsv(frame, path)
    text = path.read_text()
    assert text.splitlines()[0] == "SessionId\tItemId\tTime"
    assert text.splitlines()[1] == "1\t214536502\t1396867869.277"
    back = pd.read_csv(path, sep="\t", dtype={"SessionId": np.int64, "ItemId": np.int64, "Time": np.float64})
    pd.testing.assert_frame_equal(back, frame)


def test_paddle_text_lines_per_session(tmp_path):
    vocab = vocabulary_of(TRAIN)
    arrays, _ = sessions.to_session_arrays(TRAIN, vocab)
    path = tmp_path / "train_paddle.txt"
    export.write_paddle_text(arrays, vocab, path)
    assert path.read_text() == "1 0\n0 1\n2 0 2\n"
    export.write_paddle_text(arrays, vocab, path, ids="item")
    assert path.read_text() == "20 10\n10 20\n30 10 30\n"
    # What the port's reader does with a line: split on whitespace, input line[:-1], target line[1:].
    lines = [[int(t) for t in line.split()] for line in (tmp_path / "train_paddle.txt").read_text().splitlines()]
    assert [len(line) for line in lines] == arrays.lengths().tolist()
    export.write_paddle_vocab_size(vocab, tmp_path / "vocab.txt")
    assert (tmp_path / "vocab.txt").read_text() == "3\n"


def test_paddle_text_round_trips_to_arrays(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 8, 50)
    offsets = np.r_[0, np.cumsum(lengths)]
    arrays = SessionArrays(
        offsets, rng.integers(0, 40, offsets[-1]), np.arange(offsets[-1], dtype=float), np.arange(50)
    )
    vocab = Vocabulary(np.arange(40) * 7, np.ones(40, dtype=np.int64))
    export.write_paddle_text(arrays, vocab, tmp_path / "p.txt")
    parsed = [np.array(line.split(), dtype=np.int64) for line in (tmp_path / "p.txt").read_text().splitlines()]
    assert np.array_equal(np.concatenate(parsed), arrays.items)
    assert [len(p) for p in parsed] == lengths.tolist()


def test_sessions_and_export_cli(tmp_path):
    clicks = TRAIN.copy()
    splits = {"train_tr": TRAIN, "valid": events([(5, 10, 100.0), (5, 20, 101.0), (6, 99, 100.0), (6, 10, 102.0)])}
    event_files.write_splits(splits, {n: tmp_path / f"{n}.parquet" for n in splits})
    out = tmp_path / "arrays"
    assert (
        cli.main(
            [
                "sessions",
                "--train",
                str(tmp_path / "train_tr.parquet"),
                "--eval",
                str(tmp_path / "valid.parquet"),
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    vocab = Vocabulary.load(out / "vocab.parquet")
    assert vocab.fingerprint() == vocabulary_of(clicks).fingerprint()
    assert vocab.support.tolist() == [3, 2, 2] and (out / "counts.json").exists()
    train = SessionArrays.load(out / "train.npz")
    assert train.session_ids.tolist() == [2, 3, 1] and train.vocabulary == vocab.fingerprint()
    evaluation = SessionArrays.load(out / "eval.npz")
    assert evaluation.session_ids.tolist() == [5] and evaluation.items.tolist() == [0, 1]

    assert (
        cli.main(
            [
                "export",
                "--events",
                str(tmp_path / "valid.parquet"),
                "--tsv",
                str(tmp_path / "valid.tsv"),
                "--paddle",
                str(tmp_path / "valid.txt"),
                "--vocab",
                str(out / "vocab.parquet"),
                "--paddle-vocab",
                str(tmp_path / "vocab.txt"),
            ]
        )
        == 0
    )
    assert (tmp_path / "valid.tsv").read_text().splitlines()[1:3] == ["5\t10\t100", "5\t20\t101"]
    assert (tmp_path / "valid.txt").read_text() == "0 1\n"
    assert (tmp_path / "vocab.txt").read_text() == "3\n"


def test_export_cli_paddle_needs_vocab(tmp_path, capsys):
    event_files.write_splits({"valid": TRAIN}, {"valid": tmp_path / "valid.parquet"})
    code = cli.main(["export", "--events", str(tmp_path / "valid.parquet"), "--paddle", str(tmp_path / "p.txt")])
    assert code == 2 and "--paddle needs --vocab" in capsys.readouterr().err
    assert not (tmp_path / "p.txt").exists()


def plain_session_lists(frame: pd.DataFrame, vocab: Vocabulary, min_length: int):
    """The conversion stated plainly: dicts and sorted()."""
    index = {item: position for position, item in enumerate(vocab.item_ids.tolist())}
    by_session: dict[int, list] = {}
    for session, item, time in zip(frame.SessionId.tolist(), frame.ItemId.tolist(), frame.Time.tolist()):
        if item in index:
            by_session.setdefault(session, []).append((time, index[item]))
    kept = {s: sorted(events, key=lambda e: e[0]) for s, events in by_session.items() if len(events) >= min_length}
    order = sorted(kept, key=lambda s: (kept[s][0][0], s))
    return [(s, [item for _, item in kept[s]], [time for time, _ in kept[s]]) for s in order]


@pytest.mark.parametrize("seed", range(4))
def test_session_arrays_match_plain_conversion_in_small_blocks(seed, monkeypatch):
    monkeypatch.setattr(codes, "CHUNK_ROWS", 5)
    monkeypatch.setattr(event_files, "CHUNK_ROWS", 5)
    monkeypatch.setattr(sessions, "CHUNK_SESSIONS", 3)
    rng = np.random.default_rng(seed)
    n = 400
    frame = pd.DataFrame(
        {
            "SessionId": rng.integers(0, 60, n) * (10**9 if seed % 2 else 1),
            "ItemId": rng.integers(0, 30, n) * 1000,
            "Time": rng.integers(0, 50, n).astype(np.float64),  # many ties
        }
    )
    vocab = vocabulary_of(frame[frame.ItemId < 25_000])
    arrays, counts = sessions.to_session_arrays(frame, vocab, min_session_length=3)
    expected = plain_session_lists(frame, vocab, 3)
    got = [
        (
            int(arrays.session_ids[s]),
            arrays.session(s).tolist(),
            arrays.times[arrays.offsets[s] : arrays.offsets[s + 1]].tolist(),
        )
        for s in range(arrays.n_sessions)
    ]
    assert got == expected
    assert counts["unknown_item_events"] == int((frame.ItemId >= 25_000).sum())
    assert counts["events_out"] + counts["unknown_item_events"] + counts["short_session_events"] == n
