"""The documented configurations that no other test runs end to end, through `snakemake` on the tiny preset, each in
a copy of the finished tiny run (whose data stages it reuses where it shares them):

- the tuning setting, every model and baseline (the oracle included), beside the final setting's results;
- two named runs (`run: NAME`) beside the default run: the yoochoose preset trained by two processes, and a click
  log of one's own with string ids (`own_data.ids: map`) and ISO-8601 times;
- the window preset;
- a final model retrained on new clicks (`retrain.clicks`).

Run elsewhere: the final setting (conftest's tiny_run, test_workflow.py), `replicates: 2`
(test_results_workflow.py), a study of 4 trials and its tuned model retrained (conftest's tuned_run,
test_tuning_workflow.py), the day-by-day evaluation (test_rolling.py), two processes on SLURM (test_slurm.py).
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from conftest import LOSSES, REPORT_RULES, planned_jobs, rules_of, run_snakemake, with_overlays
from gru4rec_pipeline import names

pytestmark = pytest.mark.slow

BASELINES = [*names.BASELINES, names.ORACLE]
# Trainings of one epoch where a test checks what a configuration wires, not what a training learns.
ONE_EPOCH = "training: {losses: {%s}}\n" % ", ".join(f"{loss}: {{epochs: 1}}" for loss in LOSSES)
EVALUATIONS_ON_VALID = {"evaluate_model_on_valid", "evaluate_baseline_on_valid", "evaluate_oracle_on_valid"}


def copy_of(run: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "copy"
    shutil.copytree(run, workdir, symlinks=True)
    return workdir


def planned_files(workdir: Path, *args: str, config: tuple[str, ...]) -> set[str]:
    """Every output, log and benchmark file a dry run would write."""
    result = run_snakemake(workdir, "--dry-run", "--cores", "2", *args, *config)
    files = set()
    for line in result.stdout.splitlines():
        match = re.match(r"^\s+(output|log|benchmark): (.*)$", line)
        if match:
            files.update(path.strip() for path in match.group(2).split(","))
    return files


def test_the_tuning_setting_runs_every_model_and_baseline_beside_the_final_results(tiny_run: Path, tmp_path: Path):
    workdir = copy_of(tiny_run, tmp_path)
    results = workdir / "results"
    final = {path: path.read_bytes() for path in [results / "recall_bpr.txt", results / "summary.tsv"]}
    tuning = (*with_overlays(workdir, one_epoch=ONE_EPOCH), "--config", "setting=tuning")
    printed = run_snakemake(workdir, "--cores", "2", *tuning).stdout

    for name in [*LOSSES, *BASELINES]:
        record = json.loads((results / "metrics" / "tuning" / f"{name}.json").read_text())
        assert record["events"] > 0 and (results / "tuning" / f"recall_{name}.txt").exists(), name
    summary = pd.read_csv(results / "tuning" / "summary.tsv", sep="\t")
    assert set(summary["model"]) >= {*LOSSES, *BASELINES}
    assert "evaluated on valid" in (results / "tuning" / "summary.md").read_text()
    assert (results / "tuning" / "plots" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    # The run ends with the setting's table on the terminal, a line per model.
    table = printed.split("Results (results/tuning/summary.tsv; more in results/tuning/summary.md):")[1]
    assert {line.split()[0] for line in table.splitlines() if line.strip()} >= {*LOSSES, *BASELINES}
    # The final setting's results and report are as they were, and neither setting reruns the other's jobs.
    assert {path: path.read_bytes() for path in final} == final
    assert planned_jobs(workdir) == Counter()
    assert planned_jobs(workdir, config=tuning) == Counter()

    # The ranking code computes every recall and MRR: each of the tuning setting's evaluations runs again.
    ranking = workdir / "src" / "gru4rec_pipeline" / "evaluation" / "ranking.py"
    ranking.write_text(ranking.read_text() + "\n# an edit to the ranking code\n")
    jobs = rules_of(planned_jobs(workdir, config=tuning))
    assert jobs["evaluate_model_on_valid"] == len(LOSSES), jobs
    assert jobs["evaluate_baseline_on_valid"] == len(names.BASELINES) and jobs["evaluate_oracle_on_valid"] == 1
    assert not {"evaluate_model", "evaluate_baseline", "evaluate_oracle"} & set(jobs), jobs


def test_two_named_runs_write_only_their_own_folders_and_rerun_nothing_of_another(tiny_run: Path, tmp_path: Path):
    """Beside the default run, in one copy of it:
    - the run `yoochoose`: the yoochoose preset (yoochoose-test.dat's clicks added, the test split of the last day's
      sessions), its models trained by two processes;
    - the run `own`: the tiny clicks as a log of one's own, with string session and item ids, renamed columns and
      ISO-8601 times (own_data, ids: map): the same protocol splits, a map of the item ids, a trained model.
    Each writes below results/runs/NAME/ (logs and benchmarks likewise); the second touches none of the first's
    files, and afterwards none of the three runs has anything to redo."""
    workdir = copy_of(tiny_run, tmp_path)
    yoochoose = with_overlays(
        workdir, yoochoose="run: yoochoose\nprotocol: {preset: yoochoose}\ntraining: {processes: 2}\n"
    )
    yoochoose_targets = ["results/runs/yoochoose/recall_bpr_max.txt", "results/runs/yoochoose/recall_pop.txt"]
    clicks = pd.read_parquet(tiny_run / "results" / "data" / "clicks.parquet")
    iso = pd.to_datetime(clicks["Time"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    own_clicks = pd.DataFrame(
        {"visit": "v" + clicks["SessionId"].astype(str), "product": "sku-" + clicks["ItemId"].astype(str)}
    )
    own_clicks["when"] = iso
    own_clicks.to_csv(workdir / "my_clicks.csv", index=False)
    own = with_overlays(
        workdir,
        own=(
            "run: own\nown_data: {path: my_clicks.csv, session_column: visit, item_column: product, "
            "time_column: when, time_format: iso, ids: map}\n"
        ),
    )
    own_targets = ["results/runs/own/recall_bpr_max.txt"]

    for name, targets, config in [("yoochoose", yoochoose_targets, yoochoose), ("own", own_targets, own)]:
        before = {path: path.stat().st_mtime_ns for path in (workdir / "results").rglob("*") if path.is_file()}
        planned = planned_files(workdir, *targets, config=config)
        folders = tuple(f"{root}/runs/{name}/" for root in ("results", "logs", "benchmarks"))
        assert planned and not [path for path in planned if not path.startswith(folders)], sorted(planned)
        run_snakemake(workdir, *targets, "--cores", "2", *config)
        after = {path: path.stat().st_mtime_ns for path in (workdir / "results").rglob("*") if path.is_file()}
        assert {path: after[path] for path in before} == before, name

    run = workdir / "results" / "runs" / "yoochoose"
    assert json.loads((run / "data" / "stats.json").read_text())["preset"] == "yoochoose"
    assert (run / "data" / "test_clicks.parquet").exists()
    assert json.loads((run / "models" / "final" / "bpr_max" / "training.json").read_text())["processes"] == 2
    for name in ("bpr_max", "pop"):
        assert "Recall@20:" in (run / f"recall_{name}.txt").read_text()
    assert (workdir / "logs" / "runs" / "yoochoose" / "train_model" / "final" / "bpr_max.log").exists()

    run = workdir / "results" / "runs" / "own"
    reference = json.loads((tiny_run / "results" / "data" / "stats.json").read_text())
    assert json.loads((run / "data" / "stats.json").read_text())["splits"] == reference["splits"]
    items = pd.read_parquet(run / "data" / "clicks.item_map.parquet")["Original"]
    assert set(items) == set(own_clicks["product"])
    assert "# data: own click log my_clicks.csv" in (run / "recall_bpr_max.txt").read_text()

    # Going back and forth between the three reruns nothing.
    assert planned_jobs(workdir) == Counter()
    assert planned_jobs(workdir, *yoochoose_targets, config=yoochoose) == Counter()
    assert planned_jobs(workdir, *own_targets, config=own) == Counter()


def test_the_window_preset_trains_and_evaluates_every_slice(tiny_run: Path, tmp_path: Path):
    """Two slices of 10 training days and 2 test days within the tiny preset's 30 days, every loss (one epoch) and
    the popularity baseline on each; the protocol's other splits stay as they were."""
    workdir = copy_of(tiny_run, tmp_path)
    window = "{slices: 2, days_train: 10, days_test: 2, days_shift: 12, days_offset: 2}"
    config = with_overlays(
        workdir,
        window=f"protocol: {{preset: window, window: {window}}}\nbaselines: {{run: [pop]}}\n",
        one_epoch=ONE_EPOCH,
    )
    jobs = rules_of(planned_jobs(workdir, config=config))
    assert jobs["train_model_window"] == 2 * len(LOSSES) and jobs["evaluate_baseline_window"] == 2, jobs
    assert not {"split_sessions", "train_model", "evaluate_model"} & set(jobs), jobs
    printed = run_snakemake(workdir, "--cores", "2", *config).stdout

    summary = pd.read_csv(workdir / "results" / "window" / "summary.tsv", sep="\t")
    assert set(summary["model"]) >= {*LOSSES, "pop"}
    # The run ends with the mean over the slices of each model on the terminal.
    table = printed.split("Results (results/window/summary.tsv; more in results/window/summary.md):")[1]
    rows = [line.split() for line in table.splitlines() if line.strip()]
    assert rows[0] == ["Model", "Slices", "Recall@20", "MRR@20", "NDCG@20"]
    assert rows[1:] == [
        [row.model, "2", f"{row['recall@20']:.4f}", f"{row['mrr@20']:.4f}", f"{row['ndcg@20']:.4f}"]
        for _, row in summary.iterrows()
    ]
    for slice_ in ("0", "1"):
        assert "Recall@20:" in (workdir / "results" / "window" / slice_ / "recall_bpr_max.txt").read_text()
    assert planned_jobs(workdir, config=config) == Counter()


def test_a_final_model_is_retrained_on_new_clicks(tiny_run: Path, tmp_path: Path):
    workdir = copy_of(tiny_run, tmp_path)
    config = with_overlays(workdir, retrain="retrain: {clicks: results/data/test.parquet}\n")
    target = "results/retrained/bpr_max/training.json"
    jobs = planned_jobs(workdir, target, config=config)
    assert {job for job in jobs if job[0] not in REPORT_RULES} == {("retrain_model", "loss=bpr_max")}, jobs
    run_snakemake(workdir, target, "--cores", "2", *config)
    retrained = workdir / "results" / "retrained" / "bpr_max"
    history = pd.read_csv(retrained / "history.csv")
    assert len(history) == 1 and (retrained / "model.pt").exists() and (retrained / "vocab.parquet").exists()
