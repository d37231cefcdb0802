"""Repeated runs and significance in the results table.

- :func:`aggregate_runs`: one row per model from its runs (replicates with seeds seed, seed+1, ...): every metric
  column becomes the mean over the runs, with ``{metric}_std`` (sample standard deviation, 0 for one run) beside
  it, and ``runs`` counts them. A table where every model ran once is left as it is.
- :func:`not_worse_than_best`: from ``results/significance.tsv``, per metric, the models not significantly worse
  than the best one (adjusted p at least 0.05 against it, event by event; the oracle never counts as best).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gru4rec_pipeline.errors import DataFormatError

SIGNIFICANCE_LEVEL = 0.05
SIGNIFICANCE_NEEDS = ("model_a", "model_b", "metric", "unit", "p_adjusted")


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The per-cut-off metric columns (recall@k, mrr@k, coverage@k, popularity@k)."""
    return [column for column in table.columns if "@" in column and not column.endswith(("_std", "_not_worse"))]


def aggregate_runs(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model: metrics averaged over its runs, ``_std`` beside each and ``runs``."""
    if not table["model"].duplicated().any():
        return table
    metrics = metric_columns(table)
    grouped = table.groupby("model", sort=False)
    first = grouped.first().reset_index()
    first[metrics] = grouped[metrics].mean().reset_index(drop=True)
    spread = grouped[metrics].std(ddof=1).fillna(0.0).reset_index(drop=True)
    columns = list(first.columns[: first.columns.get_loc("description") + 1])
    result = first[columns].copy()
    result["runs"] = grouped.size().to_numpy()
    for column in metrics:
        result[column] = first[column]
        result[f"{column}_std"] = spread[column]
    rest = [column for column in first.columns if column not in result.columns]
    return pd.concat([result, first[rest]], axis=1)


def read_significance(path: str | Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, sep="\t")
    except FileNotFoundError:
        raise DataFormatError(path, "significance table not found; the compare_models step writes it") from None
    missing = [column for column in SIGNIFICANCE_NEEDS if column not in table.columns]
    if missing:
        raise DataFormatError(path, f"missing columns {missing}; the compare_models step writes this file")
    return table


def not_worse_than_best(table: pd.DataFrame, significance: pd.DataFrame) -> dict[str, set[str]]:
    """Per compared metric, the models whose difference from the best model is not significant."""
    events = significance[significance["unit"] == "events"]
    competing = table[table["kind"] != "oracle"]
    marks = {}
    for metric in sorted(set(events["metric"])):
        if metric not in competing or competing[metric].isna().all():
            continue
        best = competing.loc[competing[metric].idxmax(), "model"]
        against = events[(events["metric"] == metric) & (events["model_a"] == best)]
        tied = set(against.loc[against["p_adjusted"] >= SIGNIFICANCE_LEVEL, "model_b"])
        marks[metric] = ({best} | tied) & set(competing["model"])
    return marks


def mark_not_worse(table: pd.DataFrame, marks: dict[str, set[str]]) -> pd.DataFrame:
    """``{metric}_not_worse`` columns (True / False) beside each compared metric."""
    table = table.copy()
    for metric, models in marks.items():
        position = table.columns.get_loc(metric) + 1
        if f"{metric}_std" in table.columns:
            position += 1
        table.insert(position, f"{metric}_not_worse", table["model"].isin(models))
    return table
