"""The tuning stage's worker: trials of one loss's study, one after another, until the study holds enough.

:func:`run_tune_worker` is the driver (the workflow's ``tune_worker`` rule, one job per worker slot, and the
command ``gru4rec-pipeline tune-worker``). Every worker of a loss opens the same study (``study.py``), so
parallel workers are just parallel jobs: Snakemake runs them side by side on this machine, or submits each to
SLURM. Each draws its trials with a TPE sampler seeded from the configured seed, its slot and the number of trials
the study holds, so workers that start together do not propose the same points and a restarted worker (or a
study extended to more trials) does not replay its earlier draws; a median pruner (``tuning.pruning``) stops
trials that trail the others at the same epoch. A trial that fails (diverged training, a model scoring NaN, any
PipelineError) is recorded as failed with its reason, and the worker goes on.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import optuna

from gru4rec_pipeline.compute import configure_threads
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.evaluation.stage import EvaluationSettings, load_evaluation_data
from gru4rec_pipeline.files import write_json_atomic
from gru4rec_pipeline.tuning.settings import TuningSettings, study_fingerprint, study_name
from gru4rec_pipeline.tuning.space import SearchSpace
from gru4rec_pipeline.tuning.study import StudyLocation, finished_trials, new_run_id, run_trials
from gru4rec_pipeline.tuning.trial import TrialData, TrialRunner

log = logging.getLogger(__name__)

# Trials before the median pruner stops any: their curves are what the median is taken over.
PRUNER_STARTUP_TRIALS = 5


def worker_seed(seed: int, worker: int, trials_held: int = 0) -> int:
    """Worker ``worker``'s sampler seed for a draw in a study holding ``trials_held`` trials: derived from the
    configured seed, different for every slot and for every state of the study."""
    return int(np.random.SeedSequence([seed, worker, trials_held]).generate_state(1)[0])


def tpe_sampler(seed: int, worker: int, trials_held: int = 0) -> optuna.samplers.TPESampler:
    return optuna.samplers.TPESampler(seed=worker_seed(seed, worker, trials_held), constant_liar=True)


def route_optuna_messages() -> None:
    """Optuna's warnings through this package's log handler (the rule's log); its per-trial lines are ours."""
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # The configured setting (the first trial) may lie between the grid points of a range: it runs as configured.
    warnings.filterwarnings("ignore", message="Fixed parameter .* is out of range")


def run_tune_worker(
    loss: str,
    worker: int,
    train_path,
    eval_path,
    vocab_path,
    folder,
    record_path,
    tuning: dict,
    space: dict | None,
    hyperparameters: dict,
    evaluation: dict | None = None,
    seed: int = 42,
    device: str = "auto",
    threads: int = 1,
    early_stopping: dict | None = None,
    engine: str = "auto",
) -> dict:
    """The tuning stage for one worker slot of ``loss``'s study: trials on ``train_path`` (train_tr's sessions),
    each evaluated on ``eval_path`` (valid's), until the study holds ``tuning['trials']``.

    ``tuning``: the config's tuning section; ``space``: ``tuning.spaces.{loss}`` (None: the published space);
    ``hyperparameters``: ``training.losses.{loss}``, the setting the space varies; ``folder``: where the study's
    journal and lock live; ``engine``: ``training.engine``. Writes ``record_path`` (JSON: the study, what this
    worker ran) and returns it.
    """
    settings = TuningSettings.from_dict(tuning)
    if not 0 <= worker < settings.workers:
        raise ConfigError("tuning.workers", f"worker {worker} is not one of the {settings.workers} workers")
    search_space = SearchSpace.from_config(loss, space, hyperparameters)
    evaluation_settings = EvaluationSettings.from_dict(evaluation or {})
    valid, vocabulary = load_evaluation_data(eval_path, vocab_path)
    train = SessionArrays.load(train_path)
    vocabulary.check_indices(train, train_path, vocab_path)
    if early_stopping and not early_stopping.get("patience"):
        early_stopping = None
    fingerprint = study_fingerprint(
        search_space, settings, seed, evaluation_settings.tie_mode, train, valid, early_stopping=early_stopping
    )
    location = StudyLocation(study_name(loss, fingerprint), Path(folder), settings.storage)
    configure_threads(threads)
    route_optuna_messages()
    sampler = tpe_sampler(settings.seed, worker)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS)
        if settings.pruning
        else optuna.pruners.NopPruner()
    )
    with location.lock():
        study = location.create(sampler, pruner)
    runner = TrialRunner(
        search_space,
        settings,
        evaluation_settings,
        TrialData(train, valid, vocabulary.support, vocabulary.identity(), (train_path, eval_path, vocab_path)),
        seed,
        device,
        threads,
        early_stopping,
        engine,
    )
    run = new_run_id()
    log.info(
        "worker %d of %d (%s) on study %s in %s: %d trials of %d epochs, maximising %s on valid",
        worker,
        settings.workers,
        run,
        location.name,
        location.describe(),
        settings.trials,
        settings.epochs,
        settings.metric,
    )
    done = run_trials(
        study,
        location,
        runner,
        settings.trials,
        search_space.distributions(),
        worker,
        settings.workers,
        first_params=search_space.default_params(),
        run=run,
        new_sampler=lambda trials_held: tpe_sampler(settings.seed, worker, trials_held),
    )
    record = {
        "study": location.name,
        "storage": location.describe(),
        "worker": worker,
        "run": run,
        "target": settings.trials,
        "finished_trials": finished_trials(study),
        **done,
    }
    Path(record_path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(record_path, record)
    log.info("worker %d done: %s", worker, record)
    return record
