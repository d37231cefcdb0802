"""The day-by-day evaluation's table, figure and summary lines, from its per-(strategy, day) records.

``results/rolling/{loss}.tsv``: one row per strategy and day (recall@k, MRR@k, coverage, training seconds,
vocabulary size); ``results/rolling/{loss}.png``: recall@k per day, one line per strategy;
``results/rolling/{loss}.md``: the table and, per strategy, the mean over days and the total training time.
k is the headline cut-off of the records' cut-offs (names.headline_cutoff: 20 when evaluation.cutoffs has it, else
the largest).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_output, read_json, write_text_atomic
from gru4rec_pipeline.names import ROLLING_STRATEGIES, headline_cutoff


def rolling_table(record_paths: list[str | Path], cutoff: int | None = None) -> pd.DataFrame:
    """One row per record: strategy, day, recall@k, mrr@k, coverage, training seconds, items; ``cutoff``: k
    (default: the headline cut-off of the cut-offs every record has)."""
    records = [(path, read_json(path, "rolling evaluation record")) for path in record_paths]
    if not records:
        raise DataFormatError("<rolling records>", "no records given")
    if cutoff is None:
        shared = set.intersection(*(set(record["recall"]) & set(record["mrr"]) for _, record in records))
        if not shared:
            raise DataFormatError(
                records[0][0], "the records share no cut-off (evaluation.cutoffs changed between them)"
            )
        cutoff = headline_cutoff(shared)
    rows = []
    for path, record in records:
        if str(cutoff) not in record["recall"] or str(cutoff) not in record["mrr"]:
            raise DataFormatError(
                path, f"no recall@{cutoff} / mrr@{cutoff}: its cut-offs are {', '.join(record['recall'])} "
                "(evaluation.cutoffs)"
            )  # fmt: skip
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


def table_cutoff(table: pd.DataFrame) -> int:
    """The cut-off k of a rolling table's recall@k column."""
    return int(next(column for column in table.columns if column.startswith("recall@")).split("@")[1])


def rolling_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: mean recall@k and MRR@k over the days, total training seconds."""
    k = table_cutoff(table)
    grouped = table.groupby("strategy", observed=True)
    return pd.DataFrame(
        {
            f"mean recall@{k}": grouped[f"recall@{k}"].mean(),
            f"mean mrr@{k}": grouped[f"mrr@{k}"].mean(),
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

    k = table_cutoff(table)
    figure, axis = plt.subplots(figsize=(6, 3.6), dpi=110)
    for strategy, rows in table.groupby("strategy", observed=True):
        axis.plot(rows["day"], rows[f"recall@{k}"], marker="o", label=str(strategy))
    axis.set_xlabel("day tested (of the last days of the data)")
    axis.set_ylabel(f"recall@{k} (all of the day's predictions)")
    axis.set_title(f"GRU4Rec {loss}: scratch, warm and frozen models day by day")
    axis.set_xticks(sorted(table["day"].unique()))
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
