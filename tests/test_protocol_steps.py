"""The split stage refuses to write empty splits, says what each protocol step removed, and handles
exact duplicate clicks."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from gru4rec_pipeline import cli
from gru4rec_pipeline.data import events, protocol
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.names import SPLITS
from test_protocol import DAY, build_splits, frame_of, plain_protocol, random_clicks, rows_of


def split_paths(folder):
    return {name: folder / f"{name}.parquet" for name in SPLITS}


def test_a_protocol_that_filters_out_every_session_stops_and_writes_nothing(tmp_path):
    clicks_path = tmp_path / "clicks.parquet"
    random_clicks(3).to_parquet(clicks_path)
    out = tmp_path / "out"
    with pytest.raises(DataFormatError) as error:
        protocol.run_split(clicks_path, split_paths(out), out / "stats.json", min_session_length=1000)
    message = str(error.value)
    assert message.startswith(f"{clicks_path}: ")
    assert "train_full, test, train_tr, valid" in message
    for setting in ("min_session_length=1000", "min_item_support=5", "split_seconds=86400"):
        assert f"protocol.{setting}" in message
    assert "sessions shorter than min_session_length=1000" in message
    assert list(out.iterdir()) == []


def test_the_message_counts_what_each_step_removed(tmp_path):
    # One event per session: the first session-length filter removes everything.
    rows = [(session, 1 + session % 3, 1000.0 * session) for session in range(1, 41)]
    with pytest.raises(DataFormatError) as error:
        protocol.split_clicks(frame_of(rows), split_paths(tmp_path), source="own.csv")
    lines = str(error.value).splitlines()
    assert lines[0].startswith("own.csv: ")
    steps = {line.split(":")[0].strip(): line for line in lines[1:]}
    assert "40 events in 40 sessions" in steps["input clicks"]
    first = steps["sessions shorter than min_session_length=2"]
    assert "removed 40 events and 40 sessions; 0 events in 0 sessions left" in first
    for step in (
        "items with fewer than min_item_support=5 events",
        "sessions shorter than min_session_length=2 after the item filter",
        "test events whose item is not in train_full",
        "test sessions shorter than min_session_length=2",
    ):
        assert step in steps, (step, lines)
    assert len(lines) < 20, lines
    assert list(tmp_path.iterdir()) == []


def test_an_empty_test_split_alone_is_refused(tmp_path):
    # Every session ends far before the last click, which is a session of one item nobody else clicks.
    rows = [(s, 1 + k % 4, s * DAY / 2 + k) for s in range(1, 30) for k in range(4)]
    rows += [(99, 77, 30 * DAY + k) for k in range(6)]
    expected = plain_protocol(rows)
    assert expected["train_full"] and expected["valid"] and not expected["test"]
    with pytest.raises(DataFormatError, match=r"leaves test empty"):
        protocol.split_clicks(frame_of(rows), split_paths(tmp_path), stats_path=tmp_path / "stats.json")
    assert list(tmp_path.iterdir()) == []


def test_stats_record_each_steps_counts(tmp_path):
    clicks = random_clicks(4)
    expected = plain_protocol(rows_of(clicks))
    stats = protocol.split_clicks(clicks, split_paths(tmp_path), stats_path=tmp_path / "stats.json")
    assert json.loads((tmp_path / "stats.json").read_text()) == stats
    steps = stats["steps"]
    assert steps[0]["step"] == "input clicks" and steps[0]["events"] == len(clicks)
    by_name = {step["step"]: step for step in steps}
    assert by_name["test sessions shorter than min_session_length=2"]["events"] == len(expected["test"])
    assert by_name["valid sessions shorter than min_session_length=2"]["events"] == len(expected["valid"])
    for step in steps:
        if "removed_events" in step:
            assert step["removed_events"] >= 0 and step["removed_sessions"] >= 0
    first, item, second = steps[1:4]
    assert first["events"] == steps[0]["events"] - first["removed_events"]
    assert item["events"] == first["events"] - item["removed_events"] and item["removed_items"] >= 0
    assert second["events"] == stats["splits"]["train_full"]["events"] + stats["splits"]["test"]["events"] + sum(
        by_name[name]["removed_events"]
        for name in ("test events whose item is not in train_full", "test sessions shorter than min_session_length=2")
    )


def test_split_command_reports_the_empty_split(tmp_path, capsys):
    random_clicks(2).to_parquet(tmp_path / "clicks.parquet")
    argv = ["split", "--clicks", str(tmp_path / "clicks.parquet"), "--out-dir", str(tmp_path / "o")]
    code = cli.main([*argv, "--stats", str(tmp_path / "s.json"), "--min-item-support", "100000"])
    assert code == 2
    error = capsys.readouterr().err
    assert "protocol.min_item_support=100000" in error and "items with fewer than" in error
    assert not (tmp_path / "s.json").exists()


# ----------------------------------------------------------------------------------------------
# Exact duplicate clicks (same SessionId, ItemId and Time).


def test_duplicate_rows_marks_every_repeat_but_the_first_in_any_order():
    rows = [(1, 5, 10.0), (1, 6, 10.0), (1, 5, 10.0), (2, 5, 10.0), (1, 5, 11.0), (1, 5, 10.0), (3, 7, 1.0)]
    for given in (rows, rows[::-1]):
        frame = frame_of(given)
        marked = events.duplicate_rows(*events.event_arrays(frame))
        seen, expected = set(), []
        for row in given:
            expected.append(row in seen)
            seen.add(row)
        assert marked.tolist() == expected


def unique_rows(rows):
    return list(dict.fromkeys(rows))


def with_duplicates(clicks, every=7):
    """``clicks`` with every ``every``-th row repeated at the end, and how many rows repeat an earlier one."""
    repeats = clicks.iloc[::every]
    doubled = pd.concat([clicks, repeats.iloc[::-1]], ignore_index=True)
    rows = rows_of(doubled)
    return doubled, len(rows) - len(unique_rows(rows))


def test_duplicates_are_counted_and_warned_about_and_kept_by_default(tmp_path, caplog):
    clicks, n_repeats = with_duplicates(random_clicks(5))
    with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline"):
        stats = protocol.split_clicks(clicks, split_paths(tmp_path), source="log.csv")
    assert stats["splits"]["raw"]["duplicate_events"] == n_repeats
    assert stats["splits"]["raw"]["events"] == len(clicks)
    assert f"log.csv: {n_repeats} exact duplicate clicks" in caplog.text
    assert "protocol.drop_duplicates" in caplog.text
    expected = plain_protocol(rows_of(clicks))  # the published protocol keeps repeats
    assert rows_of(pd.read_parquet(tmp_path / "test.parquet")) == expected["test"]


def test_drop_duplicates_drops_them_before_the_filters(tmp_path):
    clicks, n_repeats = with_duplicates(random_clicks(6))
    stats = protocol.split_clicks(clicks, split_paths(tmp_path), drop_duplicates=True)
    expected = plain_protocol(unique_rows(rows_of(clicks)))
    for name in SPLITS:
        assert rows_of(pd.read_parquet(tmp_path / f"{name}.parquet")) == expected[name], name
    step = stats["steps"][1]
    assert step["step"].startswith("exact duplicate clicks") and step["removed_events"] == n_repeats
    assert stats["thresholds"]["drop_duplicates"] is True
    assert build_splits(clicks, drop_duplicates=True)["test"].pipe(rows_of) == expected["test"]


def test_no_duplicates_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline"):
        stats = protocol.split_clicks(frame_of(unique_rows(rows_of(random_clicks(5)))), split_paths(tmp_path))
    assert stats["splits"]["raw"]["duplicate_events"] == 0
    assert "duplicate" not in caplog.text


def test_split_command_drops_duplicates_on_request(tmp_path):
    clicks, n_repeats = with_duplicates(random_clicks(2))
    clicks.to_parquet(tmp_path / "clicks.parquet")
    argv = ["split", "--clicks", str(tmp_path / "clicks.parquet"), "--out-dir", str(tmp_path / "o")]
    assert cli.main([*argv, "--stats", str(tmp_path / "s.json"), "--drop-duplicates"]) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["thresholds"]["drop_duplicates"] is True
    assert stats["steps"][1]["removed_events"] == n_repeats
