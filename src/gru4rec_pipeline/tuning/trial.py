"""One trial: train with the trial's hyperparameters on train_tr, evaluate on valid after every epoch.

The trial runs the project's own training loop (:func:`~gru4rec_pipeline.training.loop.train_model`) and
evaluation (:func:`~gru4rec_pipeline.evaluation.model_evaluation.evaluate_model`) in the worker's process. After
each epoch it reports the study's metric to Optuna, so that the pruner can stop a trial that trails the others
at the same epoch; the trial's value is the metric after its last epoch. With ``training.early_stopping`` a trial
also stops once its watched metric has not improved for ``patience`` epochs; its value is then the study's metric
at its best epoch, which it records (user attribute ``best_epoch``) for ``best.yaml``'s epochs.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass

import numpy as np
import optuna

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.evaluation.epoch_evaluation import parse_metric
from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.model.early_stopping import EarlyStopping
from gru4rec_pipeline.model.hyperparameters import TrainConfig
from gru4rec_pipeline.training.loop import train_model
from gru4rec_pipeline.tuning.settings import TuningSettings
from gru4rec_pipeline.tuning.space import SearchSpace

log = logging.getLogger(__name__)

BEST_EPOCH = "best_epoch"  # trial attribute: the epoch early stopping kept, the tuned retraining's epoch count


class StopEarly(Exception):
    """Raised after an epoch to end a trial's training: its validation metric stopped improving."""


@dataclass(frozen=True)
class TrialData:
    """What every trial of a worker reads, loaded once: the training and validation sessions, the items'
    training support and the vocabulary's identity."""

    train: SessionArrays
    valid: SessionArrays
    item_support: np.ndarray
    vocabulary: dict


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

    def config(self, params: dict) -> TrainConfig:
        hyperparameters = self.space.hyperparameters(params)
        return TrainConfig.from_dict(
            {
                **hyperparameters,
                "loss": self.space.loss,
                "epochs": self.settings.epochs,
                "seed": self.seed,
                "device": self.device,
                "threads": self.threads,
            }
        )

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.config(trial.params)
        name, cutoff = self.settings.metric_name, self.settings.cutoff
        values: list[float] = []
        sampled = self.space.hyperparameters(trial.params)
        log.info("trial %d: %s", trial.number, ", ".join(f"{name} {sampled[name]}" for name in trial.params))
        stopping, cutoffs = None, {cutoff}
        if self.early_stopping and self.early_stopping.get("patience"):
            metric = self.early_stopping.get("metric", "mrr@20")
            stopping = EarlyStopping(int(self.early_stopping["patience"]), metric, "valid")
            cutoffs.add(parse_metric(metric)[1])

        def after_epoch(epoch: int, model) -> None:
            metrics = evaluate_model(
                model,
                self.data.valid,
                cutoffs=tuple(sorted(cutoffs)),
                tie_mode=self.evaluation.tie_mode,
                batch_size=self.evaluation.batch_size,
                progress=False,
                source=f"trial {trial.number} after epoch {epoch}",
            )
            value = float(metrics[name][str(cutoff)])
            values.append(value)
            trial.report(value, epoch)
            log.info("trial %d, epoch %d: %s %.4f on valid", trial.number, epoch, self.settings.metric, value)
            if stopping is not None:
                watched, at = parse_metric(stopping.metric)
                stopping.update(epoch, float(metrics[watched][str(at)]), model)
                if stopping.should_stop:
                    raise StopEarly
            # After the last epoch the trial is over anyway: its value is recorded, not pruned.
            if epoch < config.epochs and trial.should_prune():
                raise optuna.TrialPruned(f"{self.settings.metric} {value:.4f} after epoch {epoch}: below the median")

        # The model and its history are a trial's by-products: written to a folder removed with the trial.
        with tempfile.TemporaryDirectory(prefix="gru4rec-trial-") as scratch:
            try:
                train_model(
                    self.data.train,
                    self.data.item_support,
                    config,
                    f"{scratch}/model.pt",
                    f"{scratch}/history.csv",
                    progress=False,
                    vocabulary_identity=self.data.vocabulary,
                    on_epoch=after_epoch,
                )
            except StopEarly:
                log.info(
                    "trial %d stopped early after epoch %d: %s best at epoch %d",
                    trial.number, len(values), stopping.metric, stopping.best_epoch,
                )  # fmt: skip
        if stopping is None:
            return values[-1]
        # The trial's value and epoch count are those of its best epoch: the weights early stopping keeps.
        trial.set_user_attr(BEST_EPOCH, stopping.best_epoch)
        return values[stopping.best_epoch - 1]
