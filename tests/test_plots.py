"""Figures: each is written as a PNG; the statistics behind the dataset figure are right."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.protocol import RSC15_PUBLISHED_STATS
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.names import BASELINES, LOSSES, ORACLE, TUNED_SUFFIX
from gru4rec_pipeline.report.learning_curve import plot_learning_curve
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
from gru4rec_pipeline.report.styles import KNOWN_MODELS, model_style, model_styles
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


# ---------------------------------------------------------------- one look per model


def lab(colour) -> np.ndarray:
    """CIELAB coordinates of a Matplotlib colour (sRGB, D65)."""
    import matplotlib.colors

    rgb = np.array(matplotlib.colors.to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    f = np.cbrt(xyz / np.array([0.95047, 1.0, 1.08883]))
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_every_model_has_a_colour_and_marker_of_its_own():
    styles = {name: model_style(name) for name in KNOWN_MODELS}
    assert set(KNOWN_MODELS) >= {*LOSSES, *BASELINES, ORACLE, "bpr_max_tuned"}
    pairs = [(style["color"], style["marker"]) for style in styles.values()]
    assert len(set(pairs)) == len(pairs)
    untuned = [name for name in KNOWN_MODELS if not name.endswith(TUNED_SUFFIX)]
    colours = [styles[name]["color"] for name in untuned]
    markers = [styles[name]["marker"] for name in untuned]
    assert len(set(colours)) == len(set(markers)) == len(untuned) == 13
    nearest = min(np.linalg.norm(lab(a) - lab(b)) for a, b in itertools.combinations(colours, 2))
    assert nearest > 25, "two models' colours are shades of each other"
    # a tuned model: its loss's colour, another marker and line
    assert styles["bpr_max_tuned"]["color"] == styles["bpr_max"]["color"]
    assert styles["bpr_max_tuned"]["marker"] != styles["bpr_max"]["marker"]
    assert {styles[name]["linestyle"] for name in LOSSES} == {"-"} and {styles[n]["linestyle"] for n in BASELINES} == {
        "--"
    }


def test_names_outside_the_mapping_get_spare_looks_no_known_model_has():
    styles = model_styles(["bpr", "gru4rec_v2", "knn_x", "bpr"])
    assert list(styles) == ["bpr", "gru4rec_v2", "knn_x"] and styles["bpr"] == model_style("bpr")
    known = {(model_style(name)["color"], model_style(name)["marker"]) for name in KNOWN_MODELS}
    spare = [(styles[name]["color"], styles[name]["marker"]) for name in ("gru4rec_v2", "knn_x")]
    assert len(set(spare)) == 2 and not set(spare) & known


def drawn_looks(figure) -> list[tuple[str, str, str]]:
    """(label, colour, marker) of every labelled line of the figure (an error bar's data line included)."""
    import matplotlib.colors

    looks = []
    for ax in figure.axes:
        for line in ax.get_lines():
            owner = next((c for c in ax.containers if line in getattr(c, "lines", ())[:1]), None)
            label = owner.get_label() if owner is not None else line.get_label()
            if not label.startswith("_"):
                looks.append((label, matplotlib.colors.to_hex(line.get_color()), line.get_marker()))
    return looks


@pytest.fixture
def captured(monkeypatch):
    """The figures the plotting functions save, kept open for inspection."""
    from gru4rec_pipeline.report import learning_curve, plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    monkeypatch.setattr(learning_curve, "_save", lambda fig, path: figures.append(fig))
    yield figures
    import matplotlib.pyplot as plt

    for figure in figures:
        plt.close(figure)


def assert_styled(figure, names):
    """Each model drawn in its mapped colour and marker, and no two models alike."""
    looks = drawn_looks(figure)
    assert {label for label, _, _ in looks} == set(names)
    for label, colour, marker in looks:
        assert (colour, marker) == (model_style(label)["color"], model_style(label)["marker"]), label
    assert len({(colour, marker) for _, colour, marker in looks}) == len(set(names))


def test_every_figure_draws_each_model_in_its_own_look(tmp_path, captured):
    names = [*LOSSES, "bpr_max_tuned", *BASELINES, ORACLE]
    records = [metrics_record(name, "gru4rec", 0.5, 0.2) for name in [*LOSSES, "bpr_max_tuned"]]
    records += [metrics_record(name, "baseline", 0.3, 0.1) for name in BASELINES]
    records += [metrics_record(ORACLE, "oracle", 0.9, 0.6)]
    paths = write_metrics(tmp_path, records)
    plot_metrics_by_cutoff(paths, tmp_path / "metrics.png")
    plot_training_speed(paths, tmp_path / "speed.png")
    histories = [write_history(tmp_path, name, [0.9, 0.8]) for name in [*LOSSES, "bpr_max_tuned"]]
    plot_training_loss(histories, tmp_path / "loss.png")
    for path in histories:
        history = pd.read_csv(path)
        history["recall@20"], history["mrr@20"], history["ndcg@20"] = [0.3, 0.4], [0.1, 0.2], [0.15, 0.25]
        history.to_csv(path, index=False)
    plot_learning_curve(histories, tmp_path / "curve.png", split="test")
    metrics, speed, loss, curve = captured
    assert [ax.get_title() for ax in metrics.axes] == ["Recall@k", "MRR@k", "NDCG@k"]
    assert [ax.get_title().split()[0] for ax in curve.axes] == ["Recall@20", "MRR@20", "NDCG@20"]
    assert_styled(metrics, names)
    assert_styled(speed, [*LOSSES, "bpr_max_tuned"])  # the models that report their speed
    for bars in (patch for ax in speed.axes for patch in ax.patches):
        assert bars.get_facecolor() != (0.0, 0.0, 0.0, 0.0)
    assert_styled(loss, [*LOSSES, "bpr_max_tuned"])
    assert_styled(curve, [*LOSSES, "bpr_max_tuned"])
