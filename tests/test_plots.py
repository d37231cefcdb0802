"""Figures: each is written as a PNG; the statistics behind the dataset figure are right."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.protocol import RSC15_PUBLISHED_STATS
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.report.plots import (
    events_per_day,
    plot_dataset_statistics,
    plot_metrics_by_cutoff,
    plot_training_loss,
    plot_training_speed,
    read_history,
    session_lengths,
    split_table_rows,
)
from test_summary import metrics_record, write_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000  # something was drawn
    assert not list(path.parent.glob(".*tmp*")), "temporary file left behind"


def write_history(directory, loss, losses):
    folder = directory / "models" / loss
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "epoch": np.arange(1, len(losses) + 1),
            "loss": losses,
            "events": 1000,
            "events_per_s": 2000.0,
            "wall_s": 0.5,
        }
    ).to_csv(folder / "history.csv", index=False)
    return folder / "history.csv"


def test_training_loss_figure(tmp_path):
    paths = [write_history(tmp_path, "top1", [0.9, 0.8]), write_history(tmp_path, "ce_full", [6.0, 5.0, 4.5])]
    plot_training_loss(paths, tmp_path / "plots" / "training_loss.png")
    assert_png(tmp_path / "plots" / "training_loss.png")


def test_history_without_loss_column_is_reported(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,events\n1,10\n")
    with pytest.raises(DataFormatError, match=r"missing columns \['loss'\]"):
        read_history(path)


def test_metrics_and_speed_figures(tmp_path):
    paths = write_metrics(
        tmp_path,
        [
            metrics_record("bpr", "gru4rec", 0.5, 0.2),
            metrics_record("pop", "baseline", 0.1, 0.05),
            metrics_record("oracle", "oracle", 0.9, 0.6),
        ],
    )
    plot_metrics_by_cutoff(paths, tmp_path / "metrics.png")
    plot_training_speed(paths, tmp_path / "speed.png")
    assert_png(tmp_path / "metrics.png")
    assert_png(tmp_path / "speed.png")


def test_session_lengths_of_a_sorted_split():
    assert session_lengths(np.array([3, 3, 3, 5, 8, 8])).tolist() == [3, 1, 2]
    assert session_lengths(np.array([], dtype=np.int64)).tolist() == []


def test_events_per_day_counts_utc_days_including_empty_ones():
    day = 86400.0
    start = 1_396_828_800.0  # 2014-04-07T00:00:00Z
    counts = events_per_day(np.array([start + 10, start + day - 1, start + 2 * day + 5]))
    assert counts.tolist() == [2, 0, 1]
    assert str(counts.index[0].date()) == "2014-04-07"


def test_split_table_puts_published_rsc15_beside_this_run():
    stats = {
        "splits": {
            "test": {"events": 12, "sessions": 3, "items": 5},
            "train_full": {"events": 1500, "sessions": 400, "items": 90},
        },
        "published_rsc15": RSC15_PUBLISHED_STATS,
    }
    columns, rows, names = split_table_rows(stats)
    assert names == ["train_full", "test"]
    assert columns[0] == "events" and columns[4] == "RSC15 events"
    assert rows[0] == ["1.5k", "400", "90", "3.75", "31.6M", "7.97M", "37.5k", "3.97"]


def test_dataset_figure_from_split_files(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 8, size=300)
    session_ids = np.repeat(np.arange(300), lengths)
    frame = pd.DataFrame(
        {
            "SessionId": session_ids.astype(np.int64),
            "ItemId": rng.zipf(1.6, len(session_ids)).astype(np.int64) % 200,
            "Time": 1.396e9 + np.sort(rng.uniform(0, 10 * 86400, len(session_ids))),
        }
    )
    frame.iloc[:-40].to_parquet(tmp_path / "train_full.parquet")
    frame.iloc[-40:].to_parquet(tmp_path / "test.parquet")
    stats = {
        "splits": {"train_full": {"events": len(frame) - 40, "sessions": 290, "items": 150}},
        "published_rsc15": RSC15_PUBLISHED_STATS,
    }
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    code = main(
        [
            "plots",
            "dataset",
            "--stats",
            str(tmp_path / "stats.json"),
            "--train",
            str(tmp_path / "train_full.parquet"),
            "--test",
            str(tmp_path / "test.parquet"),
            "--out",
            str(tmp_path / "dataset.png"),
        ]
    )
    assert code == 0
    assert_png(tmp_path / "dataset.png")


def test_statistics_without_splits_are_rejected(tmp_path):
    (tmp_path / "stats.json").write_text('{"train_full": {}}')
    with pytest.raises(DataFormatError, match="'splits'"):
        plot_dataset_statistics(tmp_path / "stats.json", tmp_path / "a", tmp_path / "b", tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()
