"""The window preset's results table: per model, recall@k, MRR@k and NDCG@k averaged over the slices, and each
slice's recall and MRR.

Reads the metrics JSON of every model on every slice (``results/window/{slice}/metrics/{name}.json``) and
writes ``results/window/summary.tsv`` and ``summary.md``: one row per model, in the order the main summary
uses (losses, then baselines), the mean at every cut-off (NDCG where the metrics files have it), then
``recall@k`` / ``mrr@k`` of each slice at the headline cut-off k (names.headline_cutoff: 20 when
evaluation.cutoffs has it, else the largest).
The markdown names the data set the metrics files name (``data``: results/data/source.json's record).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_outputs, read_json
from gru4rec_pipeline.names import ACCURACY_METRICS, BASELINES, LOSSES, headline_cutoff


def window_table(metrics_paths) -> pd.DataFrame:
    rows = []
    for path in metrics_paths:
        path = Path(path)
        record = read_json(path, "metrics of a window slice")
        if "recall" not in record or "model" not in record:
            raise DataFormatError(path, "expected a metrics record with model, recall and mrr")
        rows.append({"model": record["model"], "slice": int(path.parent.parent.name), **_flat(record)})
    if not rows:
        raise DataFormatError("<window metrics>", "no metrics files given")
    long = pd.DataFrame(rows)
    order = {name: i for i, name in enumerate([*LOSSES, *BASELINES])}
    metrics = [column for column in long.columns if column not in ("model", "slice")]
    table = long.groupby("model")[metrics].mean()
    table.insert(0, "slices", long.groupby("model")["slice"].nunique())
    k = headline_cutoff(column.split("@")[1] for column in metrics if column.startswith("recall@"))
    for slice_id in sorted(long["slice"].unique()):
        of_slice = long[long["slice"] == slice_id].set_index("model")
        for metric in (f"recall@{k}", f"mrr@{k}"):
            if metric in of_slice:
                table[f"{metric} slice {slice_id}"] = of_slice[metric]
    table = table.reset_index()
    return table.sort_values("model", key=lambda names: names.map(lambda n: order.get(n, len(order)))).reset_index(
        drop=True
    )


def _flat(record: dict) -> dict:
    values = {}
    for metric in ACCURACY_METRICS:
        for cutoff, value in (record.get(metric) or {}).items():
            values[f"{metric}@{cutoff}"] = value
    return values


def dataset_line(metrics_paths) -> str:
    """The data set the metrics files name, or each of them where they differ."""
    named = set()
    for path in metrics_paths:
        data = read_json(path, "metrics of a window slice").get("data")
        named.add(str(data.get("description")) if isinstance(data, dict) else "data not recorded")
    named = sorted(named)
    return named[0] if len(named) == 1 else "the slices' metrics name different data: " + "; ".join(named)


def write_window_summary(metrics_paths, tsv_path, md_path) -> pd.DataFrame:
    table = window_table(metrics_paths)
    dataset = dataset_line(metrics_paths)
    with atomic_outputs() as staged:
        table.to_csv(staged.temporary(tsv_path), sep="\t", index=False, float_format="%.4f")
        header = "| " + " | ".join(table.columns) + " |\n| " + " | ".join("---" for _ in table.columns) + " |\n"
        lines = [
            "| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in table.itertuples(index=False)
        ]
        staged.temporary(md_path).write_text(
            "# Results over session-rec's sliding windows (mean over slices, then each slice)\n\n"
            + f"Dataset: {dataset}.\n\n"
            + header
            + "\n".join(lines)
            + "\n"
        )
    return table
