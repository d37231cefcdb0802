"""The results summary for people and machines: TSV, markdown and HTML from the summary tables.

:mod:`gru4rec_pipeline.report.summary` decides what the summary says (which models, which figures,
which notes); this module decides how it looks. The human-readable summary is a list of blocks,
rendered once as markdown and once as HTML: ``("h1" | "h2" | "p", text)``, ``("list", [text, ...])``,
``("table", Table)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import pandas as pd


@dataclass
class Table:
    header: list[str]
    rows: list[list[tuple[str, bool]]]  # (text, is_best) per cell
    row_classes: list[str]
    text_columns: int = 1  # leading columns that hold text, not numbers


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


def _metric_columns(cutoffs: list[int]) -> list[tuple[str, str]]:
    return [(f"recall@{k}", f"Recall@{k}") for k in cutoffs] + [(f"mrr@{k}", f"MRR@{k}") for k in cutoffs]


def metric_cell(row: pd.Series, column: str) -> str:
    """A metric's value; over repeated runs its mean ± standard deviation; a dagger where it is not
    significantly worse than the best model's."""
    text = format_metric(row[column])
    if f"{column}_std" in row and not pd.isna(row[column]):
        text += f" ± {row[f'{column}_std']:.4f}"
    if bool(row.get(f"{column}_not_worse", False)):
        text += " †"
    return text


def accuracy_table(table: pd.DataFrame, cutoffs: list[int]) -> Table:
    """Recall and MRR per model (coverage and popularity where measured); the best value of each accuracy
    metric among trained models and baselines is marked (the oracle is an upper bound and never counts as best)."""
    metric_columns = _metric_columns(cutoffs)
    competing = table[table["kind"] != "oracle"]
    best = {column: competing[column].round(4).max() for column, _ in metric_columns}
    beyond = [(c, c.replace("coverage", "Coverage").replace("popularity", "Popularity"))
              for c in table.columns if c.startswith(("coverage@", "popularity@")) and "_" not in c]  # fmt: skip
    header = ["Model", "Kind", *[label for _, label in metric_columns]]
    if "runs" in table.columns:
        header.insert(2, "Runs")
    rows = []
    for _, row in table.iterrows():
        cells = [(row["model"], False), (row["kind"], False)]
        if "runs" in table.columns:
            cells.append((f"{int(row['runs'])}", False))
        for column, _ in metric_columns:
            value = row[column]
            is_best = not pd.isna(value) and row["kind"] != "oracle" and round(value, 4) == best[column]
            cells.append((metric_cell(row, column), is_best))
        cells += [(metric_cell(row, column), False) for column, _ in beyond]
        rows.append(cells)
    header += [label for _, label in beyond]
    return Table(header, rows, list(table["kind"]), text_columns=2)


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
    metric_columns = [(c, label) for c, label in _metric_columns(cutoffs) if published[c].notna().any()]
    rows = [
        [(row["description"], False), *[(format_metric(row[c]), False) for c, _ in metric_columns]]
        for _, row in published.iterrows()
    ]
    return Table(["Source: setting", *[label for _, label in metric_columns]], rows, ["published"] * len(rows))


def context_notes(table: pd.DataFrame, context: dict) -> list[str]:
    """Sentences that qualify the accuracy table (synthetic data, evaluated events, ties)."""
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
    counts = context.get("event_counts") or {}
    if counts:
        distinct = sorted(set(counts.values()))
        if len(distinct) == 1:
            notes.append(f"Every model was evaluated on the same {distinct[0]:,} test events.")
        else:
            listing = ", ".join(f"{name} {count:,}" for name, count in counts.items())
            notes.append(f"Models were evaluated on different numbers of test events ({listing}): compare with care.")
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


def summary_blocks(table: pd.DataFrame, published: pd.DataFrame, cutoffs: list[int], context: dict) -> list[tuple]:
    blocks: list[tuple] = [("h1", "Results")]
    if context.get("dataset"):
        blocks.append(("p", f"Dataset: {context['dataset']}."))
    blocks += [("table", accuracy_table(table, cutoffs)), ("p", " ".join(context_notes(table, context)))]
    legend = [f"{row['model']}: {row['description']}" for _, row in table.iterrows() if row["description"]]
    blocks += [("list", legend), ("h2", "Training and evaluation cost"), ("table", cost_table(table))]
    blocks.append(
        ("p", "Wall-clock time of the training and evaluation stages; speeds compare only on the same machine.")
    )
    blocks += [("h2", "Published figures on the real RSC15 dataset (reference only)"), ("p", context["published_note"])]
    blocks += [("table", published_rows(published, cutoffs)), ("h2", "Provenance"), ("list", provenance_lines(context))]
    return blocks


def render_markdown(blocks: list[tuple]) -> str:
    lines: list[str] = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            lines += [("# " if kind == "h1" else "## ") + content, ""]
        elif kind == "p":
            lines += [content, ""]
        elif kind == "list":
            lines += [f"- {item}" for item in content] + [""]
        else:
            cells = [[(f"**{t}**" if best else t).replace("|", "/") for t, best in row] for row in content.rows]
            lines += ["| " + " | ".join(content.header) + " |", "|" + "|".join("---" for _ in content.header) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in cells] + [""]
    return "\n".join(lines)


HTML_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.2em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; } h2 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.55em; text-align: right; white-space: nowrap; }
th { background: #f3f4f6; } th.text, td.text { text-align: left; } td.text { white-space: normal; max-width: 34em; }
tr.baseline td { background: #fafafa; color: #444; } tr.oracle td { color: #666; font-style: italic; }
strong { color: #0b5394; } p, ul { max-width: 62em; font-size: 0.88em; color: #333; }
"""


def render_html(blocks: list[tuple]) -> str:
    body = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{escape(content)}</{kind}>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in content) + "</ul>")
        else:
            text_css = [' class="text"' if i < content.text_columns else "" for i in range(len(content.header))]
            rows = [
                "<tr>" + "".join(f"<th{css}>{escape(h)}</th>" for h, css in zip(content.header, text_css)) + "</tr>"
            ]
            for cells, row_class in zip(content.rows, content.row_classes):
                tds = "".join(
                    f"<td{css}>{f'<strong>{escape(t)}</strong>' if best else escape(t)}</td>"
                    for (t, best), css in zip(cells, text_css)
                )
                rows.append(f'<tr class="{escape(row_class)}">{tds}</tr>')
            body.append("<table>\n" + "\n".join(rows) + "\n</table>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Results</title>'
        f"<style>{HTML_STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def render_tsv(table: pd.DataFrame, published: pd.DataFrame) -> str:
    """The model rows, then the published rows: plain numbers, empty cells where a value is missing."""
    return pd.concat([table, published], ignore_index=True).to_csv(
        sep="\t", index=False, float_format="%.6g", na_rep=""
    )
