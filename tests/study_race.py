"""A quick study for tests of the trial bookkeeping, importable by the processes that race on it (no torch)."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution, IntDistribution

from gru4rec_pipeline.tuning.study import StudyLocation, run_trials

DISTRIBUTIONS = {"x": FloatDistribution(0.0, 1.0), "n": IntDistribution(1, 8)}


def open_study(folder: Path, name: str = "race", storage: str = "") -> tuple[optuna.Study, StudyLocation]:
    location = StudyLocation(name, folder, storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return location.create(optuna.samplers.RandomSampler(seed=0)), location


def quick_objective(trial: optuna.Trial) -> float:
    time.sleep(0.005 * trial.params["n"])
    return trial.params["x"]


def race(folder: str, worker: int, target: int) -> dict:
    """One of several processes running trials of the same study at once."""
    study, location = open_study(Path(folder))
    study.sampler = optuna.samplers.RandomSampler(seed=worker)  # workers of one seed would draw each other's repeats
    return run_trials(study, location, quick_objective, target, DISTRIBUTIONS, worker, workers=4)
