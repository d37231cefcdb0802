"""session-rec's sliding windows on the tiny synthetic data: date ranges, parts of a slice, bad settings."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gru4rec_pipeline.data.clicks import clicks_to_parquet
from gru4rec_pipeline.data.events import read_events
from gru4rec_pipeline.data.extract import extract_members
from gru4rec_pipeline.data.window import split_window
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.synthetic.archive import write_synthetic_archive

WINDOW = {"slices": 3, "days_train": 6, "days_test": 1, "days_shift": 7, "days_offset": 2}


@pytest.fixture(scope="module")
def tiny_clicks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("window")
    write_synthetic_archive(folder / "yoochoose-data.7z", folder / "process.npz", preset="tiny")
    raw = extract_members(folder / "yoochoose-data.7z", folder, ["yoochoose-clicks.dat"])
    clicks_to_parquet(raw["yoochoose-clicks.dat"], folder / "clicks.parquet")
    return folder / "clicks.parquet"


def test_slices_cover_the_configured_days_and_no_session_is_in_two_parts(tiny_clicks, tmp_path):
    stats = split_window(tiny_clicks, tmp_path / "window", tmp_path / "stats.json", window=WINDOW)
    clicks = read_events(tiny_clicks)
    first = clicks.Time.min()  # the filters keep the first click of the tiny data's first multi-click session or later
    assert len(stats["slices"]) == 3
    first_kept = pd.Timestamp(stats["slices"][0]["start"]).timestamp() - WINDOW["days_offset"] * 86400
    assert first_kept >= first
    for i, entry in enumerate(stats["slices"]):
        start, middle, end = (pd.Timestamp(entry[key]).timestamp() for key in ("start", "middle", "end"))
        assert start == pytest.approx(first_kept + (WINDOW["days_offset"] + i * WINDOW["days_shift"]) * 86400)
        assert middle - start == WINDOW["days_train"] * 86400 and end - middle == WINDOW["days_test"] * 86400
        train = read_events(tmp_path / "window" / str(i) / "train_full.parquet")
        test = read_events(tmp_path / "window" / str(i) / "test.parquet")
        assert len(train) and len(test) and entry["test"]["events"] == len(test)
        assert not set(train.SessionId) & set(test.SessionId)
        train_last = train.groupby("SessionId").Time.max()
        assert train_last.min() >= start and train_last.max() < middle
        test_last = clicks[clicks.SessionId.isin(test.SessionId)].groupby("SessionId").Time.max()
        assert test_last.min() >= middle and test_last.max() <= end
        assert set(test.ItemId) <= set(train.ItemId)
        assert test.groupby("SessionId").size().min() >= 2
    assert json.loads((tmp_path / "stats.json").read_text())["preset"] == "window"


@pytest.mark.parametrize(
    "window, key, slice_name",
    [
        ({**WINDOW, "days_train": 60}, "protocol.window.days_train", "slice 0"),
        # Slice 3 would test past the last click: its test day ends after it.
        ({**WINDOW, "slices": 6}, "protocol.window.days_test", "slice 3"),
        ({**WINDOW, "slices": 5, "days_shift": 8}, "protocol.window.days_train", "slice 3"),
        ({**WINDOW, "days_test": 0}, "protocol.window.days_test", ""),
        ({**WINDOW, "days": 3}, "protocol.window", ""),
    ],
)
def test_bad_windows_name_the_key_and_the_slice(tiny_clicks, tmp_path, window, key, slice_name):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as error:
        split_window(tiny_clicks, tmp_path / "w", tmp_path / "stats.json", window=window)
    assert slice_name in str(error.value)
    assert not (tmp_path / "stats.json").exists()


def test_a_slice_without_test_sessions_is_refused(tmp_path):
    # items 1, 2 in the first days, items 3, 4 only after day 20: the test part's clicks are all of unknown items
    rows = [(s, item, (s - 1) * 86400.0 + k) for s in range(1, 7) for k, item in enumerate((1, 2))]
    rows += [(s, item, (20 + s) * 86400.0 + k) for s in range(7, 12) for k, item in enumerate((3, 4))]
    clicks = pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])
    clicks.to_parquet(tmp_path / "clicks.parquet", index=False)
    window = {"slices": 1, "days_train": 10, "days_test": 21, "days_shift": 1, "days_offset": 0}
    with pytest.raises(ConfigError, match=r"slice 0 .* no test sessions"):
        split_window(tmp_path / "clicks.parquet", tmp_path / "w", tmp_path / "stats.json", window=window)
    assert not (tmp_path / "stats.json").exists()
