"""The day-by-day evaluation: every (strategy, day) of the tiny preset, and the predictions a model cannot make."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from conftest import TINY, copy_workflow, run_snakemake
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.evaluation.rolling import evaluate_day
from gru4rec_pipeline.names import ROLLING_STRATEGIES
from gru4rec_pipeline.report.rolling import rolling_table
from test_retrain import clicks_frame, trained_parent


def test_unknown_targets_count_as_misses(tmp_path):
    parent = trained_parent(tmp_path, clicks_frame())
    known = clicks_frame(n_sessions=60, start=1e5, seed=4)
    # The same day with as many sessions again of items the model never saw.
    unknown = clicks_frame(n_sessions=60, items=range(700, 720), start=2e5, seed=5)
    known.to_parquet(tmp_path / "known.parquet")
    pd.concat([known, unknown]).to_parquet(tmp_path / "mixed.parquet")
    args = (parent / "model.pt", parent / "vocab.parquet")
    alone = evaluate_day(*args, tmp_path / "known.parquet", tmp_path / "a.json", "frozen", 2, device="cpu")
    mixed = evaluate_day(*args, tmp_path / "mixed.parquet", tmp_path / "b.json", "frozen", 2, device="cpu")
    share = alone["predictions"] / mixed["predictions"]
    assert alone["coverage"] == 1.0 and mixed["coverage"] == pytest.approx(share)
    assert mixed["recall"]["20"] == pytest.approx(alone["recall"]["20"] * share)
    assert mixed["train_seconds"] == 0.0 and json.loads((tmp_path / "b.json").read_text())["day"] == 2


def rolling_record(path, strategy: str, day: int, cutoffs) -> str:
    record = {"strategy": strategy, "day": day, "coverage": 1.0, "train_seconds": 1.0, "items": 5}
    record.update(recall={str(k): k / 100 for k in cutoffs}, mrr={str(k): k / 200 for k in cutoffs})
    path.write_text(json.dumps(record))
    return str(path)


def test_the_rolling_table_shows_recall_at_20_or_else_the_largest_cut_off(tmp_path):
    with_20 = [rolling_record(tmp_path / f"{s}.json", s, 1, [1, 5, 20, 50]) for s in ROLLING_STRATEGIES]
    assert list(rolling_table(with_20).columns[2:4]) == ["recall@20", "mrr@20"]
    without = [rolling_record(tmp_path / f"{s}.json", s, 1, [5, 10]) for s in ROLLING_STRATEGIES]
    assert rolling_table(without)["recall@10"].tolist() == [0.1, 0.1, 0.1]
    with pytest.raises(DataFormatError, match=r"scratch\.json.*no recall@20.*5, 10 \(evaluation\.cutoffs\)"):
        rolling_table(without, cutoff=20)


@pytest.mark.slow
def test_rolling_evaluation_of_the_tiny_preset(tmp_path):
    # Cut-offs without 20: the table and figure show the largest configured (recall@10)
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "rolling.yaml").write_text(
        "rolling:\n  run: [bpr_max]\n  days: 2\n  epochs_warm: 1\nevaluation:\n  cutoffs: [1, 5, 10]\n"
    )
    run_snakemake(workdir, "results/rolling/bpr_max.tsv", "--cores", "2", *TINY, "rolling.yaml")
    table = pd.read_csv(workdir / "results" / "rolling" / "bpr_max.tsv", sep="\t")
    assert list(table.columns[2:4]) == ["recall@10", "mrr@10"] and (table["recall@10"] > 0).all()
    assert sorted(zip(table["strategy"], table["day"])) == sorted((s, d) for s in ROLLING_STRATEGIES for d in (1, 2))
    rows = table.set_index(["strategy", "day"])
    day_one = Vocabulary.load(workdir / "results" / "rolling" / "sessions" / "day_1" / "vocab.parquet").n_items
    assert (rows.loc["frozen", "items"] == day_one).all()
    # Day 1's warm and frozen models are scratch's; later, frozen trains nothing and warm far less than scratch.
    for strategy in ("warm", "frozen"):
        assert rows.loc[(strategy, 1)].equals(rows.loc[("scratch", 1)])
    assert rows.loc[("frozen", 2), "train_seconds"] == 0.0
    assert 0 < rows.loc[("warm", 2), "train_seconds"] < rows.loc[("scratch", 2), "train_seconds"]
    summary = (workdir / "results" / "rolling" / "bpr_max.md").read_text()
    assert (
        "Mean over 2 days" in summary
        and "mean recall@10" in summary
        and (workdir / "results" / "rolling" / "bpr_max.png").stat().st_size > 0
    )
    record = json.loads((workdir / "results" / "rolling" / "bpr_max" / "warm" / "day_2" / "training.json").read_text())
    assert record["retrained_from"]["clicks"] == "results/rolling/days/day_1.parquet"


def rolling_overlay(workdir, text: str) -> tuple[str, ...]:
    (workdir / "rolling.yaml").write_text(text + "\n")
    return (*TINY, "rolling.yaml")


@pytest.mark.slow
def test_lowering_rolling_days_splits_the_days_again(tiny_run, tmp_path):
    """3 days, then 2: the split reruns, and its days are the last two of the data (not the first two of three)."""
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    days_folder = workdir / "results" / "rolling" / "days"
    run_snakemake(
        workdir, "results/rolling/days/days.json", "--cores", "2", *rolling_overlay(workdir, "rolling: {days: 3}")
    )
    three = json.loads((days_folder / "days.json").read_text())["days"]
    last_of_three = pd.read_parquet(days_folder / "day_3.parquet")
    run_snakemake(
        workdir, "results/rolling/days/days.json", "--cores", "2", *rolling_overlay(workdir, "rolling: {days: 2}")
    )
    two = json.loads((days_folder / "days.json").read_text())["days"]
    assert [day["day"] for day in two] == [1, 2]
    assert [(day["start"], day["end"]) for day in two] == [(day["start"], day["end"]) for day in three[1:]]
    assert pd.read_parquet(days_folder / "day_2.parquet").equals(last_of_three)


@pytest.mark.slow
def test_a_rolling_day_giving_too_few_predictions_is_refused_naming_it(tiny_run, tmp_path):
    """Every day is a test set: limits.min_test_predictions applies to each, as to the test split."""
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = rolling_overlay(workdir, "rolling: {days: 2}\nlimits: {min_test_predictions: 100000}")
    result = run_snakemake(workdir, "results/rolling/days/days.json", "--cores", "2", *config, check=False)
    log = (workdir / "logs" / "split_rolling_days" / "split_rolling_days.log").read_text()
    assert result.returncode != 0
    assert "rolling day 1 of 2 (" in log and "fewer than limits.min_test_predictions=100000" in log, log[-2000:]
    assert not (workdir / "results" / "rolling" / "days").exists()
