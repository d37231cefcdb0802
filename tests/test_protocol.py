"""The RSC15 protocol against a plain statement of it, row for row, plus its edge cases."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from gru4rec_pipeline import cli
from gru4rec_pipeline.data import events, protocol
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.names import SPLITS

DAY = 86400.0


# ----------------------------------------------------------------------------------------------
# The protocol's in-memory forms: what run_split writes, as frames (the pipeline reads and writes files).


def build_splits(clicks: pd.DataFrame, **thresholds) -> dict[str, pd.DataFrame]:
    """The four splits (train_full, test, train_tr, valid), each sorted by SessionId then Time (stable)."""
    session_ids, item_ids, times = events.event_arrays(protocol._sorted_frame(clicks))
    masks, _, _ = protocol.protocol_masks(session_ids, item_ids, times, **thresholds)
    return {name: events.event_frame(session_ids[m], item_ids[m], times[m]) for name, m in masks.items()}


def split_by_last_time(frame: pd.DataFrame, seconds: float = DAY, min_session_length: int = 2):
    """(train, test) of the time split alone: test sessions end within the last ``seconds``."""
    session_ids, item_ids, times = events.event_arrays(frame)
    session_codes, n_sessions = protocol.dense_codes(session_ids)
    item_codes, n_items = protocol.dense_codes(item_ids)
    everything = np.ones(len(times), dtype=bool)
    train, test = protocol._split_masks(
        session_codes, item_codes, times, everything, n_sessions, n_items, seconds, min_session_length
    )
    return tuple(events.event_frame(session_ids[m], item_ids[m], times[m]) for m in (train, test))


# ----------------------------------------------------------------------------------------------
# The protocol stated plainly: lists of (SessionId, ItemId, Time) rows, Counters and sets.


def _drop_short_sessions(rows, min_length):
    length = Counter(session for session, _, _ in rows)
    return [row for row in rows if length[row[0]] >= min_length]


def _plain_split(rows, seconds, min_length):
    if not rows:
        return [], []
    boundary = max(time for _, _, time in rows) - seconds
    last_time = {}
    for session, _, time in rows:
        last_time[session] = max(last_time.get(session, time), time)
    test_sessions = {session for session, time in last_time.items() if time >= boundary}
    train = [row for row in rows if row[0] not in test_sessions]
    test = [row for row in rows if row[0] in test_sessions]
    train_items = {item for _, item, _ in train}
    test = [row for row in test if row[1] in train_items]
    return train, _drop_short_sessions(test, min_length)


def plain_protocol(rows, min_session_length=2, min_item_support=5, split_seconds=DAY):
    rows = _drop_short_sessions(rows, min_session_length)
    support = Counter(item for _, item, _ in rows)
    rows = [row for row in rows if support[row[1]] >= min_item_support]
    rows = _drop_short_sessions(rows, min_session_length)
    rows = sorted(rows, key=lambda row: (row[0], row[2]))  # stable: input order among ties
    train_full, test = _plain_split(rows, split_seconds, min_session_length)
    train_tr, valid = _plain_split(train_full, split_seconds, min_session_length)
    return {"train_full": train_full, "test": test, "train_tr": train_tr, "valid": valid}


def rows_of(frame: pd.DataFrame):
    return list(zip(frame["SessionId"].tolist(), frame["ItemId"].tolist(), frame["Time"].tolist()))


def frame_of(rows) -> pd.DataFrame:
    session, item, time = zip(*rows) if rows else ((), (), ())
    return pd.DataFrame(
        {
            "SessionId": np.array(session, dtype=np.int64),
            "ItemId": np.array(item, dtype=np.int64),
            "Time": np.array(time, dtype=np.float64),
        }
    )


def random_clicks(seed: int) -> pd.DataFrame:
    """Skewed item popularity (support near the threshold), whole-second times (ties inside
    sessions), sparse or compact ids, a few days of data, rows shuffled."""
    rng = np.random.default_rng(seed)
    n_sessions = int(rng.integers(150, 400))
    n_items = int(rng.integers(30, 120))
    popularity = 1.0 / np.arange(1, n_items + 1) ** rng.uniform(0.5, 1.5)
    popularity /= popularity.sum()
    item_ids = rng.choice(10**9, n_items, replace=False) if seed % 2 else np.arange(n_items) + 7
    session_ids = rng.choice(10**8, n_sessions, replace=False) if seed % 3 else np.arange(n_sessions) + 1
    rows = []
    span = rng.uniform(2, 6) * DAY
    for session in session_ids:
        length = int(rng.choice([1, 1, 2, 2, 3, 4, 6, 9]))
        start = float(rng.integers(0, int(span)))
        for _ in range(length):
            rows.append(
                (int(session), int(rng.choice(item_ids, p=popularity)), 1.39e9 + start + float(rng.integers(0, 1800)))
            )
    order = rng.permutation(len(rows))
    return frame_of([rows[i] for i in order])


@pytest.mark.parametrize("seed", range(8))
def test_splits_match_plain_protocol_row_for_row(seed):
    clicks = random_clicks(seed)
    expected = plain_protocol(rows_of(clicks))
    splits = build_splits(clicks)
    assert set(splits) == {"train_full", "test", "train_tr", "valid"}
    for name in expected:
        assert rows_of(splits[name]) == expected[name], name
    assert len(expected["train_full"]) > 0 and len(expected["test"]) > 0


@pytest.mark.parametrize("thresholds", [{"min_session_length": 3}, {"min_item_support": 2}, {"split_seconds": 2 * DAY}])
def test_thresholds_are_parameters(thresholds):
    clicks = random_clicks(11)
    expected = plain_protocol(rows_of(clicks), **thresholds)
    splits = build_splits(clicks, **thresholds)
    for name in expected:
        assert rows_of(splits[name]) == expected[name], name


def test_unknown_threshold_is_rejected():
    with pytest.raises(ConfigError, match="min_item_supprt"):
        build_splits(random_clicks(0), min_item_supprt=3)


def test_filter_and_split_functions_match_plain_steps():
    clicks = random_clicks(5)
    filtered = protocol.filter_sessions(clicks)
    rows = _drop_short_sessions(rows_of(clicks), 2)
    support = Counter(item for _, item, _ in rows)
    rows = _drop_short_sessions([r for r in rows if support[r[1]] >= 5], 2)
    assert rows_of(filtered) == rows  # input order kept
    train, test = split_by_last_time(filtered)
    plain_train, plain_test = _plain_split(rows, DAY, 2)
    assert rows_of(train) == plain_train and rows_of(test) == plain_test


# ----------------------------------------------------------------------------------------------
# Edge cases, hand-made. Items 1..4 are popular (support well above 5) so they survive filtering.


def popular_background(first_session=1000, start=0.0):
    """Ten long training sessions of items 1..4, far before the end."""
    return [(first_session + s, 1 + (k % 4), start + 10.0 * s + k) for s in range(10) for k in range(4)]


def test_last_event_exactly_at_boundary_goes_to_test():
    tmax = 10 * DAY
    rows = popular_background() + [
        (1, 1, tmax - DAY - 5.0),
        (1, 2, tmax - DAY),  # last event exactly at the boundary
        (2, 1, tmax - DAY - 5.0),
        (2, 2, tmax - DAY - 0.001),  # just before it
        (3, 3, tmax - 1.0),
        (3, 4, tmax),
    ]
    splits = build_splits(frame_of(rows))
    assert set(splits["test"]["SessionId"]) == {1, 3}
    assert 2 in set(splits["train_full"]["SessionId"])


def test_session_straddling_boundary_is_assigned_by_last_event():
    tmax = 10 * DAY
    rows = popular_background() + [
        (5, 1, tmax - 3 * DAY),
        (5, 2, tmax - 2 * DAY),
        (5, 3, tmax - 10.0),  # starts long before
        (6, 3, tmax - 1.0),
        (6, 4, tmax),
    ]
    splits = build_splits(frame_of(rows))
    test = splits["test"]
    assert test.loc[test.SessionId == 5, "Time"].tolist() == [tmax - 3 * DAY, tmax - 2 * DAY, tmax - 10.0]
    assert 5 not in set(splits["train_full"]["SessionId"])


def test_support_falling_below_threshold_after_filtering_is_not_iterated():
    # Item 50 has support 5 after step 1. Four of its sessions pair it with a rare item (support 1):
    # step 2 removes the rare items, step 3 the now single-event sessions, leaving item 50 with
    # support 1 — it stays, because the protocol makes one pass.
    rows = popular_background()
    for s in range(4):
        rows += [(100 + s, 50, 100.0 + s), (100 + s, 900 + s, 101.0 + s)]
    rows += [(110, 50, 200.0), (110, 1, 201.0)]
    # Item 60: support 5 counting single-event sessions, so below 5 after step 1: dropped.
    rows += [(120 + s, 60, 300.0 + s) for s in range(2)] + [(130, 60, 400.0), (130, 2, 401.0)]
    rows += [(131, 60, 410.0), (131, 3, 411.0), (132, 60, 420.0), (132, 4, 421.0)]
    rows += [(200, 1, 20 * DAY), (200, 2, 20 * DAY + 1)]  # the test day, far away
    splits = build_splits(frame_of(rows))
    train = splits["train_full"]
    assert train.loc[train.SessionId == 110, "ItemId"].tolist() == [50, 1]
    assert not set(train.SessionId) & {100, 101, 102, 103}
    assert 60 not in set(train.ItemId)
    assert not set(train.SessionId) & {130, 131, 132}  # short once item 60 went: step 3


def test_duplicate_timestamps_keep_input_order_within_session():
    rows = popular_background() + [(7, 3, 500.0), (7, 1, 500.0), (7, 2, 500.0), (7, 4, 499.0)]
    rows += [(200, 1, 20 * DAY), (200, 2, 20 * DAY + 1)]
    shuffled = rows[::-1]
    for given in (rows, shuffled):
        train = build_splits(frame_of(given))["train_full"]
        expected = [4] + [item for s, item, t in given if s == 7 and t == 500.0]
        assert train.loc[train.SessionId == 7, "ItemId"].tolist() == expected
        assert train.SessionId.is_monotonic_increasing


def test_test_items_unseen_in_train_are_dropped_then_short_test_sessions():
    tmax = 20 * DAY
    rows = popular_background()
    rows += [(300 + s, 70, tmax - 100.0 + s) for s in range(5)]  # item 70: popular, test day only
    rows = [r for r in rows] + [(300 + s, 1, tmax - 50.0 + s) for s in range(5)]
    rows += [(400, 70, tmax - 10.0), (400, 2, tmax - 9.0), (400, 3, tmax - 8.0)]
    splits = build_splits(frame_of(rows))
    test = splits["test"]
    assert 70 not in set(test.ItemId)
    assert not set(test.SessionId) & {300, 301, 302, 303, 304}  # one event left each: dropped
    assert test.loc[test.SessionId == 400, "ItemId"].tolist() == [2, 3]


def test_empty_and_all_filtered_inputs_give_empty_splits():
    for rows in ([], [(1, 1, 0.0), (2, 1, 1.0)]):
        splits = build_splits(frame_of(rows))
        assert all(len(frame) == 0 for frame in splits.values())


def test_blocks_smaller_than_the_data_give_the_same_splits(monkeypatch, tmp_path):
    clicks = random_clicks(7)
    expected = plain_protocol(rows_of(clicks))
    monkeypatch.setattr(events, "CHUNK_ROWS", 7)
    monkeypatch.setattr(events, "ROW_GROUP_ROWS", 50)
    paths = {name: tmp_path / f"{name}.parquet" for name in expected}
    protocol.split_clicks(clicks, paths)
    for name, rows in expected.items():
        assert rows_of(pd.read_parquet(paths[name])) == rows, name
    assert pq.ParquetFile(paths["train_full"]).metadata.num_row_groups > 1


def test_dense_codes_sparse_and_compact_ids():
    compact, n = protocol.dense_codes(np.array([5, 7, 5], dtype=np.int64))
    assert n == 3 and compact.tolist() == [0, 2, 0]
    sparse, n = protocol.dense_codes(np.array([10**12, 3, 10**12], dtype=np.int64))
    assert n == 2 and sparse[0] == sparse[2] != sparse[1]
    runs, n = protocol.dense_codes(np.array([3, 3, 10**12, 10**12 + 1], dtype=np.int64))
    assert n == 3 and runs.tolist() == [0, 0, 1, 2]


def test_bad_columns_are_reported():
    with pytest.raises(DataFormatError, match="missing columns \\['Time'\\]"):
        build_splits(pd.DataFrame({"SessionId": [1], "ItemId": [2]}))
    with pytest.raises(DataFormatError, match="non-finite"):
        build_splits(pd.DataFrame({"SessionId": [1], "ItemId": [2], "Time": [np.inf]}))
    with pytest.raises(DataFormatError, match="ItemId"):
        build_splits(pd.DataFrame({"SessionId": [1], "ItemId": ["a"], "Time": [1.0]}))


# ----------------------------------------------------------------------------------------------
# Statistics, files, command line.


def test_statistics_count_splits_and_carry_published_figures():
    clicks = random_clicks(3)
    splits = build_splits(clicks)
    stats = protocol.split_statistics(splits, raw=clicks)
    for name, frame in splits.items():
        assert stats["splits"][name] == {
            "events": len(frame),
            "sessions": frame.SessionId.nunique(),
            "items": frame.ItemId.nunique(),
        }
    assert stats["splits"]["raw"]["events"] == len(clicks)
    assert stats["published_rsc15"]["raw"] == {"events": 33_003_944, "sessions": 9_249_729, "items": 52_739}
    assert stats["published_rsc15"]["train_full"] == {"events": 31_637_239, "sessions": 7_966_257, "items": 37_483}
    assert stats["published_rsc15"]["test"] == {"events": 71_222, "sessions": 15_324, "items": 6_751}
    sessions_kept = 100 * stats["splits"]["train_full"]["sessions"] / stats["splits"]["raw"]["sessions"]
    assert stats["ratios"]["sessions_kept_pct"] == pytest.approx(sessions_kept, abs=1e-3)
    assert stats["published_rsc15_ratios"]["sessions_kept_pct"] == pytest.approx(86.124, abs=1e-3)
    assert stats["thresholds"] == protocol.PROTOCOL_DEFAULTS


def test_protocol_masks_counts_match_frames():
    clicks = build_splits(random_clicks(4))["train_full"]  # sorted input
    arrays = events.event_arrays(clicks)
    masks, counts, _ = protocol.protocol_masks(*arrays, min_item_support=2)
    splits = build_splits(clicks, min_item_support=2)
    for name, frame in splits.items():
        assert counts[name] == protocol.event_counts(frame)
        assert int(masks[name].sum()) == len(frame)


def test_write_splits_sorted_typed_parquet(tmp_path):
    splits = build_splits(random_clicks(6))
    splits["test"] = splits["test"].iloc[::-1]  # unsorted input is sorted on write
    paths = {name: tmp_path / f"{name}.parquet" for name in splits}
    events.write_splits(splits, paths)
    for name, path in paths.items():
        table = pq.read_table(path)
        assert str(table.schema) == str(events.EVENT_SCHEMA)
        expected = splits[name].sort_values(["SessionId", "Time"], kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(table.to_pandas(), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_write_splits_leaves_nothing_when_one_split_fails(tmp_path):
    splits = build_splits(random_clicks(6))
    splits["valid"] = pd.DataFrame({"SessionId": [1]})  # broken
    paths = {name: tmp_path / f"{name}.parquet" for name in splits}
    with pytest.raises(DataFormatError, match="valid"):
        events.write_splits(splits, paths)
    assert list(tmp_path.iterdir()) == []


def test_split_cli_writes_splits_and_stats(tmp_path):
    clicks = random_clicks(2)
    clicks["Category"] = "0"
    clicks.to_parquet(tmp_path / "clicks.parquet")
    out = tmp_path / "splits"
    code = cli.main(
        [
            "split",
            "--clicks",
            str(tmp_path / "clicks.parquet"),
            "--out-dir",
            str(out),
            "--stats",
            str(tmp_path / "stats.json"),
            "--min-item-support",
            "3",
        ]
    )
    assert code == 0
    expected = plain_protocol(rows_of(clicks), min_item_support=3)
    for name, rows in expected.items():
        assert rows_of(pd.read_parquet(out / f"{name}.parquet")) == rows
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["splits"]["test"]["events"] == len(expected["test"])
    assert stats["thresholds"]["min_item_support"] == 3
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.parquet" for n in expected)


def test_split_cli_reports_missing_column(tmp_path, capsys):
    pd.DataFrame({"SessionId": [1], "ItemId": [1]}).to_parquet(tmp_path / "clicks.parquet")
    code = cli.main(
        [
            "split",
            "--clicks",
            str(tmp_path / "clicks.parquet"),
            "--out-dir",
            str(tmp_path / "o"),
            "--stats",
            str(tmp_path / "s.json"),
        ]
    )
    assert code == 2
    assert "clicks.parquet: missing columns ['Time']" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_events_from_arrow_table_and_parquet(tmp_path):
    import pyarrow as pa

    clicks = random_clicks(1)
    clicks["Category"] = "S"
    table = pa.Table.from_pandas(clicks, preserve_index=False)
    table = pa.concat_tables([table.slice(0, 10), table.slice(10)])  # several chunks, as read_clicks gives
    frame = events.events_from_table(table)
    assert list(frame.columns) == ["SessionId", "ItemId", "Time"]
    assert rows_of(frame) == rows_of(clicks)
    assert rows_of(build_splits(table)["test"]) == rows_of(build_splits(clicks)["test"])
    clicks.to_parquet(tmp_path / "clicks.parquet")
    assert rows_of(events.read_events(tmp_path / "clicks.parquet")) == rows_of(clicks)
    with pytest.raises(DataFormatError, match="not a parquet file"):
        (tmp_path / "bad.parquet").write_text("SessionId,ItemId\n")
        events.read_events(tmp_path / "bad.parquet")


def test_sortedness_check_sees_across_blocks(monkeypatch):
    monkeypatch.setattr(events, "CHUNK_ROWS", 3)
    sessions = np.array([1, 1, 1, 2, 2, 2, 3], dtype=np.int64)
    times = np.arange(7, dtype=np.float64)
    assert events.is_sorted_by_session_time(sessions, times)
    for k in range(1, 7):  # every adjacent pair, inside a block or across two
        swapped_times = times.copy()
        swapped_times[[k - 1, k]] = swapped_times[[k, k - 1]]
        swapped_sessions = sessions.copy()
        swapped_sessions[[k - 1, k]] = swapped_sessions[[k, k - 1]]
        unsorted = (swapped_sessions, times) if sessions[k - 1] != sessions[k] else (sessions, swapped_times)
        assert not events.is_sorted_by_session_time(*unsorted), k


def test_split_clicks_failing_midway_leaves_no_files(monkeypatch, tmp_path):
    clicks = random_clicks(3)
    monkeypatch.setattr(events, "ROW_GROUP_ROWS", 40)
    original = pq.ParquetWriter.write_table
    calls = []

    def fail_on_fifth_write(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", fail_on_fifth_write)
    paths = {name: tmp_path / f"{name}.parquet" for name in SPLITS}
    with pytest.raises(OSError, match="disk full"):
        protocol.split_clicks(clicks, paths, stats_path=tmp_path / "stats.json")
    assert list(tmp_path.iterdir()) == []
