"""The tuning stage end to end on the tiny preset: parallel workers on one study, the best setting, the tuned
model, extending and separating studies, final and tuning results side by side, and a killed worker resumed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import jsonschema
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from conftest import REPO, TUNING_OVERLAY, planned_jobs, rules_of, run_snakemake, snakemake_command, with_overlays
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.tuning.study import FAILURE, RETRY_OF, WORKER
from test_report import decode, report_results

pytestmark = pytest.mark.slow

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
TUNED = "results/recall_bpr_max_tuned.txt"
BEST = "results/tuning/bpr_max/best.yaml"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def journals(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "tuning" / "bpr_max").glob("*.journal"))


def load(journal: Path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=journal.stem, storage=JournalStorage(JournalFileBackend(str(journal))))


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def copy_of(run: Path, tmp_path: Path) -> Path:
    workdir = tmp_path / "copy"
    shutil.copytree(run, workdir, symlinks=True)
    return workdir


def test_workers_run_the_studys_trials_side_by_side(tuned_run: Path):
    (journal,) = journals(tuned_run)
    study = load(journal)
    # Trials whose training diverges (BPR-max at some sampled learning rates) are failed and leave room for others.
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert finished(study) == 4 and len(study.trials) - len(failed) == 4
    assert all("diverged" in t.user_attrs[FAILURE] for t in failed)
    by_worker = Counter(t.user_attrs[WORKER] for t in study.trials)
    assert set(by_worker) == {0, 1}, by_worker
    spans = {worker: [] for worker in (0, 1)}
    for trial in study.trials:
        spans[trial.user_attrs[WORKER]].append((trial.datetime_start, trial.datetime_complete))
    overlapping = any(start0 < end1 and start1 < end0 for start0, end0 in spans[0] for start1, end1 in spans[1])
    assert overlapping, f"the workers' trials never ran at the same time: {spans}"
    for worker in (0, 1):
        log = (tuned_run / "logs" / "tune_worker" / "bpr_max" / f"{worker}.log").read_text()
        assert f"worker {worker} of 2" in log and journal.stem in log


def test_best_setting_is_a_config_entry_of_the_loss(tuned_run: Path):
    folder = tuned_run / "results" / "tuning" / "bpr_max"
    best = yaml.safe_load((folder / "best.yaml").read_text())
    jsonschema.validate(best, {**SCHEMA["$defs"]["hyperparameters"], "$defs": SCHEMA["$defs"]})
    (journal,) = journals(tuned_run)
    study = load(journal)
    best_trial = study.best_trial
    assert best["layers"] == [best_trial.params["layers"]] and best["batch_size"] == best_trial.params["batch_size"]
    assert best["learning_rate"] == pytest.approx(best_trial.params["learning_rate"], abs=1e-12)
    assert best["n_sample"] == 64 and best["epochs"] == 2  # the tiny preset's bpr_max setting around the space
    record = json.loads((folder / "study.json").read_text())
    assert (record["best_trial"], record["best_value"]) == (best_trial.number, best_trial.value)
    assert record["default_trial"] == 0 and record["finished_trials"] == 4 and record["study"] == journal.stem
    assert record["best_value"] >= record["default_value"]
    trials = pd.read_csv(folder / "trials.tsv", sep="\t")
    # Every trial, diverged ones (failed) included; only trial 0 is the configured setting.
    assert list(trials["number"]) == [t.number for t in study.trials] and (trials["state"] != "fail").sum() == 4
    assert trials["default"].tolist() == [True] + [False] * (len(trials) - 1)
    for figure in ("optimization_history.png", "param_importances.png"):
        assert (folder / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tuned_model_is_trained_on_train_full_and_evaluated_on_test(tuned_run: Path):
    text = (tuned_run / TUNED).read_text()
    assert re.search(r"^MRR@20: 0\.\d{4}$", text, re.M), text
    metrics = json.loads((tuned_run / "results" / "metrics" / "final" / "bpr_max_tuned.json").read_text())
    best = yaml.safe_load((tuned_run / BEST).read_text())
    study = json.loads((tuned_run / "results" / "tuning" / "bpr_max" / "study.json").read_text())
    assert metrics["model"] == "bpr_max_tuned" and metrics["loss"] == "bpr_max"
    assert metrics["hyperparameters"] == best and metrics["tuning"] == study
    assert metrics["epochs"] == best["epochs"] and metrics["provenance"]["git_commit"]
    test_sessions = SessionArrays.load(tuned_run / "results" / "sessions" / "final" / "eval.npz")
    assert metrics["events"] == int(np.maximum(test_sessions.lengths() - 1, 0).sum())


def test_the_tuned_model_can_be_retrained_on_later_clicks(tuned_run: Path, tmp_path: Path):
    from test_retrain import run_retrain

    folder = tuned_run / "results" / "models" / "final" / "bpr_max_tuned"
    assert (folder / "training_state.pt").is_file()
    summary = run_retrain(
        folder / "model.pt", tuned_run / "results" / "sessions" / "final" / "vocab.parquet",
        tuned_run / "results" / "data" / "test.parquet", tmp_path / "warm", epochs=1, device="cpu", progress=False,
    )  # fmt: skip
    assert summary["epochs"] == 1 and (tmp_path / "warm" / "model.pt").is_file()


def test_a_finished_study_has_nothing_to_do(tuned_run: Path):
    config = with_overlays(tuned_run, tuning_test=TUNING_OVERLAY)
    assert planned_jobs(tuned_run, TUNED, config=config) == Counter()


def test_more_trials_extend_the_study_and_another_space_starts_a_new_one(tuned_run: Path, tmp_path: Path):
    workdir = copy_of(tuned_run, tmp_path)
    (first,) = journals(workdir)
    more = with_overlays(workdir, tuning_test=TUNING_OVERLAY, more="tuning: {trials: 5}\n")
    assert rules_of(planned_jobs(workdir, BEST, config=more)) == Counter({"tune_worker": 2, "summarize_study": 1})
    run_snakemake(workdir, BEST, "--cores", "2", *more)
    assert journals(workdir) == [first] and finished(load(first)) == 5

    other = with_overlays(
        workdir, tuning_test=TUNING_OVERLAY, more="tuning: {trials: 2, spaces: {bpr_max: {layers: [32]}}}\n"
    )
    run_snakemake(workdir, BEST, "--cores", "2", *other)
    (second,) = [journal for journal in journals(workdir) if journal != first]
    assert finished(load(second)) == 2 and finished(load(first)) == 5
    assert {t.params["layers"] for t in load(second).trials} == {32}


def test_the_first_trial_measures_what_the_tuning_setting_measures(tuned_run: Path, tmp_path: Path):
    """The configured setting trained on train_tr and evaluated on valid by the tuning setting's own rules gives
    trial 0's value; and building those results reruns nothing of the study or of the tuned model."""
    workdir = copy_of(tuned_run, tmp_path)
    config = with_overlays(workdir, tuning_test=TUNING_OVERLAY)
    target = "results/tuning/recall_bpr_max.txt"
    jobs = planned_jobs(workdir, target, config=config)
    assert jobs == Counter(
        {("train_model", "setting=tuning, loss=bpr_max"): 1, ("evaluate_model_on_valid", "loss=bpr_max"): 1}
    )
    run_snakemake(workdir, target, "--cores", "2", "--set-threads", "train_model=1", *config)
    metrics = json.loads((workdir / "results" / "metrics" / "tuning" / "bpr_max.json").read_text())
    (journal,) = journals(workdir)
    assert metrics["mrr"]["20"] == pytest.approx(load(journal).trials[0].value, abs=1e-9)
    assert (workdir / "results" / "models" / "final" / "bpr_max_tuned" / "model.pt").exists()
    assert planned_jobs(workdir, target, TUNED, config=config) == Counter()


def test_a_killed_worker_leaves_a_trial_that_the_rerun_fails_and_runs_again(tuned_run: Path, tmp_path: Path):
    workdir = copy_of(tuned_run, tmp_path)
    # A new study (other epochs) with slower trials, so that the kill lands in the middle of one.
    slower = "tuning: {epochs: 3, spaces: {bpr_max: {layers: [128, 192]}}}\n"
    config = with_overlays(workdir, tuning_test=TUNING_OVERLAY, slower=slower)
    old = set(journals(workdir))
    # Its own session, so that Snakemake and its workers can be killed at once, as a lost node would.
    process = subprocess.Popen(
        snakemake_command(BEST, "--cores", "2", "--set-threads", "tune_worker=1", *config),
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert time.monotonic() < deadline and process.poll() is None, "no trial got under way in time"
            new = [journal for journal in journals(workdir) if journal not in old]
            if new:
                running = load(new[0]).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if any(trial.intermediate_values for trial in running):
                    break
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    (journal,) = new
    left_running = {t.number: t.params for t in load(journal).get_trials(states=(TrialState.RUNNING,))}
    assert left_running, "killed between trials: nothing to resume"

    run_snakemake(workdir, "--unlock", *config)
    run_snakemake(workdir, BEST, "--cores", "2", "--set-threads", "tune_worker=1", *config)
    study = load(journal)
    assert finished(study) == 4 and not study.get_trials(states=(TrialState.RUNNING,))
    failed = {t.number: t for t in study.trials if t.state == TrialState.FAIL}
    assert set(left_running) <= set(failed)
    retries = {t.user_attrs[RETRY_OF]: t for t in study.trials if RETRY_OF in t.user_attrs}
    for number, params in left_running.items():
        assert "ended without finishing" in failed[number].user_attrs[FAILURE]
        assert retries[number].params == params
        # It ran to its end: finished, or failed because that setting diverges (not because a worker died).
        retry = retries[number]
        assert retry.state in FINISHED or "diverged" in retry.user_attrs.get(FAILURE, ""), retry
    assert (workdir / BEST).exists()


def test_the_report_shows_the_study_with_captions(tuned_run: Path, tmp_path: Path):
    workdir = copy_of(tuned_run, tmp_path)
    config = with_overlays(workdir, tuning_test=TUNING_OVERLAY)
    run_snakemake(workdir, TUNED, "--cores", "1", *config, "--report", "report.html")
    results = report_results((workdir / "report.html").read_text())
    folder = "results/tuning/bpr_max"
    shown = {f"{folder}/trials.tsv", f"{folder}/optimization_history.png", f"{folder}/param_importances.png"}
    assert shown <= set(results), sorted(results)
    for path in shown:
        assert "bpr_max" in results[path]["caption"], path
        if path.endswith(".png"):
            assert decode(results[path]["data_uri"])[:8] == b"\x89PNG\r\n\x1a\n", path
