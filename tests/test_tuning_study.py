"""Studies shared by workers: the trial count under racing workers, dead workers' trials, failing trials,
trials that report every epoch without changing the training, and what a finished study hands on."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import jsonschema
import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from conftest import REPO
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import PipelineError
from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model
from gru4rec_pipeline.model.folder import load_model
from gru4rec_pipeline.tuning.best import BestSetting
from gru4rec_pipeline.tuning.report import run_study_report
from gru4rec_pipeline.tuning.study import (
    FAILURE,
    REPEAT_OF,
    RETRY_OF,
    RUN,
    WORKER,
    StudyLocation,
    finished_trials,
    run_trials,
)
from gru4rec_pipeline.tuning.worker import run_tune_worker, worker_seed
from study_race import DISTRIBUTIONS, open_study, quick_objective, race
from test_training import N_ITEMS, tiny_config, tiny_sessions, train_tiny

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
# A GRU4Rec setting small enough for trials of a second on the tiny sessions below.
SMALL_SETTING = {"layers": [12], "batch_size": 4, "n_sample": 8, "learning_rate": 0.05, "epochs": 2}


def test_racing_workers_never_finish_more_trials_than_asked(tmp_path: Path):
    """Four processes, trials of a few milliseconds: without the study lock around counting and asking, they
    overshoot the target (this test then fails nearly every time)."""
    target = 24
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        done = pool.starmap(race, [(str(tmp_path), worker, target) for worker in range(4)])
    study, _ = open_study(tmp_path)
    assert finished_trials(study) == target
    assert len(study.trials) == target and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert sorted(n for record in done for n in record["trials"]) == list(range(target))
    assert len({t.user_attrs[WORKER] for t in study.trials}) > 1, "the workers did not share the study"


def leave_running(study: optuna.Study, worker: int, run: str, params: dict) -> int:
    """A trial as a killed worker leaves it: running, parameters drawn, never told."""
    study.enqueue_trial(params)
    trial = study.ask(DISTRIBUTIONS)
    trial.set_user_attr(WORKER, worker)
    trial.set_user_attr(RUN, run)
    return trial.number


def test_a_dead_workers_trial_is_failed_and_run_again(tmp_path: Path):
    study, location = open_study(tmp_path)
    dead = leave_running(study, 0, "host:1:gone", {"x": 0.25, "n": 3})
    removed_slot = leave_running(study, 5, "host:2:gone", {"x": 0.5, "n": 2})
    live = leave_running(study, 1, "host:3:alive", {"x": 0.75, "n": 1})

    run_trials(study, location, quick_objective, 5, DISTRIBUTIONS, worker=0, workers=2, run="host:4:new")

    trials = study.trials
    assert trials[dead].state == TrialState.FAIL and "ended without finishing" in trials[dead].user_attrs[FAILURE]
    assert trials[removed_slot].state == TrialState.FAIL
    assert "not one of the 2" in trials[removed_slot].user_attrs[FAILURE]
    # Another slot's trial may still be running: left alone, and counted towards the study's trials.
    assert trials[live].state == TrialState.RUNNING
    retries = {t.user_attrs[RETRY_OF]: t for t in trials if RETRY_OF in t.user_attrs}
    assert set(retries) == {dead, removed_slot}
    assert retries[dead].params == {"x": 0.25, "n": 3} and retries[dead].state == TrialState.COMPLETE
    assert finished_trials(study) == 4  # five counted: four finished and the live worker's running one


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path: Path):
    study, location = open_study(tmp_path)

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 1:
            raise PipelineError("training diverged in epoch 1: loss nan")
        return quick_objective(trial)

    done = run_trials(study, location, objective, 3, DISTRIBUTIONS, worker=0, workers=1)
    assert done["failed"] == 1 and done["complete"] == 3
    assert study.trials[1].state == TrialState.FAIL
    assert study.trials[1].user_attrs[FAILURE] == "training diverged in epoch 1: loss nan"


def test_a_worker_whose_trials_keep_failing_stops(tmp_path: Path):
    study, location = open_study(tmp_path)

    def objective(trial):
        raise PipelineError("the model scores NaN")

    with pytest.raises(PipelineError, match="last 10 trials failed"):
        run_trials(study, location, objective, 3, DISTRIBUTIONS, worker=0, workers=1)


def test_an_rdb_storage_holds_the_study(tmp_path: Path):
    study, location = open_study(tmp_path, storage=f"sqlite:///{tmp_path / 'studies.db'}")
    run_trials(study, location, quick_objective, 3, DISTRIBUTIONS, worker=0, workers=1)
    assert finished_trials(location.load()) == 3 and location.journal is None


def test_workers_draw_with_seeds_of_their_own():
    seeds = {worker_seed(42, worker) for worker in range(8)}
    assert len(seeds) == 8 and worker_seed(42, 0) == worker_seed(42, 0) != worker_seed(43, 0)
    assert len({worker_seed(42, 0, held) for held in range(8)}) == 8


def test_a_draw_repeating_a_held_setting_is_failed_and_drawn_again(tmp_path: Path):
    study, location = open_study(tmp_path)
    # The sampler of the second draw is seeded as the first one's: it proposes the first trial's parameters.
    done = run_trials(
        study, location, quick_objective, 2, DISTRIBUTIONS, worker=0, workers=1,
        new_sampler=lambda held: optuna.samplers.RandomSampler(seed=0 if held < 2 else held),
    )  # fmt: skip
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE] and done["complete"] == 2
    assert study.trials[1].params == study.trials[0].params != study.trials[2].params
    assert study.trials[1].user_attrs[REPEAT_OF] == 0 and "repeat trial 0" in study.trials[1].user_attrs[FAILURE]


def test_a_space_with_fewer_settings_than_trials_stops_the_worker(tmp_path: Path):
    study, location = open_study(tmp_path)
    distributions = {"n": IntDistribution(1, 3)}
    with pytest.raises(PipelineError, match="holds 3 settings .* lower tuning.trials"):
        run_trials(study, location, lambda trial: 1.0, 4, distributions, worker=0, workers=1)
    assert sorted(t.params["n"] for t in study.trials if t.state == TrialState.COMPLETE) == [1, 2, 3]


@pytest.fixture
def session_files(tmp_path: Path) -> dict[str, Path]:
    """Training and validation session arrays of the successor-rule sessions, and their vocabulary."""
    train, support = tiny_sessions(n_sessions=160, seed=0)
    valid, _ = tiny_sessions(n_sessions=40, seed=1)
    paths = {name: tmp_path / "sessions" / f"{name}.npz" for name in ("train", "valid")}
    paths["train"].parent.mkdir()
    train.save(paths["train"])
    valid.save(paths["valid"])
    paths["vocab"] = tmp_path / "sessions" / "vocab.parquet"
    Vocabulary(np.arange(N_ITEMS, dtype=np.int64) + 1000, support).save(paths["vocab"])
    return paths


def test_reporting_every_epoch_leaves_the_training_unchanged(tmp_path: Path, one_thread):
    train, support = tiny_sessions()
    valid, _ = tiny_sessions(n_sessions=40, seed=1)
    config = tiny_config("bpr_max", epochs=3)
    reported = []

    class Reporting:
        def after_epoch(self, epoch, row, trainer):
            metrics = evaluate_model(trainer.model, valid, cutoffs=(20,), progress=False)
            reported.append((epoch, metrics["mrr"]["20"]))

    train_tiny(tmp_path / "a", train, support, config, observers=[Reporting()])
    train_tiny(tmp_path / "b", train, support, config)
    observed, plain = (load_model(tmp_path / name / "model.pt").state_dict() for name in ("a", "b"))
    assert all(torch.equal(observed[key], plain[key]) for key in plain)
    assert [epoch for epoch, _ in reported] == [1, 2, 3]
    final = evaluate_model(load_model(tmp_path / "b" / "model.pt"), valid, cutoffs=(20,), progress=False)["mrr"]["20"]
    assert reported[-1][1] == final


def test_a_diverging_trial_fails_and_the_study_finds_a_setting(tmp_path: Path, session_files, one_thread):
    """Real training: the configured setting (trial 0) has an absurd learning rate and diverges; the study goes
    on, and its best setting, a config entry of the loss, is one that trains."""
    folder = tmp_path / "study"
    tuning = {"trials": 2, "workers": 1, "epochs": 1, "pruning": False}
    space = {"learning_rate": [1e30, 0.05], "layers": [12, 16]}
    setting = {**SMALL_SETTING, "learning_rate": 1e30}
    files = session_files
    record = run_tune_worker(
        "bpr_max", 0, files["train"], files["valid"], files["vocab"], folder, folder / "workers" / "0.json",
        tuning, space, setting, seed=3,
    )  # fmt: skip
    study = StudyLocation(record["study"], folder).load()
    first = study.trials[0]
    assert first.state == TrialState.FAIL and first.params["learning_rate"] == 1e30
    assert "diverged" in first.user_attrs[FAILURE] or "not finite" in first.user_attrs[FAILURE]
    assert finished_trials(study) == 2 and record["failed"] >= 1

    outputs = {name: folder / name for name in ("best.yaml", "study.json", "trials.tsv", "h.png", "i.png")}
    summary = run_study_report(
        "bpr_max", [folder / "workers" / "0.json"], folder, *outputs.values(), tuning, space, setting
    )
    best = yaml.safe_load(outputs["best.yaml"].read_text())
    jsonschema.validate(best, {**SCHEMA["$defs"]["hyperparameters"], "$defs": SCHEMA["$defs"]})
    assert best["learning_rate"] == 0.05 and best == BestSetting.load(outputs["best.yaml"], "bpr_max").hyperparameters
    assert summary["default_trial"] == 0 and summary["trials_by_state"]["fail"] == record["failed"]
    trials = pd.read_csv(outputs["trials.tsv"], sep="\t")
    assert list(trials["state"][:1]) == ["fail"] and trials["failure"][0] == first.user_attrs[FAILURE]
    assert {"mrr@20", "mrr@20_epoch1", "learning_rate", "layers", "worker", "duration_s"} <= set(trials.columns)
    for figure in ("h.png", "i.png"):
        assert outputs[figure].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_extending_a_study_draws_new_settings(tmp_path: Path, session_files, one_thread):
    """The documented way to extend a study, raising tuning.trials, restarts the workers: their draws go on
    from the study's state instead of repeating the first run's (trials 4 and 5 were copies of 1 and 2)."""
    folder = tmp_path / "study"
    space = {"learning_rate": {"low": 0.01, "high": 0.25, "step": 0.005}, "layers": [8, 12, 16]}
    for trials in (4, 6):
        tuning = {"trials": trials, "workers": 1, "epochs": 1, "pruning": False}
        files = session_files
        record = run_tune_worker(
            "bpr_max", 0, files["train"], files["valid"], files["vocab"], folder, folder / "workers" / "0.json",
            tuning, space, SMALL_SETTING, seed=3,
        )  # fmt: skip
    complete = [t for t in StudyLocation(record["study"], folder).load().trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 6


def test_early_stopping_ends_trials_and_best_yaml_takes_the_best_trials_best_epoch(
    tmp_path: Path, session_files, one_thread, monkeypatch
):
    """A validation metric forced to peak at epoch 2 and then decline: each trial stops after patience more
    epochs, its value is its epoch-2 value, and best.yaml's epochs is 2."""
    from gru4rec_pipeline.evaluation import epoch_evaluation

    real_evaluate = epoch_evaluation.evaluate_model
    calls = []

    def peaking(model, *args, **kwargs):
        metrics = real_evaluate(model, *args, **kwargs)
        epoch = int(kwargs["source"].rsplit(" ", 1)[1])
        calls.append(epoch)
        metrics["mrr"]["20"] = {1: 0.2, 2: 0.6}.get(epoch, 0.6 - 0.1 * (epoch - 2))
        return metrics

    monkeypatch.setattr(epoch_evaluation, "evaluate_model", peaking)
    folder = tmp_path / "study"
    tuning = {"trials": 2, "workers": 1, "epochs": 6, "pruning": False}
    space = {"learning_rate": [0.05, 0.1]}
    files = session_files
    record = run_tune_worker(
        "bpr_max", 0, files["train"], files["valid"], files["vocab"], folder, folder / "workers" / "0.json",
        tuning, space, SMALL_SETTING, seed=3, early_stopping={"patience": 2, "metric": "mrr@20"},
    )  # fmt: skip
    study = StudyLocation(record["study"], folder).load()
    assert [t.user_attrs["best_epoch"] for t in study.trials] == [2, 2]
    assert [t.value for t in study.trials] == [0.6, 0.6]
    assert calls == [1, 2, 3, 4, 1, 2, 3, 4]  # stopped after epoch 4 of 6
    outputs = {name: folder / name for name in ("best.yaml", "study.json", "trials.tsv", "h.png", "i.png")}
    summary = run_study_report(
        "bpr_max", [folder / "workers" / "0.json"], folder, *outputs.values(), tuning, space, SMALL_SETTING
    )
    assert BestSetting.load(outputs["best.yaml"], "bpr_max").hyperparameters["epochs"] == 2
    assert summary["best_epoch"] == 2
    assert "best epoch 2" in outputs["best.yaml"].read_text()
