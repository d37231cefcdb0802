"""The synthetic yoochoose archive: determinism, formats, RSC15-like statistics, the CLI."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import py7zr
import pytest

from gru4rec_pipeline import cli
from gru4rec_pipeline.data.protocol import RSC15_PUBLISHED_STATS
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.synthetic import archive as synthetic
from gru4rec_pipeline.synthetic.archive import MEMBER_NAMES, PRESETS, write_synthetic_archive

TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
CATEGORY = r"0|S|[1-9]|1[0-2]|\d{8,10}"
SMALL = {"n_sessions": 1500}  # a smaller tiny for tests that only need some data


def read_members(archive_path) -> dict[str, str]:
    with py7zr.SevenZipFile(archive_path) as archive:
        names = archive.getnames()
        archive.extractall(path=archive_path.parent / "extracted")
    return {name: (archive_path.parent / "extracted" / name).read_text() for name in names}


def read_clicks(text: str) -> pd.DataFrame:
    return pd.read_csv(
        io.StringIO(text), header=None, names=["SessionId", "Timestamp", "ItemId", "Category"], dtype={"Category": str}
    )


def to_epoch_seconds(timestamps: pd.Series) -> np.ndarray:
    parsed = pd.to_datetime(timestamps, format="%Y-%m-%dT%H:%M:%S.%fZ").astype("datetime64[ms]")
    return parsed.astype("int64").to_numpy() / 1000.0


def rsc15_protocol(clicks: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The GRU4Rec preprocessing of RSC15, in plain pandas, to check the calibration."""
    data = clicks.assign(Time=to_epoch_seconds(clicks["Timestamp"]))[["SessionId", "ItemId", "Time"]]
    lengths = data.groupby("SessionId").size()
    data = data[data["SessionId"].isin(lengths.index[lengths > 1])]
    support = data.groupby("ItemId").size()
    data = data[data["ItemId"].isin(support.index[support >= 5])]
    lengths = data.groupby("SessionId").size()
    data = data[data["SessionId"].isin(lengths.index[lengths >= 2])]
    session_end = data.groupby("SessionId")["Time"].max()
    split_time = data["Time"].max() - 86400
    train = data[data["SessionId"].isin(session_end.index[session_end < split_time])]
    test = data[data["SessionId"].isin(session_end.index[session_end >= split_time])]
    test = test[test["ItemId"].isin(train["ItemId"])]
    lengths = test.groupby("SessionId").size()
    return train, test[test["SessionId"].isin(lengths.index[lengths >= 2])]


@pytest.fixture(scope="module")
def tiny_archive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    summary = write_synthetic_archive(folder / "yoochoose-data.7z", folder / "process.npz", preset="tiny", seed=42)
    return folder / "yoochoose-data.7z", summary, read_members(folder / "yoochoose-data.7z")


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path, monkeypatch):
    paths = {}
    real_time = time.time
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        paths[name] = (tmp_path / f"{name}.7z", tmp_path / f"{name}.npz")
        write_synthetic_archive(*paths[name], preset="tiny", seed=seed, **SMALL)
        # Later runs happen on another day: no member may carry the time it was written.
        monkeypatch.setattr(time, "time", lambda: real_time() + 400 * 86400.0)
    for index in (0, 1):
        assert paths["a"][index].read_bytes() == paths["b"][index].read_bytes()
        assert paths["a"][index].read_bytes() != paths["c"][index].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.7z", "a.npz", "b.7z", "b.npz", "c.7z", "c.npz"]


def test_archive_has_the_four_members_in_rsc15_formats(tiny_archive):
    _, summary, members = tiny_archive
    assert sorted(members) == sorted(MEMBER_NAMES)
    clicks = read_clicks(members["yoochoose-clicks.dat"])
    assert len(clicks) == summary["clicks"] and clicks["SessionId"].nunique() == summary["sessions"]
    assert clicks["Timestamp"].str.fullmatch(TIMESTAMP).all()
    assert clicks["Category"].str.fullmatch(CATEGORY).all()
    assert {"0", "S"} <= set(clicks["Category"]) and clicks["Category"].str.len().max() >= 8
    assert clicks["ItemId"].between(100_000_000, 999_999_999).all()
    assert not members["yoochoose-clicks.dat"].startswith("SessionID")  # no header

    buys = pd.read_csv(io.StringIO(members["yoochoose-buys.dat"]), header=None)
    assert buys.shape == (summary["buys"], 5)
    assert buys[1].str.fullmatch(TIMESTAMP).all()
    assert all(pd.api.types.is_integer_dtype(buys[column]) for column in (0, 2, 3, 4))
    assert buys[0].isin(clicks["SessionId"]).all()

    test_file = read_clicks(members["yoochoose-test.dat"])
    assert len(test_file) == summary["test_file_clicks"] and test_file["Timestamp"].str.fullmatch(TIMESTAMP).all()
    assert not set(test_file["SessionId"]) & set(clicks["SessionId"])
    assert "SYNTHETIC" in members["dataset-README.txt"]


def test_session_ids_increase_with_time_within_the_period(tiny_archive):
    _, _, members = tiny_archive
    clicks = read_clicks(members["yoochoose-clicks.dat"])
    times = to_epoch_seconds(clicks["Timestamp"])
    assert np.all(np.diff(clicks["SessionId"].to_numpy()) >= 0)
    session_start = pd.Series(times).groupby(clicks["SessionId"].to_numpy()).min()
    assert session_start.is_monotonic_increasing
    start = pd.Timestamp("2014-04-01", tz="UTC").timestamp()
    assert times.min() >= start and times.max() < start + (PRESETS["tiny"].n_days + 1) * 86400


def test_tiny_statistics_are_rsc15_like(tiny_archive):
    _, summary, members = tiny_archive
    clicks = read_clicks(members["yoochoose-clicks.dat"])
    assert 15_000 < summary["clicks"] < 30_000 and 200 < summary["items"] <= PRESETS["tiny"].n_items
    lengths = clicks.groupby("SessionId").size()
    assert 0.08 < (lengths == 1).mean() < 0.2
    same_session = clicks["SessionId"].to_numpy()[1:] == clicks["SessionId"].to_numpy()[:-1]
    repeats = (clicks["ItemId"].to_numpy()[1:] == clicks["ItemId"].to_numpy()[:-1]) & same_session
    assert 0.1 < repeats.sum() / same_session.sum() < 0.45
    item_clicks = clicks.groupby("ItemId").size().sort_values(ascending=False)
    assert item_clicks.iloc[: len(item_clicks) // 10].sum() > 0.4 * len(clicks)  # heavy head

    train, test = rsc15_protocol(clicks)
    kept_sessions = (train["SessionId"].nunique() + test["SessionId"].nunique()) / clicks["SessionId"].nunique()
    kept_items = pd.concat([train["ItemId"], test["ItemId"]]).nunique() / clicks["ItemId"].nunique()
    assert 0.8 < kept_sessions < 0.92
    assert 0.55 < kept_items < 0.95
    assert 3.5 < len(train) / train["SessionId"].nunique() < 4.5
    assert test["SessionId"].nunique() > 20


def test_some_items_first_appear_on_the_last_day(tiny_archive):
    _, _, members = tiny_archive
    clicks = read_clicks(members["yoochoose-clicks.dat"])
    times = to_epoch_seconds(clicks["Timestamp"])
    last_day = times >= times.max() - 86400
    unseen = set(clicks["ItemId"][last_day]) - set(clicks["ItemId"][~last_day])
    assert len(unseen) >= 1


def test_rsc15_reference_numbers():
    assert RSC15_PUBLISHED_STATS["raw"] == {"events": 33_003_944, "sessions": 9_249_729, "items": 52_739}
    published = RSC15_PUBLISHED_STATS
    assert published["train_full"]["events"] == 31_637_239 and published["test"]["sessions"] == 15_324


def test_bad_preset_and_override_names_raise_config_error(tmp_path):
    with pytest.raises(ConfigError) as error:
        write_synthetic_archive(tmp_path / "a.7z", tmp_path / "a.npz", preset="huge")
    assert error.value.key == "preset"
    with pytest.raises(ConfigError) as error:
        write_synthetic_archive(tmp_path / "a.7z", tmp_path / "a.npz", preset="tiny", n_itemz=5)
    assert error.value.key == "n_itemz"
    with pytest.raises(ConfigError) as error:
        write_synthetic_archive(tmp_path / "a.7z", tmp_path / "a.npz", preset="tiny", repeat_prob=1.5)
    assert error.value.key == "repeat_prob"
    assert list(tmp_path.iterdir()) == []


def test_failed_compression_leaves_no_output(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(synthetic, "write_archive", fail)
    with pytest.raises(OSError):
        write_synthetic_archive(tmp_path / "a.7z", tmp_path / "a.npz", preset="tiny", **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_archive_and_process(tmp_path, capsys):
    archive, process = tmp_path / "data.7z", tmp_path / "process.npz"
    code = cli.main(
        [
            "synthesize",
            "--preset",
            "tiny",
            "--seed",
            "1",
            "--archive",
            str(archive),
            "--process",
            str(process),
            "--set",
            "n_sessions=800",
        ]
    )
    assert code == 0 and archive.exists() and process.exists()
    assert "clicks=" in capsys.readouterr().out
    assert cli.main(["synthesize", "--archive", str(archive), "--process", str(process), "--set", "bogus=1"]) == 2
