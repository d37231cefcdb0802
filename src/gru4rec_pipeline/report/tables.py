"""What the results summary's tables and notes hold, as blocks that :mod:`~gru4rec_pipeline.report.render` lays out.

A summary is a list of blocks: ``("h1" | "h2" | "h3" | "p", text)``, ``("list", [text, ...])``, ``("table", Table)``,
``("figure", (png_path, text))``.
It opens with the headline (:func:`headline_blocks`: recall, MRR and NDCG at the headline cut-off, one row per model,
the notes that qualify them, what each model is); the report's landing page shows that part alone. Then every
cut-off (one table per metric), the cost, the published figures (RSC15's, or the data set's) and the provenance. No
table is wider than a handful of columns, so none is cut off on a laptop screen.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from gru4rec_pipeline.names import ACCURACY_METRICS, BEYOND_ACCURACY_METRICS, headline_cutoff


@dataclass
class Table:
    header: list[str]
    rows: list[list[tuple[str, bool]]]  # (text, is_best) per cell
    row_classes: list[str]
    text_columns: int = 1  # leading columns that hold text, not numbers


METRIC_LABELS = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG", "coverage": "Coverage", "popularity": "Popularity"}

METRIC_DEFINITIONS = (
    "Recall@k: the share of test events whose next item is among the k best-scored items; MRR@k: the mean of "
    "1 / rank of the next item; NDCG@k: the mean of 1 / log2(rank + 1) (with one relevant item per event the ideal "
    "DCG is 1); an event whose next item ranks beyond k counts 0 in all three."
)


def format_metric(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.4f}"


def format_duration(seconds: float) -> str:
    if pd.isna(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def format_rate(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:,.0f}"


def metric_label(column: str) -> str:
    """``ndcg@20`` -> ``NDCG@20``."""
    metric, _, cutoff = column.partition("@")
    return f"{METRIC_LABELS.get(metric, metric)}@{cutoff}"


def shown(table: pd.DataFrame, columns: list[str]) -> list[str]:
    """The columns of ``columns`` that some row of ``table`` has a value in (NDCG is absent from metrics files
    written before it was measured; coverage and popularity from the oracle's)."""
    return [column for column in columns if column in table and table[column].notna().any()]


def metric_cell(row: pd.Series, column: str) -> str:
    """A metric's value; over repeated runs its mean ± standard deviation; a dagger where it is not
    significantly worse than the best model's."""
    text = format_metric(row[column])
    if f"{column}_std" in row and not pd.isna(row[column]):
        text += f" ± {row[f'{column}_std']:.4f}"
    if bool(row.get(f"{column}_not_worse", False)):
        text += " †"
    return text


def metric_table(table: pd.DataFrame, columns: list[str], best_columns: list[str]) -> Table:
    """Model, kind (and runs) and ``columns``; the best value of each of ``best_columns`` among trained models and
    baselines is marked (the oracle is an upper bound and never counts as best)."""
    competing = table[table["kind"] != "oracle"]
    best = {column: competing[column].round(4).max() for column in best_columns}
    header = ["Model", "Kind", *(["Runs"] if "runs" in table.columns else []), *map(metric_label, columns)]
    rows = []
    for _, row in table.iterrows():
        cells = [(row["model"], False), (row["kind"], False)]
        if "runs" in table.columns:
            cells.append((f"{int(row['runs'])}", False))
        for column in columns:
            value = row[column]
            is_best = column in best and not pd.isna(value) and row["kind"] != "oracle"
            cells.append((metric_cell(row, column), is_best and round(value, 4) == best[column]))
        rows.append(cells)
    return Table(header, rows, list(table["kind"]), text_columns=2)


def headline_table(table: pd.DataFrame, cutoff: int) -> Table:
    """Recall, MRR and NDCG at ``cutoff`` (then coverage and popularity where measured), one row per model."""
    accuracy = shown(table, [f"{metric}@{cutoff}" for metric in ACCURACY_METRICS])
    beyond = shown(table, [f"{metric}@{cutoff}" for metric in BEYOND_ACCURACY_METRICS])
    return metric_table(table, accuracy + beyond, accuracy)


def cutoff_tables(table: pd.DataFrame, cutoffs: list[int]) -> list[tuple[str, Table]]:
    """Per accuracy metric that some model has: its label and its table at every cut-off."""
    tables = []
    for metric in ACCURACY_METRICS:
        columns = shown(table, [f"{metric}@{k}" for k in cutoffs])
        if columns:
            tables.append((f"{METRIC_LABELS[metric]}@k", metric_table(table, columns, columns)))
    return tables


def cost_table(table: pd.DataFrame) -> Table:
    header = ["Model", "Epochs", "Train time", "Train events/s", "Eval time", "Eval events/s", "Test events", "Device"]
    rows = []
    for _, row in table.iterrows():
        epochs, events = row["epochs"], row["eval_events"]
        texts = [
            row["model"],
            "–" if pd.isna(epochs) else f"{int(epochs)}",
            format_duration(row["train_seconds"]),
            format_rate(row["train_events_per_s"]),
            format_duration(row["eval_seconds"]),
            format_rate(row["eval_events_per_s"]),
            "–" if pd.isna(events) else f"{int(events):,}",
            row["device"] or "–",
        ]
        rows.append([(text, False) for text in texts])
    return Table(header, rows, list(table["kind"]))


def published_rows(published: pd.DataFrame, cutoffs: list[int]) -> Table:
    columns = shown(published, [f"{metric}@{k}" for metric in ACCURACY_METRICS for k in cutoffs])
    rows = [
        [(row["description"], False), *[(format_metric(row[c]), False) for c in columns]]
        for _, row in published.iterrows()
    ]
    return Table(["Source: setting", *map(metric_label, columns)], rows, ["published"] * len(rows))


def context_notes(table: pd.DataFrame, context: dict) -> list[str]:
    """Sentences that qualify the accuracy tables (synthetic data, evaluated events, ties, what the metrics are)."""
    notes = []
    if context.get("data_differs"):
        notes.append(
            "Measured on other data than the dataset named above, by their metrics files: "
            + ", ".join(context["data_differs"])
            + ": their figures do not compare with the others."
        )
    if context.get("is_synthetic"):
        notes.append(
            "These models ran on synthetic data (the oracle row exists): compare them with each other and "
            "with the oracle, not with the published RSC15 figures."
        )
    elif context.get("synthetic_data"):
        notes.append(
            "These models ran on synthetic raw files in the data set's format: compare them with each other, not "
            "with the published figures."
        )
    counts = context.get("event_counts") or {}
    if counts:
        distinct = sorted(set(counts.values()))
        if len(distinct) == 1:
            notes.append(f"Every model was evaluated on the same {distinct[0]:,} test events.")
        else:
            listing = ", ".join(f"{name} {count:,}" for name, count in counts.items())
            notes.append(f"Models were evaluated on different numbers of test events ({listing}): compare with care.")
    notes.append(METRIC_DEFINITIONS)
    tie_modes = sorted({mode for mode in table["tie_mode"] if mode})
    if tie_modes:
        notes.append(f"Tied scores are ranked in '{'/'.join(tie_modes)}' mode.")
    notes.append("Best value per metric (trained models and baselines; the oracle is an upper bound) in bold.")
    if "runs" in table.columns:
        notes.append("Over repeated runs (seeds seed, seed+1, ...): mean ± sample standard deviation.")
    if any(column.endswith("_not_worse") for column in table.columns):
        notes.append(
            "† not significantly worse than the best model (paired tests over the test events, Holm-adjusted "
            "p >= 0.05; results/significance.tsv)."
        )
    if any(column.startswith("coverage@") for column in table.columns):
        notes.append(
            "Coverage: share of the training items in at least one top-k list; popularity: mean training "
            "popularity of the recommended items, relative to the most popular item."
        )
    return notes


def provenance_lines(context: dict) -> list[str]:
    provenance = context.get("provenance") or {}
    if not provenance:
        return ["No provenance recorded in the metrics files."]
    versions = provenance.get("versions") or {}
    lines = [
        f"Commit: {provenance.get('git_commit', 'unknown')} "
        f"(uncommitted changes: {provenance.get('git_dirty', 'unknown')})",
        f"Configuration SHA-256: {provenance.get('config_sha256', 'unknown')}",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()),
        f"Host: {provenance.get('hostname', 'unknown')}, recorded {provenance.get('created_utc', 'unknown')}",
    ]
    if context.get("provenance_differs"):
        lines.append(
            "Models with a different commit or configuration than the above: "
            + ", ".join(context["provenance_differs"])
        )
    return lines


def headline_blocks(table: pd.DataFrame, cutoffs: list[int], context: dict, figure=None) -> list[tuple]:
    """The dataset, the headline table, ``figure`` (a PNG file, when given), the notes and what each model is."""
    blocks: list[tuple] = []
    if context.get("dataset"):
        blocks.append(("p", f"Dataset: {context['dataset']}."))
    blocks.append(("table", headline_table(table, headline_cutoff(cutoffs))))
    if figure is not None:
        blocks.append(("figure", (figure, "Recall@k, MRR@k and NDCG@k of every model against the cut-off k")))
    blocks.append(("p", " ".join(context_notes(table, context))))
    legend = [f"{row['model']}: {row['description']}" for _, row in table.iterrows() if row["description"]]
    return blocks + [("list", legend)]


def summary_blocks(table: pd.DataFrame, published: pd.DataFrame, cutoffs: list[int], context: dict) -> list[tuple]:
    blocks: list[tuple] = [("h1", "Results"), *headline_blocks(table, cutoffs, context), ("h2", "Every cut-off")]
    for label, metric_at_every_cutoff in cutoff_tables(table, cutoffs):
        blocks += [("h3", label), ("table", metric_at_every_cutoff)]
    blocks += [("h2", "Training and evaluation cost"), ("table", cost_table(table))]
    blocks.append(
        ("p", "Wall-clock time of the training and evaluation stages; speeds compare only on the same machine.")
    )
    blocks += [("h2", context["published_heading"]), ("p", context["published_note"])]
    blocks += [("table", published_rows(published, cutoffs)), ("h2", "Provenance"), ("list", provenance_lines(context))]
    return blocks
