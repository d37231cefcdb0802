"""The results table: every trained loss, the baselines and the oracle side by side.

Reads the ``results/metrics/{name}.json`` files the evaluate stages write and produces
- ``summary.tsv``: machine-readable, one row per model, plain numbers;
- ``summary.md``:  the same table for people, with the published RSC15 figures and provenance;
- ``summary.html`` (optional): the markdown content as a page, shown in the Snakemake report.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import DataFormatError

log = logging.getLogger(__name__)

# Row order: the losses in the order the papers introduce them, then the baselines, then the oracle.
LOSS_ORDER = ["ce_full", "ce_sampled", "bpr", "bpr_max", "top1", "top1_max"]
BASELINE_ORDER = ["pop", "spop", "itemknn"]
KIND_ORDER = {"gru4rec": 0, "baseline": 1, "oracle": 2}

MODEL_DESCRIPTIONS = {
    "ce_full": "GRU4Rec, cross-entropy over all items",
    "ce_sampled": "GRU4Rec, cross-entropy over sampled negatives",
    "bpr": "GRU4Rec, BPR",
    "bpr_max": "GRU4Rec, BPR-max",
    "top1": "GRU4Rec, TOP1",
    "top1_max": "GRU4Rec, TOP1-max",
    "pop": "Most popular items in training",
    "spop": "Most popular in the session, then in training",
    "itemknn": "Item-to-item co-occurrence (cosine)",
    "oracle": "Knows the generating process (upper bound)",
}

TIMING_KEYS = ["train_seconds", "train_events_per_s", "eval_seconds", "eval_events_per_s"]

# Figures published for the REAL RSC15 data (train_full / test of the original preprocessing).
# They are a reference for runs on the full dataset only: synthetic or subsampled data give
# different numbers by construction.
PUBLISHED_RSC15 = [
    {
        "id": "official_pytorch_xe",
        "source": "GRU4Rec, official PyTorch implementation (README results table)",
        "setting": "cross-entropy, 100 units, 2048 extra negatives",
        "recall": {1: 0.1845, 5: 0.4906, 10: 0.6218, 20: 0.7283},
        "mrr": {1: 0.1845, 5: 0.2954, 10: 0.3130, 20: 0.3205},
    },
    {
        "id": "hidasi2018_bpr_max",
        "source": "Hidasi & Karatzoglou, CIKM 2018 (original code, examples/rsc15)",
        "setting": "BPR-max, 100 units, 2048 extra negatives",
        "recall": {20: 0.7197},
        "mrr": {20: 0.3157},
    },
    {
        "id": "paddle_ce_full",
        "source": "PaddlePaddle GRU4Rec port",
        "setting": "cross-entropy over all items",
        "recall": {20: 0.67},
        "mrr": {},
    },
    {
        "id": "paddle_bpr_sampled",
        "source": "PaddlePaddle GRU4Rec port",
        "setting": "BPR with sampled negatives",
        "recall": {20: 0.606},
        "mrr": {},
    },
    {
        "id": "paddle_ce_sampled",
        "source": "PaddlePaddle GRU4Rec port",
        "setting": "cross-entropy with sampled negatives",
        "recall": {20: 0.605},
        "mrr": {},
    },
]
PUBLISHED_NOTE = (
    "Reported by the sources below for the full real RSC15 data (train_full / test of the original "
    "preprocessing). They are comparable to the table above only when the pipeline ran on the full real "
    "dataset with the same protocol; runs on synthetic, subsampled or other data give different numbers "
    "by construction."
)


def _cutoff_key(value: Any) -> int:
    return int(value)


def load_metrics(paths: list[str | Path]) -> list[dict]:
    """Read metrics files; each needs ``model``, ``recall`` and ``mrr`` (by cut-off)."""
    records = []
    for path in paths:
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataFormatError(path, "metrics file does not exist") from None
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
        if not isinstance(record, dict):
            raise DataFormatError(path, "expected a JSON object with keys model, recall, mrr")
        for key in ("model", "recall", "mrr"):
            if key not in record:
                raise DataFormatError(path, f"missing key '{key}' (expected model, recall, mrr)")
        for key in ("recall", "mrr"):
            if not isinstance(record[key], dict):
                raise DataFormatError(path, f"'{key}' must map cut-offs to values, found {type(record[key]).__name__}")
            try:
                record[key] = {_cutoff_key(k): float(v) for k, v in record[key].items()}
            except (TypeError, ValueError):
                raise DataFormatError(path, f"'{key}' must map integer cut-offs to numbers") from None
        record["_source"] = str(path)
        records.append(record)
    return records


def _sort_key(record: dict) -> tuple:
    name = record["model"]
    kind = record.get("kind", "gru4rec")
    order = LOSS_ORDER if kind == "gru4rec" else BASELINE_ORDER
    position = order.index(name) if name in order else len(order)
    return (KIND_ORDER.get(kind, len(KIND_ORDER)), position, name)


def all_cutoffs(records: list[dict]) -> list[int]:
    cutoffs: set[int] = set()
    for record in records:
        cutoffs.update(record["recall"])
        cutoffs.update(record["mrr"])
    return sorted(cutoffs)


def summary_table(records: list[dict]) -> pd.DataFrame:
    """One row per model: recall@k and MRR@k for every cut-off, training and evaluation cost.

    Missing values (a baseline has no epochs, a model without some cut-off) are NaN.
    """
    cutoffs = all_cutoffs(records)
    rows = []
    for record in sorted(records, key=_sort_key):
        timings = record.get("timings") or {}
        name = record["model"]
        row = {
            "model": name,
            "kind": record.get("kind", "gru4rec"),
            "description": MODEL_DESCRIPTIONS.get(name, ""),
        }
        for k in cutoffs:
            row[f"recall@{k}"] = record["recall"].get(k, math.nan)
        for k in cutoffs:
            row[f"mrr@{k}"] = record["mrr"].get(k, math.nan)
        row["epochs"] = record.get("epochs", math.nan)
        for key in TIMING_KEYS:
            row[key] = timings.get(key, math.nan)
        row["eval_events"] = record.get("events", math.nan)
        row["tie_mode"] = record.get("tie_mode", "")
        row["device"] = record.get("device", "")
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in ["epochs", *TIMING_KEYS, "eval_events"]:
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def published_table(cutoffs: list[int]) -> pd.DataFrame:
    """The published RSC15 figures as rows with the same metric columns (NaN where not reported)."""
    rows = []
    for entry in PUBLISHED_RSC15:
        row = {"model": entry["id"], "kind": "published_rsc15", "description": f"{entry['source']}: {entry['setting']}"}
        for k in cutoffs:
            row[f"recall@{k}"] = entry["recall"].get(k, math.nan)
        for k in cutoffs:
            row[f"mrr@{k}"] = entry["mrr"].get(k, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def describe_dataset(config: dict) -> str:
    """One line naming the data and the split the models were trained and evaluated on."""
    own = (config.get("own_data") or {}).get("path")
    synthetic = config.get("synthetic") or {}
    if own:
        data = f"own click log {own}"
    elif config.get("clicks"):
        data = f"yoochoose clicks file {config['clicks']}"
    elif config.get("archive"):
        data = f"RSC15 archive {config['archive']}"
    elif config.get("source") == "download":
        data = "RSC15 (yoochoose-data.7z, downloaded)"
    else:
        data = f"synthetic yoochoose-format data (preset {synthetic.get('preset', '?')}, seed {synthetic.get('seed', '?')})"
    split = {"final": "trained on train_full, evaluated on test", "tuning": "trained on train_tr, evaluated on valid"}
    setting = config.get("setting")
    return f"{data}; {split[setting]}" if setting in split else data


def evaluated_event_counts(records: list[dict]) -> dict[str, int]:
    return {r["model"]: int(r["events"]) for r in records if isinstance(r.get("events"), (int, float))}


def shared_provenance(records: list[dict]) -> tuple[dict, list[str]]:
    """The provenance of the first record that has one, and the models whose provenance differs from it.

    Only the code and configuration identity is compared (commit, dirtiness, config hash);
    hostnames and times legitimately differ between stages.
    """
    identity_keys = ("git_commit", "git_dirty", "config_sha256")
    with_provenance = [r for r in records if isinstance(r.get("provenance"), dict)]
    if not with_provenance:
        return {}, []
    reference = with_provenance[0]["provenance"]
    differing = [
        r["model"]
        for r in with_provenance[1:]
        if any(r["provenance"].get(key) != reference.get(key) for key in identity_keys)
    ]
    return reference, differing


# ---------------------------------------------------------------- rendering for people
# The summary is a list of blocks, rendered once as markdown and once as HTML:
# ("h1" | "h2" | "p", text), ("list", [text, ...]), ("table", Table).


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


def accuracy_table(table: pd.DataFrame, cutoffs: list[int]) -> Table:
    """Recall and MRR per model; the best value of each metric among trained models and
    baselines is marked (the oracle is an upper bound and never counts as best)."""
    metric_columns = _metric_columns(cutoffs)
    competing = table[table["kind"] != "oracle"]
    best = {column: competing[column].round(4).max() for column, _ in metric_columns}
    rows = []
    for _, row in table.iterrows():
        cells = [(row["model"], False), (row["kind"], False)]
        for column, _ in metric_columns:
            value = row[column]
            is_best = not pd.isna(value) and row["kind"] != "oracle" and round(value, 4) == best[column]
            cells.append((format_metric(value), is_best))
        rows.append(cells)
    header = ["Model", "Kind", *[label for _, label in metric_columns]]
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
    return notes


def provenance_lines(context: dict) -> list[str]:
    provenance = context.get("provenance") or {}
    if not provenance:
        return ["No provenance recorded in the metrics files."]
    versions = provenance.get("versions") or {}
    lines = [
        f"Commit: {provenance.get('git_commit', 'unknown')} (uncommitted changes: {provenance.get('git_dirty', 'unknown')})",
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
    from html import escape

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


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_summary(
    metrics_paths: list[str | Path],
    tsv_path: str | Path,
    md_path: str | Path,
    html_path: str | Path | None = None,
    dataset: str | None = None,
) -> pd.DataFrame:
    """Build the summary from metrics files and write the TSV, markdown and (optionally) HTML."""
    records = load_metrics(metrics_paths)
    if not records:
        raise DataFormatError("<summary>", "no metrics files given")
    table = summary_table(records)
    cutoffs = all_cutoffs(records)
    published = published_table(cutoffs)
    provenance, differing = shared_provenance(records)
    context = {
        "dataset": dataset,
        "is_synthetic": bool((table["kind"] == "oracle").any()),
        "event_counts": evaluated_event_counts(records),
        "provenance": provenance,
        "provenance_differs": differing,
        "published_note": PUBLISHED_NOTE,
    }
    blocks = summary_blocks(table, published, cutoffs, context)
    # Everything is rendered before the first file is written: a failure leaves no partial set.
    texts = {
        Path(tsv_path): pd.concat([table, published], ignore_index=True).to_csv(
            sep="\t", index=False, float_format="%.6g", na_rep=""
        ),
        Path(md_path): render_markdown(blocks),
    }
    if html_path is not None:
        texts[Path(html_path)] = render_html(blocks)
    for path, text in texts.items():
        _write_atomically(path, text)
    log.info("summary of %d models written to %s and %s", len(table), tsv_path, md_path)
    return table


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("summary", help="table of recall/MRR for every model, with published RSC15 figures")
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics JSON files (results/metrics/*.json)")
    parser.add_argument("--tsv", required=True, help="output TSV (one row per model)")
    parser.add_argument("--md", required=True, help="output markdown")
    parser.add_argument("--html", help="also write the summary as an HTML page")
    parser.add_argument("--dataset", help="name of the dataset the models were evaluated on, shown in the heading")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    table = write_summary(args.metrics, args.tsv, args.md, args.html, args.dataset)
    print(Path(args.md).read_text())
    return 0 if len(table) else 1
