"""What reruns after a change, on a copy of the finished tiny run: exactly the affected jobs, nothing else.

Also: an interrupted training resumes from its last checkpoint, trainings share one machine without
oversubscribing it, and the generated archive is reused between workflow copies through the output cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import py7zr
import pytest
import yaml

from conftest import (
    LOSSES,
    REPO,
    REPORT_RULES,
    TINY,
    copy_workflow,
    planned_jobs,
    rules_of,
    run_snakemake,
    snakemake_command,
)
from gru4rec_pipeline import names

pytestmark = pytest.mark.slow

TINY_BPR_EPOCHS = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())["training"]["losses"]["bpr"]["epochs"]
DATA_RULES = {
    "synthesize_archive",
    "record_data_source",
    "extract_clicks",
    "clicks_to_parquet",
    "split_sessions",
    "build_sessions",
}


def with_overlay(workdir: Path, name: str, text: str) -> tuple[str, ...]:
    """Config options for the tiny preset plus an overlay file (nested keys cannot be set with --config,
    whose values inside a mapping stay strings)."""
    overlay = workdir / "config" / f"{name}.yaml"
    overlay.write_text(text)
    return (*TINY, str(overlay.relative_to(workdir)))


def assert_only(jobs: Counter, expected: Counter) -> None:
    """The plan holds exactly `expected` (rule, wildcards) jobs, plus the summarising rules."""
    other = Counter({job: n for job, n in jobs.items() if job[0] not in REPORT_RULES | {"all"}})
    assert other == expected, f"planned: {dict(jobs)}"


@pytest.fixture
def finished_run(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished tiny run (results, logs and Snakemake's metadata)."""
    workdir = tmp_path / "finished-run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    return workdir


def test_finished_run_has_nothing_to_do(finished_run: Path):
    assert_only(planned_jobs(finished_run), Counter())


def test_forcing_one_training_reruns_it_and_its_evaluation_only(finished_run: Path):
    jobs = planned_jobs(finished_run, "--forcerun", "results/models/final/bpr/model.pt")
    assert_only(jobs, Counter({("train_model", "setting=final, loss=bpr"): 1, ("evaluate_model", "loss=bpr"): 1}))


def test_changing_one_losses_hyperparameter_reruns_only_that_loss(finished_run: Path):
    overlay = with_overlay(finished_run, "top1_rate", "training: {losses: {top1: {learning_rate: 0.07}}}\n")
    jobs = planned_jobs(finished_run, config=overlay)
    assert_only(jobs, Counter({("train_model", "setting=final, loss=top1"): 1, ("evaluate_model", "loss=top1"): 1}))


def test_changing_a_preprocessing_setting_reruns_from_that_stage_down(finished_run: Path):
    overlay = with_overlay(finished_run, "support", "protocol: {min_item_support: 4}\n")
    jobs = rules_of(planned_jobs(finished_run, config=overlay))
    assert jobs["split_sessions"] == 1
    assert jobs["build_sessions"] >= 1
    assert jobs["train_model"] == len(LOSSES) and jobs["evaluate_model"] == len(LOSSES)
    # Upstream of the split nothing changed.
    assert not jobs.keys() & {"synthesize_archive", "extract_clicks", "clicks_to_parquet"}, jobs


def test_another_evaluation_cutoff_reruns_the_evaluations_and_retrains_nothing(finished_run: Path):
    """The learning curve has cut-offs of its own (training.curve_cutoffs): another evaluation cut-off changes what
    the evaluations and the report compute, not what a training does."""
    overlay = with_overlay(finished_run, "cutoffs", "evaluation: {cutoffs: [1, 5, 10, 20, 50]}\n")
    jobs = rules_of(planned_jobs(finished_run, config=overlay))
    evaluations = Counter(evaluate_model=len(LOSSES), evaluate_baseline=len(names.BASELINES), evaluate_oracle=1)
    assert Counter({rule: n for rule, n in jobs.items() if rule not in REPORT_RULES | {"all"}}) == evaluations, jobs


def test_other_curve_cutoffs_retrain_every_model(finished_run: Path):
    overlay = with_overlay(finished_run, "curve", "training: {curve_cutoffs: [20]}\n")
    jobs = rules_of(planned_jobs(finished_run, config=overlay))
    assert jobs["train_model"] == len(LOSSES) and jobs["evaluate_model"] == len(LOSSES), jobs
    assert not jobs.keys() & ({"evaluate_baseline", "evaluate_oracle"} | DATA_RULES), jobs


def test_editing_model_code_reruns_training_and_nothing_upstream(finished_run: Path):
    model_code = finished_run / "src" / "gru4rec_pipeline" / "model" / "network.py"
    model_code.write_text(model_code.read_text() + "\n# an edit to the model code\n")
    jobs = rules_of(planned_jobs(finished_run))
    assert jobs["train_model"] == len(LOSSES), jobs
    assert not jobs.keys() & DATA_RULES, jobs
    assert set(jobs) <= {"train_model", "evaluate_model", "all"} | REPORT_RULES, jobs


def test_editing_ranking_code_reruns_every_evaluation_and_no_data_stage(finished_run: Path):
    """The ranking code computes every recall and MRR: models, baselines and the oracle are evaluated again, and
    the trainings too, whose learning curve (training.eval_every_epoch, on by default) it computes; the data
    stages stay as they are."""
    ranking_code = finished_run / "src" / "gru4rec_pipeline" / "evaluation" / "ranking.py"
    ranking_code.write_text(ranking_code.read_text() + "\n# an edit to the ranking code\n")
    jobs = rules_of(planned_jobs(finished_run))
    assert jobs["evaluate_model"] == len(LOSSES), jobs
    assert jobs["evaluate_baseline"] == len(names.BASELINES) and jobs["evaluate_oracle"] == 1, jobs
    assert jobs["train_model"] == len(LOSSES), jobs
    assert not jobs.keys() & DATA_RULES, jobs


def test_training_after_a_code_edit_starts_over_instead_of_resuming(finished_run: Path):
    """The finished run left checkpoints behind; a model made by the old code must not be resumed."""
    model_code = finished_run / "src" / "gru4rec_pipeline" / "model" / "network.py"
    model_code.write_text(model_code.read_text() + "\n# an edit to the model code\n")
    run_snakemake(finished_run, "results/models/final/bpr/model.pt", "--cores", "2", *TINY)
    log = (finished_run / "logs" / "train_model" / "final" / "bpr.log").read_text()
    assert "resuming" not in log, log[-3000:]
    trained = [int(n) for n in re.findall(r"epoch (\d+): loss", log)]
    assert trained == list(range(1, TINY_BPR_EPOCHS + 1)), log[-3000:]


def source_overlay(directory: Path, key: str, value) -> str:
    """A config file outside the workflow setting the data source key ``key`` (dotted) to ``value``."""
    overlay = directory / f"source-{key}.yaml"
    parent, _, leaf = key.rpartition(".")
    text = f"{leaf}: {value}" if not parent else f"{parent}: {{{leaf}: {value}}}"
    overlay.write_text(text + "\n")
    return str(overlay)


@pytest.mark.parametrize("key", ["archive", "clicks", "own_data.path"])
def test_a_missing_source_file_stops_the_run_naming_the_key_and_the_path(tiny_run: Path, tmp_path: Path, key):
    """With the results of another source in place, Snakemake would find nothing to do: the workflow stops first."""
    missing = tmp_path / "not-there" / "data.file"
    config = (*TINY, source_overlay(tmp_path, key, missing))
    result = run_snakemake(tiny_run, "--dry-run", "--cores", "2", "results/recall_bpr.txt", *config, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert f"config key '{key}': {missing} does not exist" in output, output[-3000:]
    assert "Nothing to be done" not in output and "rule " not in output, output[-3000:]


def other_source(finished: Path, directory: Path, key: str) -> str:
    """Another data set for the source key ``key``: fewer of the tiny run's clicks, in that key's format, in a file
    dated long before the run (so that only the change of source can rerun anything); ``synthetic.seed``: 7."""
    if key == "synthetic.seed":
        return "7"
    lines = (finished / "results" / "raw" / "yoochoose-clicks.dat").read_text().splitlines(keepends=True)
    fewer = directory / "yoochoose-clicks.dat"
    fewer.write_text("".join(lines[: len(lines) * 3 // 4]))
    path = fewer
    if key == "archive":
        path = directory / "yoochoose-data.7z"
        with py7zr.SevenZipFile(path, "w") as archive:
            archive.write(fewer, "yoochoose-clicks.dat")
    elif key == "own_data.path":
        path = directory / "my_clicks.csv"
        clicks = pd.read_parquet(finished / "results" / "data" / "clicks.parquet")
        clicks[["SessionId", "ItemId", "Time"]].iloc[: len(clicks) * 3 // 4].to_csv(path, index=False)
    os.utime(path, (1e9, 1e9))
    return str(path)


@pytest.mark.parametrize("key", ["archive", "clicks", "own_data.path", "synthetic.seed"])
def test_another_source_reruns_every_stage_from_the_data_down(finished_run: Path, tmp_path: Path, key):
    config = (*TINY, source_overlay(tmp_path, key, other_source(finished_run, tmp_path, key)))
    jobs = rules_of(planned_jobs(finished_run, config=config))
    assert jobs["record_data_source"] == 1 and jobs["clicks_to_parquet"] == 1 and jobs["split_sessions"] == 1, jobs
    assert jobs["extract_clicks"] == (key in ("archive", "synthetic.seed")), jobs
    assert jobs["synthesize_archive"] == (key == "synthetic.seed"), jobs
    assert jobs["train_model"] == len(LOSSES) and jobs["evaluate_model"] == len(LOSSES), jobs
    assert jobs["evaluate_baseline"] == len(names.BASELINES), jobs


def test_a_source_file_replaced_in_place_by_an_older_one_is_recorded_again(finished_run: Path, tmp_path: Path):
    """Same path, other content, and a modification time no newer than before: the data stages still rerun."""
    clicks = tmp_path / "yoochoose-clicks.dat"
    lines = (finished_run / "results" / "raw" / "yoochoose-clicks.dat").read_text().splitlines(keepends=True)
    clicks.write_text("".join(lines))
    config = (*TINY, source_overlay(tmp_path, "clicks", clicks))
    run_snakemake(finished_run, "results/data/clicks.parquet", "--cores", "2", *config)
    record = json.loads((finished_run / "results" / "data" / "source.json").read_text())
    assert record["kind"] == "clicks" and record["path"] == str(clicks)
    assert record["sha256"] == hashlib.sha256(clicks.read_bytes()).hexdigest()
    before = clicks.stat().st_mtime_ns
    clicks.write_text("".join(lines[:-100]))
    os.utime(clicks, ns=(before, before))
    jobs = rules_of(planned_jobs(finished_run, "results/data/clicks.parquet", config=config))
    assert jobs["record_data_source"] == 1 and jobs["clicks_to_parquet"] == 1, jobs


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"snakemake ended (status {process.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_interrupted_training_resumes_from_its_last_checkpoint(finished_run: Path):
    # Another learning rate, so that this is a new training (the finished run's checkpoints do not
    # apply), of two epochs: killed after the first one's checkpoint, it has one left to resume.
    changed = with_overlay(finished_run, "changed", "training: {losses: {bpr: {epochs: 2, learning_rate: 0.06}}}\n")
    target = "results/models/final/bpr/model.pt"
    history = finished_run / "results" / "models" / "final" / "bpr" / "history.csv"
    started = time.time()
    # Its own session, so that the whole process group (Snakemake and the training it started) can be
    # killed at once, as a crash or a lost node would.
    process = subprocess.Popen(
        snakemake_command(target, "--cores", "2", *changed),
        cwd=finished_run,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def first_epoch_checkpointed() -> bool:
            checkpoints = (finished_run / "results" / "models" / "final" / "bpr" / "checkpoints").rglob("checkpoint.pt")
            return (
                history.exists()
                and history.stat().st_mtime >= started
                and any(path.stat().st_mtime >= started for path in checkpoints)
            )

        wait_for(first_epoch_checkpointed, 300, "the first checkpoint of the new training", process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    epochs_done = len(history.read_text().strip().splitlines()) - 1
    assert epochs_done == 1, f"killed too late to test resuming: {epochs_done} epochs done"

    # What one does after a crash: unlock, then run the same command again.
    run_snakemake(finished_run, "--unlock", *changed)
    run_snakemake(finished_run, target, "--cores", "2", *changed)
    log = (finished_run / "logs" / "train_model" / "final" / "bpr.log").read_text()
    assert re.search(r"resuming from \S+ after epoch 1$", log, re.M), log[-3000:]
    # Only the remaining epoch was trained again, and the history covers both.
    assert re.findall(r"epoch (\d+): loss", log) == ["2"], log[-3000:]
    assert [line.split(",")[0] for line in history.read_text().strip().splitlines()[1:]] == ["1", "2"]


def test_trainings_share_the_machine_without_oversubscribing_it(finished_run: Path):
    losses = ["bpr", "top1"]
    models = [f"results/models/final/{loss}/model.pt" for loss in losses]
    # One epoch each (a changed setting, so both retrain) and one thread each on two cores.
    shorter = with_overlay(finished_run, "shorter", "training: {losses: {bpr: {epochs: 1}, top1: {epochs: 1}}}\n")
    result = run_snakemake(finished_run, *models, "--cores", "2", "--set-threads", "train_model=1", *shorter)
    output = result.stdout + result.stderr

    # Both trainings were running at the same time: the scheduler started the second before the first ended.
    running, most_at_once = 0, 0
    for line in output.splitlines():
        if re.fullmatch(r"(local)?rule train_model:", line.strip()):
            running += 1
            most_at_once = max(most_at_once, running)
        elif re.match(r"Finished jobid: \d+ \(Rule: train_model\)", line.strip()):
            running -= 1
    assert most_at_once == 2, output[-4000:]

    # And each used exactly the one thread its job was given.
    for loss in losses:
        log = (finished_run / "logs" / "train_model" / "final" / f"{loss}.log").read_text()
        threads = re.findall(r"training \w+ on \S+ with (\d+) threads", log)
        assert threads == ["1"], log[-2000:]


def test_generated_archive_is_reused_between_workflow_copies(tmp_path: Path):
    cache = tmp_path / "output-cache"
    cache.mkdir()
    env = dict(os.environ, SNAKEMAKE_OUTPUT_CACHE=str(cache))
    archive = "results/raw/synthetic/yoochoose-data.7z"

    def run_in_new_copy(name: str) -> tuple[Path, str]:
        workdir = copy_workflow(tmp_path / name)
        result = subprocess.run(
            snakemake_command(archive, "--cores", "2", *TINY, "--cache", "synthesize_archive"),
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return workdir, result.stdout + result.stderr

    first, _ = run_in_new_copy("first-copy")
    assert any(cache.iterdir()), "nothing was stored in the output cache"
    second, output = run_in_new_copy("second-copy")
    # The second copy took the archive from the cache instead of generating it again: the generator never ran.
    assert re.search(rf"output file {re.escape(archive)} from cache", output), output[-3000:]
    log = second / "logs" / "synthesize_archive" / "synthesize_archive.log"
    assert not log.exists() or not log.read_text().strip(), log.read_text()
    assert (second / archive).read_bytes() == (first / archive).read_bytes()
