"""The test window: one outlier timestamp must not silently become the whole test split."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from gru4rec_pipeline.data import protocol
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.names import SPLITS

DAY = 86400.0
YEAR_3000 = 32503680000.0  # 3000-01-01T00:00:00Z


def daily_clicks(days=20, sessions_per_day=30, seed=0) -> pd.DataFrame:
    """Sessions of three clicks on ten popular items, ``sessions_per_day`` a day for ``days`` days."""
    rng = np.random.default_rng(seed)
    rows = []
    for day in range(days):
        for s in range(sessions_per_day):
            session = day * 1000 + s
            start = 1.4e9 + day * DAY + s * 60.0
            rows += [(session, int(rng.integers(10)), start + 10.0 * k) for k in range(3)]
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"])


def with_outlier(clicks: pd.DataFrame) -> pd.DataFrame:
    outlier = pd.DataFrame({"SessionId": [99999] * 3, "ItemId": [1, 2, 3], "Time": [YEAR_3000 + k for k in range(3)]})
    return pd.concat([clicks, outlier], ignore_index=True)


def paths(tmp_path):
    return {name: tmp_path / f"{name}.parquet" for name in SPLITS}


def test_an_outlier_session_warns_naming_it_and_its_time(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        stats = protocol.split_clicks(with_outlier(daily_clicks()), paths(tmp_path), source="clicks.parquet")
    assert stats["splits"]["test"]["sessions"] == 1
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "clicks.parquet" in warning and "session 99999 at 3000-01-01T00:00:02Z" in warning
    assert "holds 1 sessions, fewer than 0.1 x the 30 of a typical window" in warning


def test_a_test_split_under_the_minimum_is_refused_naming_the_cause(tmp_path):
    with pytest.raises(DataFormatError) as refused:
        protocol.split_clicks(
            with_outlier(daily_clicks()), paths(tmp_path), source="clicks.parquet", min_test_predictions=10
        )
    message = str(refused.value)
    assert message.startswith("clicks.parquet: the test split gives 2 next-item predictions, fewer than")
    assert "limits.min_test_predictions=10" in message and "session 99999 at 3000-01-01" in message
    assert not any(path.exists() for path in paths(tmp_path).values())


def test_ordinary_days_pass_without_a_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        stats = protocol.split_clicks(daily_clicks(), paths(tmp_path), min_test_predictions=10)
    assert stats["splits"]["test"]["sessions"] >= 30
    assert not [r for r in caplog.records if "test window" in r.getMessage()]


def rolling_paths(tmp_path, days):
    return (
        [tmp_path / f"before_{d}.parquet" for d in range(1, days + 1)],
        [tmp_path / f"day_{d}.parquet" for d in range(1, days + 1)],
        tmp_path / "days.json",
    )


def test_an_outlier_session_as_a_rolling_day_is_warned_about_and_refused_under_the_minimum(tmp_path, caplog):
    """The day-by-day evaluation's days are counted back from the latest event too: each is held to the test
    split's rules."""
    from gru4rec_pipeline.data.rolling import split_days

    with_outlier(daily_clicks()).to_parquet(tmp_path / "clicks.parquet")
    all_events = {"min_item_support": 1}
    with caplog.at_level(logging.WARNING):
        record = split_days(tmp_path / "clicks.parquet", *rolling_paths(tmp_path, 1), protocol=all_events)
    assert record["days"][0]["sessions"] == 1
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "rolling day 1 of 1 (2999-12-31T00:00:02Z .. 3000-01-01T00:00:02Z) holds 1 sessions" in warning
    assert "fewer than 0.1 x the 30 of a typical window" in warning and "session 99999 at 3000-01-01" in warning
    with pytest.raises(DataFormatError) as refused:
        split_days(
            tmp_path / "clicks.parquet", *rolling_paths(tmp_path / "three", 3), protocol=all_events,
            min_test_predictions=10,
        )  # fmt: skip
    message = str(refused.value)
    assert "rolling day 1 of 3 (2999-12-29T00:00:02Z .. 2999-12-30T00:00:02Z) gives 0 next-item predictions" in message
    assert "limits.min_test_predictions=10" in message and "session 99999 at 3000-01-01" in message
    assert not (tmp_path / "three").exists()


def test_ordinary_rolling_days_pass_without_a_warning(tmp_path, caplog):
    from gru4rec_pipeline.data.rolling import split_days

    daily_clicks().to_parquet(tmp_path / "clicks.parquet")
    with caplog.at_level(logging.WARNING):
        record = split_days(
            tmp_path / "clicks.parquet", *rolling_paths(tmp_path, 3), protocol={"min_item_support": 1},
            min_test_predictions=10,
        )  # fmt: skip
    assert len(record["days"]) == 3 and all(day["sessions"] >= 30 for day in record["days"])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("block_rows", [1, 2, 3, 5, 1 << 22])
def test_session_ends_in_blocks_equal_the_whole_columns_at_once(monkeypatch, block_rows):
    """The split stage finds each session's last selected event block by block (its memory peak); a session
    running across a block boundary, a block selecting nothing and an empty selection give what one pass gives."""
    from gru4rec_pipeline.data import codes, latest_window

    monkeypatch.setattr(codes, "CHUNK_ROWS", block_rows)
    rng = np.random.default_rng(block_rows)
    for _ in range(100):
        n = int(rng.integers(0, 40))
        ids = np.sort(rng.integers(0, 6, n)).astype(np.int64)
        times = np.sort(rng.random(n))
        rows = rng.random(n) < rng.random()
        ends = np.r_[ids[rows][1:] != ids[rows][:-1], True] if rows.any() else np.zeros(0, dtype=bool)
        got_ids, got_times = latest_window._session_ends(ids, times, rows)
        np.testing.assert_array_equal(got_ids, ids[rows][ends])
        np.testing.assert_array_equal(got_times, times[rows][ends])
