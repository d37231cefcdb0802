"""The day-by-day evaluation's table, figure and summary lines, from its per-(strategy, day) records.

``results/rolling/{loss}.tsv``: one row per strategy and day (recall@20, MRR@20, coverage, training seconds,
vocabulary size); ``results/rolling/{loss}.png``: recall@20 per day, one line per strategy;
``results/rolling/{loss}.md``: the table and, per strategy, the mean over days and the total training time.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gru4rec_pipeline.files import atomic_output, read_json, write_text_atomic
from gru4rec_pipeline.names import ROLLING_STRATEGIES

COLUMNS = ("strategy", "day", "recall@20", "mrr@20", "coverage", "train_seconds", "items")


def rolling_table(record_paths: list[str | Path], cutoff: int = 20) -> pd.DataFrame:
    rows = []
    for path in record_paths:
        record = read_json(path, "rolling evaluation record")
        rows.append(
            {
                "strategy": record["strategy"],
                "day": record["day"],
                f"recall@{cutoff}": record["recall"][str(cutoff)],
                f"mrr@{cutoff}": record["mrr"][str(cutoff)],
                "coverage": record["coverage"],
                "train_seconds": record["train_seconds"],
                "items": record["items"],
            }
        )
    table = pd.DataFrame(rows)
    table["strategy"] = pd.Categorical(table["strategy"], categories=ROLLING_STRATEGIES, ordered=True)
    return table.sort_values(["strategy", "day"]).reset_index(drop=True)


def rolling_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: mean recall@20 and MRR@20 over the days, total training seconds."""
    grouped = table.groupby("strategy", observed=True)
    return pd.DataFrame(
        {
            "mean recall@20": grouped["recall@20"].mean(),
            "mean mrr@20": grouped["mrr@20"].mean(),
            "total train_seconds": grouped["train_seconds"].sum(),
        }
    ).reset_index()


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    lines = [header, "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_rolling_report(record_paths, tsv_path, figure_path, summary_path, loss: str) -> pd.DataFrame:
    table = rolling_table(record_paths)
    with atomic_output(tsv_path) as temporary:
        table.to_csv(temporary, sep="\t", index=False, float_format="%.6f")
    summary = rolling_summary(table)
    text = (
        f"# Day-by-day evaluation, loss {loss}\n\n{_markdown(table)}\n\n"
        f"Mean over {table['day'].nunique()} days and total training time per strategy:\n\n{_markdown(summary)}\n"
    )
    write_text_atomic(summary_path, text)
    plot_rolling(table, figure_path, loss)
    return table


def plot_rolling(table: pd.DataFrame, path, loss: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.6), dpi=110)
    for strategy, rows in table.groupby("strategy", observed=True):
        axis.plot(rows["day"], rows["recall@20"], marker="o", label=str(strategy))
    axis.set_xlabel("day tested (of the last days of the data)")
    axis.set_ylabel("recall@20 (all of the day's predictions)")
    axis.set_title(f"GRU4Rec {loss}: scratch, warm and frozen models day by day")
    axis.set_xticks(sorted(table["day"].unique()))
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
