"""Figures of a run: training loss per epoch, accuracy by cut-off, training speed, dataset statistics.

All figures are PNG files drawn with matplotlib's Agg backend (no display needed), written
atomically. Each model has the colour, marker and line style :mod:`~gru4rec_pipeline.report.styles` fixes for
it, in every figure. Inputs are the stage outputs: ``results/models/{setting}/{loss}/history.csv``,
``results/metrics/{setting}/{name}.json``, ``results/data/stats.json`` and the split parquet files.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_output, read_json
from gru4rec_pipeline.names import ACCURACY_METRICS, HISTORY_COLUMNS, LOSSES
from gru4rec_pipeline.report.aggregate import aggregate_runs, metric_columns
from gru4rec_pipeline.report.styles import model_styles
from gru4rec_pipeline.report.summary import load_metrics, summary_table
from gru4rec_pipeline.report.tables import METRIC_LABELS

log = logging.getLogger(__name__)

SPLIT_ORDER = ("raw", "train_full", "test", "train_tr", "valid")
SECONDS_PER_DAY = 86400.0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 9,
        }
    )
    return plt


def _save(fig, out_png: str | Path) -> None:
    """Write the figure to a temporary sibling and rename it into place."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib.pyplot as plt

    try:
        with atomic_output(out_png) as temporary:
            fig.savefig(temporary, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    log.info("figure written to %s", out_png)


def _grid(n_panels: int, max_columns: int = 3) -> tuple[int, int]:
    columns = min(max_columns, max(n_panels, 1))
    return math.ceil(max(n_panels, 1) / columns), columns


# ---------------------------------------------------------------- training


def read_history(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    try:
        history = pd.read_csv(path)
    except FileNotFoundError:
        raise DataFormatError(path, "training history does not exist") from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, f"empty file, expected a CSV header {','.join(HISTORY_COLUMNS)}") from None
    missing = [c for c in ("epoch", "loss") if c not in history.columns]
    if missing:
        raise DataFormatError(path, f"missing columns {missing}; found {list(history.columns)}", line=1)
    return history


def history_name(path: str | Path) -> str:
    """A history at ``results/models/{setting}/{loss}/history.csv`` belongs to the model named by its folder."""
    return Path(path).parent.name


def _loss_position(named: tuple[str, pd.DataFrame]) -> tuple[int, str]:
    name = named[0]
    return (LOSSES.index(name) if name in LOSSES else len(LOSSES), name)


def plot_training_loss(history_paths: list[str | Path], out_png: str | Path) -> None:
    """One panel per loss (their scales differ by orders of magnitude): mean training loss per epoch."""
    plt = _pyplot()
    histories = sorted(((history_name(p), read_history(p)) for p in history_paths), key=_loss_position)
    styles = model_styles(name for name, _ in histories)
    rows, columns = _grid(len(histories))
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for ax, (name, history) in zip(axes.flat, histories):
        ax.plot(history["epoch"], history["loss"], label=name, **styles[name])
        title = name
        if "events_per_s" in history and len(history):
            title += f"  ({history['events_per_s'].mean():,.0f} events/s)"
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean training loss")
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in list(axes.flat)[len(histories) :]:
        ax.set_visible(False)
    fig.suptitle("Training loss per epoch", fontsize=11)
    fig.tight_layout()
    _save(fig, out_png)


# ---------------------------------------------------------------- accuracy and speed


def plot_metrics_by_cutoff(metrics_paths: list[str | Path], out_png: str | Path) -> None:
    """Recall@k, MRR@k and NDCG@k against the cut-off k (NDCG where measured), one line per model (losses solid,
    baselines dashed, oracle dotted); over repeated runs the mean with the standard deviation as error bars."""
    plt = _pyplot()
    table = aggregate_runs(summary_table(load_metrics(metrics_paths)))
    measured = [column for column in metric_columns(table) if table[column].notna().any()]
    metrics = [metric for metric in ACCURACY_METRICS if any(c.startswith(f"{metric}@") for c in measured)]
    styles = model_styles(table["model"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 4.2), squeeze=False)
    axes = axes[0]
    for _, row in table.iterrows():
        for ax, metric in zip(axes, metrics):
            columns = [c for c in metric_columns(table) if c.startswith(f"{metric}@") and not pd.isna(row[c])]
            if not columns:
                continue
            cutoffs = [int(c.split("@")[1]) for c in columns]
            spread = [row[f"{c}_std"] for c in columns] if f"{columns[0]}_std" in row else None
            values = [row[c] for c in columns]
            ax.errorbar(cutoffs, values, yerr=spread, capsize=3, label=row["model"], **styles[row["model"]])
    for ax, metric in zip(axes, metrics):
        ax.set_xscale("log")
        cutoffs = sorted({int(c.split("@")[1]) for c in metric_columns(table)})
        ax.set_xticks(cutoffs, [str(k) for k in cutoffs])
        ax.minorticks_off()
        ax.set_xlabel("cut-off k (length of the recommendation list)")
        ax.set_title(f"{METRIC_LABELS[metric]}@k")
        ax.set_ylim(bottom=0)
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    _save(fig, out_png)


def plot_training_speed(metrics_paths: list[str | Path], out_png: str | Path) -> None:
    """Training and evaluation throughput (events per second) of every model that reports it: a bar in the model's
    colour, its marker at the bar's end."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    table = summary_table(load_metrics(metrics_paths))
    styles = model_styles(table["model"])
    table["color"] = [styles[name]["color"] for name in table["model"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.0 + 0.35 * len(table)))
    for ax, column, title in zip(
        axes, ("train_events_per_s", "eval_events_per_s"), ("Training events/s", "Evaluation events/s")
    ):
        shown = table[~table[column].isna()]
        if shown.empty:
            ax.text(0.5, 0.5, "not reported", ha="center", va="center", transform=ax.transAxes)
        else:
            bars = ax.barh(shown["model"], shown[column], color=shown["color"])
            for name, value in zip(shown["model"], shown[column]):
                # a white rim sets a filled marker off from its bar of the same colour
                marker, colour = styles[name]["marker"], styles[name]["color"]
                rim = "white" if marker in Line2D.filled_markers else colour
                ax.plot([value], [name], marker=marker, color=colour, markeredgecolor=rim, markersize=10, label=name)
            ax.bar_label(bars, labels=[f"{v:,.0f}" for v in shown[column]], padding=7, fontsize=8)
            ax.invert_yaxis()
            ax.margins(x=0.25)
        devices = sorted({d for d in shown["device"] if d})
        ax.set_title(title + (f" ({', '.join(devices)})" if devices else ""))
    fig.tight_layout()
    _save(fig, out_png)


# ---------------------------------------------------------------- dataset


def read_stats(path: str | Path) -> dict:
    path = Path(path)
    stats = read_json(path, "statistics")
    if not isinstance(stats, dict) or not isinstance(stats.get("splits"), dict):
        raise DataFormatError(path, "expected an object with 'splits' (events/sessions/items per split)")
    return stats


def read_split_columns(path: str | Path, columns: list[str]) -> dict[str, np.ndarray]:
    """The columns ``columns`` of the split file ``path`` as arrays (the figure reads no more)."""
    path = Path(path)
    try:
        table = pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise DataFormatError(path, "split file does not exist") from None
    except (KeyError, ValueError) as exc:
        raise DataFormatError(path, f"expected columns {columns}: {exc}") from None
    return {name: table.column(name).to_numpy() for name in columns}


def session_lengths(session_ids: np.ndarray) -> np.ndarray:
    """Events per session of a split sorted by SessionId (the split contract)."""
    if len(session_ids) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, session_ids[1:] != session_ids[:-1]])
    return np.diff(np.r_[starts, len(session_ids)])


def events_per_day(times: np.ndarray) -> pd.Series:
    """Event counts per UTC calendar day, indexed by the day's date."""
    if len(times) == 0:
        return pd.Series(dtype=np.int64)
    days = np.floor(times / SECONDS_PER_DAY).astype(np.int64)
    first = days.min()
    counts = np.bincount(days - first)
    index = pd.to_datetime((first + np.arange(len(counts))) * SECONDS_PER_DAY, unit="s", utc=True)
    return pd.Series(counts, index=index)


def _integer_log_ticks(ax) -> None:
    """Plain integers (1, 2, 5, 10, ...) instead of powers of ten on a logarithmic length axis."""
    import matplotlib.ticker

    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _compact(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    value = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def split_table_rows(stats: dict) -> tuple[list[str], list[list[str]], list[str]]:
    """Column labels, cell texts and row labels comparing this run's splits with published RSC15 (where stats.json
    holds its figures: not for another data set)."""
    splits = stats["splits"]
    published = stats.get("published_rsc15") or {}
    names = [n for n in SPLIT_ORDER if n in splits] + [n for n in splits if n not in SPLIT_ORDER]
    columns = ["events", "sessions", "items", "events/session"]
    if published:
        columns += [f"RSC15 {column}" for column in columns]
    rows = []
    for name in names:
        cells = []
        for counts in [splits.get(name) or {}, *([published.get(name) or {}] if published else [])]:
            events, sessions, items = (counts.get(k) for k in ("events", "sessions", "items"))
            per_session = events / sessions if events is not None and sessions else None
            cells += [
                _compact(events),
                _compact(sessions),
                _compact(items),
                "–" if per_session is None else f"{per_session:.2f}",
            ]
        rows.append(cells)
    return columns, rows, names


def plot_dataset_statistics(
    stats_path: str | Path, train_path: str | Path, test_path: str | Path, out_png: str | Path
) -> None:
    """Session lengths, item popularity and events per day of train_full and test, and the split
    sizes next to the published RSC15 figures from stats.json."""
    plt = _pyplot()
    import matplotlib.dates

    stats = read_stats(stats_path)
    published = stats.get("published_rsc15") or {}
    train = read_split_columns(train_path, ["SessionId", "ItemId", "Time"])
    test = read_split_columns(test_path, ["SessionId", "Time"])

    fig = plt.figure(figsize=(14, 8.2))
    grid = fig.add_gridspec(2, 3, height_ratios=[1.0, 0.62])
    ax_length, ax_popularity, ax_days = (fig.add_subplot(grid[0, i]) for i in range(3))
    ax_table = fig.add_subplot(grid[1, :])

    for name, events, color in (("train_full", train, "tab:blue"), ("test", test, "tab:orange")):
        lengths = session_lengths(events["SessionId"])
        if len(lengths):
            share = np.bincount(lengths)[1:] / len(lengths)
            shown = np.flatnonzero(share) + 1
            ax_length.plot(
                shown, share[shown - 1], marker=".", color=color, label=f"{name} (mean {lengths.mean():.2f})"
            )
        reference = published.get(name)
        if reference and reference.get("sessions"):
            ax_length.axvline(
                reference["events"] / reference["sessions"],
                color=color,
                linestyle="--",
                linewidth=1,
                label=f"RSC15 {name} mean {reference['events'] / reference['sessions']:.2f}",
            )
    ax_length.set_xscale("log")
    ax_length.set_yscale("log")
    _integer_log_ticks(ax_length)
    ax_length.set_xlabel("session length (events)")
    ax_length.set_ylabel("share of sessions")
    ax_length.set_title("Session lengths")
    ax_length.legend(fontsize=7, frameon=False)

    support = pd.Series(train["ItemId"]).value_counts().to_numpy()
    if len(support):
        rank_share = np.arange(1, len(support) + 1) / len(support)
        ax_popularity.plot(
            rank_share, support / support.sum(), color="tab:blue", label=f"train_full: {len(support):,} items"
        )
        top_share = support[: max(1, len(support) // 100)].sum() / support.sum()
        ax_popularity.text(
            0.03,
            0.05,
            f"top 1% of items: {100 * top_share:.1f}% of events",
            transform=ax_popularity.transAxes,
            fontsize=8,
        )
    if published.get("train_full", {}).get("items"):
        ax_popularity.plot([], [], " ", label=f"RSC15 train_full: {published['train_full']['items']:,} items")
    ax_popularity.set_xscale("log")
    ax_popularity.set_yscale("log")
    ax_popularity.set_xlabel("item rank / number of items")
    ax_popularity.set_ylabel("share of training events")
    ax_popularity.set_title("Item popularity (train_full)")
    ax_popularity.legend(fontsize=7, frameon=False)

    for name, events, color in (("train_full", train, "tab:blue"), ("test", test, "tab:orange")):
        per_day = events_per_day(events["Time"])
        if len(per_day):
            ax_days.plot(
                per_day.index,
                per_day.to_numpy(),
                color=color,
                marker="." if len(per_day) < 40 else None,
                label=f"{name} ({len(per_day)} days)",
            )
    ax_days.set_ylabel("events per day (UTC)")
    ax_days.set_title("Events per day")
    ax_days.legend(fontsize=7, frameon=False)
    locator = matplotlib.dates.AutoDateLocator()
    ax_days.xaxis.set_major_locator(locator)
    ax_days.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(locator))

    columns, rows, names = split_table_rows(stats)
    ax_table.axis("off")
    title = "Split sizes: this run (left) and published RSC15 (right)" if len(columns) > 4 else "Split sizes"
    ax_table.set_title(title, fontsize=10)
    if rows:
        table = ax_table.table(cellText=rows, colLabels=columns, rowLabels=names, loc="center", cellLoc="right")
        table.auto_set_font_size(False)
        table.set_fontsize(8.5)
        table.scale(1.0, 1.35)
        for (_row, column), cell in table.get_celld().items():
            if column >= 4:
                cell.set_facecolor("#f3f4f6")
    fig.tight_layout()
    _save(fig, out_png)
