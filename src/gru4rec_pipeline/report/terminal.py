"""The results table as plain text for the terminal: what a finished run prints (the Snakefile's ``onsuccess:``).

It reads a summary TSV, the main one (``results/summary.tsv``, :mod:`~gru4rec_pipeline.report.summary`) or the
window preset's (``results/window/summary.tsv``, :mod:`~gru4rec_pipeline.report.window_summary`), and shows one
row per model: recall, MRR and NDCG at the headline cut-off (over repeated runs their mean ± standard deviation;
over the window's slices their mean). The published reference rows of the main summary are left out.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TextIO

import pandas as pd

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.names import ACCURACY_METRICS, headline_cutoff
from gru4rec_pipeline.report.tables import format_metric, metric_label

# Rows of the main summary that are no model of this run.
REFERENCE_KIND = "published_rsc15"
# Leading text columns shown where the TSV has them.
TEXT_COLUMNS = ("model", "kind", "runs", "slices")
# recall@k over every run or slice (not the window summary's "recall@k slice N").
RECALL_COLUMN = re.compile(r"^recall@(\d+)$")


def headline_text(tsv_path: str | Path) -> str:
    """The headline table of the summary at ``tsv_path``, columns aligned, one line per model."""
    path = Path(tsv_path)
    try:
        table = pd.read_csv(path, sep="\t")
    except FileNotFoundError:
        raise DataFormatError(path, "summary table not found; its summarize stage writes it") from None
    cutoffs = [int(match.group(1)) for match in map(RECALL_COLUMN.match, table.columns) if match]
    if "model" not in table.columns or not cutoffs:
        raise DataFormatError(path, "expected a summary table with a model column and recall@k columns")
    if "kind" in table.columns:
        table = table[table["kind"] != REFERENCE_KIND]
    cutoff = headline_cutoff(cutoffs)
    metrics = [f"{metric}@{cutoff}" for metric in ACCURACY_METRICS if f"{metric}@{cutoff}" in table.columns]
    text_columns = [column for column in TEXT_COLUMNS if column in table.columns]
    header = [column.capitalize() for column in text_columns] + [metric_label(column) for column in metrics]
    rows = [header]
    for _, row in table.iterrows():
        cells = [_text(row[column]) for column in text_columns]
        for column in metrics:
            cell = format_metric(row[column])
            if f"{column}_std" in row and not pd.isna(row[column]):
                cell += f" ± {row[f'{column}_std']:.4f}"
            cells.append(cell)
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if i < len(text_columns) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def _text(value) -> str:
    if isinstance(value, float):
        return "–" if pd.isna(value) else f"{value:g}"
    return str(value)


def print_summary(tsv_path: str | Path, details: str | Path | None = None, stream: TextIO | None = None) -> None:
    """Print the headline table of ``tsv_path`` under a line naming it and ``details`` (the file with the rest)."""
    stream = stream or sys.stdout
    more = f"; more in {details}" if details else ""
    stream.write(f"\nResults ({tsv_path}{more}):\n\n{headline_text(tsv_path)}\n")
    stream.flush()
