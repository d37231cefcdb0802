"""The benchmark across data sets: one table of every model on every configured data set (config benchmark.datasets).

Reads each data set's results table (``summary.tsv`` of the final setting: results/ for rsc15, results/<dataset>/
for another set), given with its data source record and its registry entry (``data/datasets/registry.py``), and
writes
- ``table.tsv``: one row per model and data set (recall@20, MRR@20, their standard deviations over repeated runs,
  the data's fingerprint), then the official implementation's published figures, kind ``published``;
- ``table.md`` and ``table.html``: a table per metric, rows the models, columns the data sets, the best model of
  each data set in bold, and below the models the official implementation's published figures on the real data.

The published figures (``data/datasets/registry.py``) are those of each set's best official setting: cross-entropy
on Rees46 and Yoochoose, BPR-max on the others; rsc15's are measured with the yoochoose protocol.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_outputs
from gru4rec_pipeline.names import BASELINES, LOSSES, ORACLE, TUNED_SUFFIX
from gru4rec_pipeline.report.published import OFFICIAL_SOURCES, official_entries, official_id
from gru4rec_pipeline.report.render import render_html, render_markdown
from gru4rec_pipeline.report.tables import Table, format_metric, metric_label

log = logging.getLogger(__name__)

METRICS = ("recall@20", "mrr@20")
PUBLISHED_KIND = "published"
# The published rows' labels: where each figure was published (report/published.py).
PUBLISHED_LABELS = {official_id(origin): f"published: {source}" for origin, source in OFFICIAL_SOURCES.items()}


def read_results(name: str, summary_path: str | Path) -> pd.DataFrame:
    """Data set ``name``'s model rows: its summary.tsv without the published rows."""
    try:
        table = pd.read_csv(summary_path, sep="\t", dtype={"data": str})
    except FileNotFoundError:
        raise DataFormatError(
            summary_path, f"not found: run data set {name} first (snakemake --cores N --config dataset={name})"
        ) from None
    missing = [column for column in ("model", "kind", *METRICS) if column not in table.columns]
    if missing:
        raise DataFormatError(
            summary_path, f"missing columns {missing}; expected a results table evaluated at cut-off 20"
        )
    models = table[~table["kind"].astype(str).str.startswith(PUBLISHED_KIND)].copy()
    models.insert(0, "dataset", name)
    return models


def _model_order(model: str, kind: str) -> tuple:
    base = model.removesuffix(TUNED_SUFFIX)
    order = {"gru4rec": (0, LOSSES), "baseline": (1, BASELINES), "oracle": (2, (ORACLE,))}
    rank, names = order.get(kind, (3, ()))
    return (rank, names.index(base) if base in names else len(names), model != base, model)


@dataclass(frozen=True)
class DatasetResults:
    """A data set's column: its model rows, its data source record (a dict, as results/data/source.json holds it)
    and its registry entry (a ``data.datasets.registry.Dataset``)."""

    models: pd.DataFrame
    source: dict
    spec: object

    @property
    def synthetic(self) -> bool:
        return "preset" in self.source


def benchmark_rows(results: dict[str, DatasetResults]) -> pd.DataFrame:
    """One row per model and data set, then the published rows of each data set (kind ``published``)."""
    columns = ["dataset", "model", "kind", *METRICS, *(f"{m}_std" for m in METRICS), "runs", "data"]
    frames = []
    for name, result in results.items():
        frame = result.models.reindex(columns=columns)
        frame["data"] = result.source.get("fingerprint", "")
        frames.append(frame)
        published = [
            {"dataset": name, "model": entry["id"], "kind": PUBLISHED_KIND, "recall@20": entry["recall"][20],
             "mrr@20": entry["mrr"][20]}
            for entry in official_entries(result.spec)
        ]  # fmt: skip
        frames.append(pd.DataFrame(published).reindex(columns=columns))
    return pd.concat(frames, ignore_index=True)


def _cell(row: pd.Series | None, metric: str) -> str:
    if row is None or pd.isna(row[metric]):
        return "–"
    text = format_metric(row[metric])
    if not pd.isna(row.get(f"{metric}_std", math.nan)):
        text += f" ± {row[f'{metric}_std']:.4f}"
    return text


def metric_table(rows: pd.DataFrame, metric: str, names: list[str], headers: list[str]) -> Table:
    """Rows the models (then the published figures), columns the data sets; each data set's best model in bold
    (the oracle is an upper bound and never counts as best)."""
    models = rows[rows["kind"] != PUBLISHED_KIND]
    competing = models[models["kind"] != ORACLE]
    best = {name: competing.loc[competing["dataset"] == name, metric].round(4).max() for name in names}
    order = sorted({(m, k) for m, k in zip(models["model"], models["kind"])}, key=lambda mk: _model_order(*mk))
    indexed = {(r["dataset"], r["model"]): r for _, r in rows.iterrows()}
    table_rows, classes = [], []
    for model, kind in [*order, *((model, PUBLISHED_KIND) for model in PUBLISHED_LABELS)]:
        label = PUBLISHED_LABELS.get(model, model)
        cells = [(label, False), (kind, False)]
        for name in names:
            row = indexed.get((name, model))
            is_best = row is not None and kind not in (ORACLE, PUBLISHED_KIND) and round(row[metric], 4) == best[name]
            cells.append((_cell(row, metric), bool(is_best)))
        table_rows.append(cells)
        classes.append(kind)
    return Table(["Model", "Kind", *headers], table_rows, classes, text_columns=2)


def benchmark_blocks(rows: pd.DataFrame, results: dict[str, DatasetResults]) -> list[tuple]:
    names = list(results)
    synthetic = {name for name, result in results.items() if result.synthetic}
    headers = [f"{name} (synthetic)" if name in synthetic else name for name in names]
    blocks: list[tuple] = [("h1", "Benchmark across data sets")]
    blocks.append(
        (
            "p",
            "Recall@20 and MRR@20 of every model on each data set (final setting: trained on train_full, evaluated "
            "on test); every set other than rsc15 read, cut and split as the GRU4Rec authors' scripts do, rsc15 "
            "with its configured protocol. Best model per data set in bold. Below the models: the official GRU4Rec "
            "implementation's published figures, measured on the REAL data sets with each set's best official "
            "setting (cross-entropy on rees46 and rsc15, BPR-max on the others; rsc15's with the yoochoose "
            "protocol, protocol.preset: yoochoose).",
        )
    )
    blocks.append(("list", [f"{name}: {result.source.get('description', '')}" for name, result in results.items()]))
    if synthetic:
        blocks.append(
            (
                "p",
                f"{', '.join(sorted(synthetic))}: synthetic raw files in the set's format; compare the models with "
                "each other there, not with the published figures.",
            )
        )
    for metric in METRICS:
        blocks += [("h2", metric_label(metric)), ("table", metric_table(rows, metric, names, headers))]
    return blocks


def write_benchmark_table(
    datasets: dict[str, tuple[str | Path, dict, object]],
    tsv_path: str | Path,
    md_path: str | Path,
    html_path: str | Path | None = None,
) -> pd.DataFrame:
    """The table of ``datasets`` (name -> its summary.tsv, its data source record and its registry entry, in column
    order), written as TSV, markdown and HTML together; returns its rows."""
    if not datasets:
        raise DataFormatError("<benchmark>", "no data sets given (config key benchmark.datasets)")
    results = {
        name: DatasetResults(read_results(name, summary), source, spec)
        for name, (summary, source, spec) in datasets.items()
    }
    rows = benchmark_rows(results)
    blocks = benchmark_blocks(rows, results)
    texts = {
        Path(tsv_path): rows.to_csv(sep="\t", index=False, float_format="%.6g", na_rep=""),
        Path(md_path): render_markdown(blocks),
    }
    if html_path is not None:
        texts[Path(html_path)] = render_html(blocks)
    with atomic_outputs() as staged:
        for path, text in texts.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.temporary(path).write_text(text, encoding="utf-8")
    log.info("benchmark table of %d data sets written to %s", len(results), md_path)
    return rows
