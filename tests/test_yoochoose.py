"""The yoochoose preset against an independent plain-pandas statement of the same protocol."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from gru4rec_pipeline.data.clicks import clicks_to_parquet
from gru4rec_pipeline.data.events import read_events
from gru4rec_pipeline.data.extract import extract_members
from gru4rec_pipeline.data.presets import run_preset_split
from gru4rec_pipeline.data.yoochoose import extract_test_clicks
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.names import SPLITS
from gru4rec_pipeline.synthetic.archive import write_synthetic_archive

DAY = 86400


def pandas_protocol(clicks_dat, test_dat) -> dict[str, pd.DataFrame]:
    """yoochoose_preproc.py's steps, row by row in pandas, read straight from the raw files."""
    frames = [
        pd.read_csv(path, header=None, usecols=[0, 1, 2], names=["SessionId", "Time", "ItemId"])
        for path in (clicks_dat, test_dat)
    ]
    data = pd.concat(frames, ignore_index=True)
    data["Time"] = (pd.to_datetime(data["Time"], utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    data = data.sort_values(["SessionId", "Time", "ItemId"], kind="stable").reset_index(drop=True)
    same_as_previous = (data.SessionId.shift() == data.SessionId) & (data.ItemId.shift() == data.ItemId)
    data = data[~same_as_previous]
    previous = -1
    while len(data) != previous:
        previous = len(data)
        length = data.groupby("SessionId").size()
        data = data[data.SessionId.isin(length[length > 1].index)]
        support = data.groupby("ItemId").size()
        data = data[data.ItemId.isin(support[support >= 5].index)]
    start = data.groupby("SessionId").Time.min()
    tmax = data.Time.max()
    test = data[data.SessionId.isin(start[start >= tmax - DAY].index)]
    train = data[data.Time < tmax - DAY]
    length = train.groupby("SessionId").size()
    train = train[train.SessionId.isin(length[length > 1].index)]
    train_tr = train[train.Time < tmax - 2 * DAY]
    length = train_tr.groupby("SessionId").size()
    train_tr = train_tr[train_tr.SessionId.isin(length[length > 1].index)]
    valid = train[train.SessionId.isin(start[start >= tmax - 2 * DAY].index)]
    return {"train_full": train, "test": test, "train_tr": train_tr, "valid": valid}


@pytest.fixture(scope="module", params=["tiny", "default"])
def archive_files(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"yoochoose-{request.param}")
    write_synthetic_archive(folder / "yoochoose-data.7z", folder / "process.npz", preset=request.param)
    raw = extract_members(folder / "yoochoose-data.7z", folder, ["yoochoose-clicks.dat", "yoochoose-test.dat"])
    clicks_to_parquet(raw["yoochoose-clicks.dat"], folder / "clicks.parquet")
    extract_test_clicks(folder / "yoochoose-data.7z", folder / "test_clicks.parquet")
    return folder, raw


def test_splits_are_row_identical_to_the_pandas_statement(archive_files, tmp_path):
    folder, raw = archive_files
    paths = {name: tmp_path / f"{name}.parquet" for name in SPLITS}
    stats = run_preset_split(
        folder / "clicks.parquet",
        paths,
        tmp_path / "stats.json",
        preset="yoochoose",
        test_clicks_path=folder / "test_clicks.parquet",
    )
    expected = pandas_protocol(raw["yoochoose-clicks.dat"], raw["yoochoose-test.dat"])
    for name in SPLITS:
        got = read_events(paths[name])
        want = expected[name].reset_index(drop=True)
        assert len(got) > 0, name
        for column in ("SessionId", "ItemId"):
            np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy(), err_msg=name)
        np.testing.assert_array_equal(got["Time"].to_numpy(), want["Time"].to_numpy().astype(np.float64))
        assert stats["splits"][name]["events"] == len(want)
    written = json.loads((tmp_path / "stats.json").read_text())
    assert written["preset"] == "yoochoose"
    assert any("collapsed" in step["step"] and step["removed_events"] > 0 for step in written["steps"])


def test_the_test_file_adds_sessions_and_its_absence_is_warned_about(archive_files, tmp_path, caplog):
    folder, _ = archive_files
    with_file = run_preset_split(
        folder / "clicks.parquet",
        {name: tmp_path / "a" / f"{name}.parquet" for name in SPLITS},
        tmp_path / "a" / "stats.json",
        preset="yoochoose",
        test_clicks_path=folder / "test_clicks.parquet",
    )
    with caplog.at_level(logging.WARNING):
        without = run_preset_split(
            folder / "clicks.parquet",
            {name: tmp_path / "b" / f"{name}.parquet" for name in SPLITS},
            tmp_path / "b" / "stats.json",
            preset="yoochoose",
            test_clicks_path=None,
        )
    assert "yoochoose-test.dat" in caplog.text and "0 sessions added" in caplog.text
    assert with_file["splits"]["raw"]["sessions"] > without["splits"]["raw"]["sessions"]


def test_an_archive_without_the_test_file_gives_an_empty_one_and_a_warning(tmp_path, caplog):
    import py7zr

    (tmp_path / "yoochoose-clicks.dat").write_text("1,2014-04-01T10:00:00.000Z,5,0\n")
    with py7zr.SevenZipFile(tmp_path / "a.7z", "w") as archive:
        archive.write(tmp_path / "yoochoose-clicks.dat", "yoochoose-clicks.dat")
    with caplog.at_level(logging.WARNING):
        assert extract_test_clicks(tmp_path / "a.7z", tmp_path / "test_clicks.parquet") == 0
    assert "yoochoose-test.dat" in caplog.text and str(tmp_path / "a.7z") in caplog.text
    assert len(read_events(tmp_path / "test_clicks.parquet")) == 0


def archive_with_test_file(tmp_path, test_bytes: bytes, name="a.7z"):
    import py7zr

    (tmp_path / "yoochoose-clicks.dat").write_text("1,2014-04-01T10:00:00.000Z,5,0\n")
    (tmp_path / "yoochoose-test.dat").write_bytes(test_bytes)
    with py7zr.SevenZipFile(tmp_path / name, "w") as archive:
        for member in ("yoochoose-clicks.dat", "yoochoose-test.dat"):
            archive.write(tmp_path / member, member)
    return tmp_path / name


def test_a_malformed_test_file_is_named_as_the_archives_member_without_its_binary_bytes(tmp_path):
    good = b"5,2014-04-01T10:00:00.000Z,7,0\n"
    archive = archive_with_test_file(tmp_path, good + bytes(range(256)) + b"\n" + good)
    with pytest.raises(DataFormatError) as refused:
        extract_test_clicks(archive, tmp_path / "out" / "test_clicks.parquet")
    message = str(refused.value)
    assert message.startswith(f"yoochoose-test.dat in {archive}, line 2: not a line of text: byte 0x00 at byte 1")
    assert ".test-clicks-" not in message and message.isprintable(), message
    assert not (tmp_path / "out" / "test_clicks.parquet").exists()


def test_a_test_file_past_the_year_2255_is_read(tmp_path):
    """Past 2**53 microseconds a time no longer fits a double exactly: it is rounded, not refused by pyarrow."""
    archive = archive_with_test_file(tmp_path, b"5,2300-04-01T10:00:00.000Z,7,0\n")
    assert extract_test_clicks(archive, tmp_path / "test_clicks.parquet") == 1
    assert read_events(tmp_path / "test_clicks.parquet")["Time"].iloc[0] == pytest.approx(10421604000.0)


def test_the_test_file_is_refused_when_its_session_ids_or_its_period_are_not_the_clicks(archive_files, tmp_path):
    """The protocol joins the two files by session id; in RSC15 their ids are disjoint and their periods the same."""
    folder, _ = archive_files
    test = read_events(folder / "test_clicks.parquet")
    clicks = read_events(folder / "clicks.parquet")
    shared = test.assign(SessionId=test["SessionId"].where(test.index > 2, clicks["SessionId"].iloc[0]))
    shared.to_parquet(tmp_path / "shared.parquet")
    later = test.assign(Time=test["Time"] + 186 * 365.25 * DAY)
    later.to_parquet(tmp_path / "later.parquet")
    paths = {name: tmp_path / "out" / f"{name}.parquet" for name in SPLITS}
    for test_file, problem in [
        ("shared.parquet", f"session ids of {folder / 'clicks.parquet'} too (e.g. {clicks['SessionId'].iloc[0]})"),
        ("later.parquet", "outside the period of"),
    ]:
        with pytest.raises(DataFormatError) as refused:
            run_preset_split(
                folder / "clicks.parquet", paths, tmp_path / "out" / "stats.json", preset="yoochoose",
                test_clicks_path=tmp_path / test_file,
            )  # fmt: skip
        message = str(refused.value)
        assert message.startswith(f"{tmp_path / test_file} (yoochoose-test.dat's clicks): ") and problem in message
        assert not (tmp_path / "out").exists()


def test_unknown_preset_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="protocol.preset"):
        run_preset_split(tmp_path / "c.parquet", {}, tmp_path / "s.json", preset="session-rec")


def test_the_rsc15_preset_writes_what_the_rsc15_protocol_writes(archive_files, tmp_path):
    from gru4rec_pipeline.data.protocol import run_split

    folder, _ = archive_files
    preset_paths = {name: tmp_path / "preset" / f"{name}.parquet" for name in SPLITS}
    plain_paths = {name: tmp_path / "plain" / f"{name}.parquet" for name in SPLITS}
    run_preset_split(folder / "clicks.parquet", preset_paths, tmp_path / "preset" / "stats.json", preset="rsc15")
    run_split(folder / "clicks.parquet", plain_paths, tmp_path / "plain" / "stats.json")
    for name in SPLITS:
        assert preset_paths[name].read_bytes() == plain_paths[name].read_bytes()
    assert (tmp_path / "preset" / "stats.json").read_bytes() == (tmp_path / "plain" / "stats.json").read_bytes()


@pytest.mark.parametrize("presorted", [False, True])
def test_the_sort_orders_rows_as_a_three_key_lexsort(presorted):
    from gru4rec_pipeline.data.yoochoose import session_time_item_order

    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(0, 50))
        sessions, items = rng.integers(0, 6, n) * 1000, rng.integers(0, 5, n)
        seconds = np.floor(rng.integers(0, 4, n) + rng.random(n)) - 2.0
        if presorted:
            by_time = np.lexsort((seconds, sessions))
            sessions, seconds, items = sessions[by_time], seconds[by_time], items[by_time]
        order = session_time_item_order(sessions, seconds, items)
        order = np.arange(n) if order is None else order
        expected = np.lexsort((items, seconds, sessions))
        for column in (sessions, seconds, items):
            np.testing.assert_array_equal(column[order], column[expected])
