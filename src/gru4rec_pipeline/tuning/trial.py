"""One trial: train with the trial's hyperparameters on train_tr, evaluate on valid after every epoch.

A trial is an ordinary training job (``training/job.py``) run in the worker's process on the data it loaded once:
its per-epoch evaluation on valid (``evaluation/epoch_evaluation.py``: the learning curve, with early stopping)
measures the study's metric after every epoch, and :class:`TrialReport`, an observer of the training loop, reports
it to Optuna, so that the pruner can stop a trial that trails the others at the same epoch; the trial's value is
the metric after its last epoch. With ``training.early_stopping`` a trial also stops once its watched metric has not
improved for ``patience`` epochs; its value is then the study's metric at its best epoch, which it records (user
attribute ``best_epoch``) for ``best.yaml``'s epochs.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass

import numpy as np
import optuna

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.training.job import EpochEvaluationOptions, RunOptions, TrainingJob
from gru4rec_pipeline.training.loop import TrainingInputs, train
from gru4rec_pipeline.tuning.settings import TuningSettings
from gru4rec_pipeline.tuning.space import SearchSpace

log = logging.getLogger(__name__)

BEST_EPOCH = "best_epoch"  # trial attribute: the epoch early stopping kept, the tuned retraining's epoch count


@dataclass(frozen=True)
class TrialData:
    """What every trial of a worker reads, loaded once: the training and validation sessions, the items'
    training support and the vocabulary's identity, and the files they were read from (``paths``: train, valid,
    vocab)."""

    train: SessionArrays
    valid: SessionArrays
    item_support: np.ndarray
    vocabulary: dict
    paths: tuple[str, str, str] = ("", "", "")


@dataclass(frozen=True)
class TrialRunner:
    """Runs trials of one study: ``runner(trial)`` returns the trial's value, or raises ``optuna.TrialPruned``
    (stopped by the pruner) or a PipelineError (the training diverged, the model scores NaN ...)."""

    space: SearchSpace
    settings: TuningSettings
    evaluation: EvaluationSettings
    data: TrialData
    seed: int
    device: str
    threads: int
    early_stopping: dict | None = None  # training.early_stopping: {patience, metric}; patience 0 is off
    engine: str = "auto"  # training.engine

    def job(self, params: dict, folder: str) -> TrainingJob:
        """The trial's training job: the trial's hyperparameters on train_tr, evaluated on valid after every epoch
        at the study's cut-off (and early stopping's), into the scratch model folder ``folder``."""
        hyperparameters = Hyperparameters.from_dict(
            {**self.space.hyperparameters(params), "loss": self.space.loss, "epochs": self.settings.epochs}
        )
        run = RunOptions(self.seed, self.device, self.threads, self.engine, progress=False, checkpoints=False)
        train_path, valid_path, vocab_path = self.data.paths
        curve = EpochEvaluationOptions(
            valid_path,
            split="valid",
            cutoffs=(self.settings.cutoff,),
            tie_mode=self.evaluation.tie_mode,
            batch_size=self.evaluation.batch_size,
            early_stopping=self.early_stopping,
        )
        return TrainingJob(train_path, vocab_path, folder, hyperparameters, run, epoch_evaluation=curve)

    def __call__(self, trial: optuna.Trial) -> float:
        sampled = self.space.hyperparameters(trial.params)
        log.info("trial %d: %s", trial.number, ", ".join(f"{name} {sampled[name]}" for name in trial.params))
        data = self.data
        inputs = TrainingInputs(data.train, data.item_support, data.vocabulary, evaluation=data.valid)
        report = TrialReport(trial, self.settings)
        # The model and its history are a trial's by-products: written to a folder removed with the trial.
        with tempfile.TemporaryDirectory(prefix="gru4rec-trial-") as scratch:
            summary = train(self.job(trial.params, scratch), inputs, observers=[report])
        if "best_epoch" not in summary:
            return report.values[-1]
        # The trial's value and epoch count are those of its best epoch: the weights early stopping keeps.
        if len(report.values) < self.settings.epochs:
            log.info(
                "trial %d stopped early after epoch %d: %s best at epoch %d",
                trial.number, len(report.values), self.early_stopping["metric"], summary["best_epoch"],
            )  # fmt: skip
        trial.set_user_attr(BEST_EPOCH, summary["best_epoch"])
        return report.values[summary["best_epoch"] - 1]


class TrialReport:
    """After each epoch of a trial's training: the study's metric (the learning curve's column) reported to Optuna,
    and the trial pruned (``optuna.TrialPruned``) where the pruner says so. Not after the last epoch, nor after one
    where early stopping ends the training: the trial is over then anyway, its value recorded."""

    def __init__(self, trial: optuna.Trial, settings: TuningSettings):
        self.trial, self.settings = trial, settings
        self.values: list[float] = []

    def after_epoch(self, epoch: int, row: dict, trainer) -> None:
        value = float(row[f"{self.settings.metric_name}@{self.settings.cutoff}"])
        self.values.append(value)
        self.trial.report(value, epoch)
        log.info("trial %d, epoch %d: %s %.4f on valid", self.trial.number, epoch, self.settings.metric, value)
        stopping = trainer.curve is not None and trainer.curve.should_stop
        if not stopping and epoch < trainer.epochs and self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.settings.metric} {value:.4f} after epoch {epoch}: below the median")
