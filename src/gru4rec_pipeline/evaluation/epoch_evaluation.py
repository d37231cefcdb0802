"""The learning curve: a training's model evaluated after every epoch on its setting's evaluation split, and early
stopping on it.

:class:`EpochEvaluation` is one of the training loop's observers (``training/loop.py`` builds it from the training
job's per-epoch evaluation; a tuning trial's training is such a job too): after each epoch it adds the epoch's
``recall@k``, ``mrr@k`` and ``ndcg@k`` (every configured cut-off) and ``eval_s`` to its history row, logs what the
evaluation cost next to the epoch's training time, and, with :class:`EarlyStopping`, says when to stop and which
epoch was the best (the training keeps that epoch's state and restores it before the model is saved).

In the final setting the curve is measured on test: it is for reading, never for choosing an epoch count.
Early stopping is only legitimate on a validation split (the tuning setting, tuning trials): the epoch count it
picks is a choice, and a choice made on test would leak the test split into the result.
"""

from __future__ import annotations

import logging
import math
import time

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import ConfigError, PipelineError
from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model
from gru4rec_pipeline.evaluation.ranking import check_cutoffs
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.names import ACCURACY_METRICS, TUNING_METRICS

log = logging.getLogger(__name__)

EARLY_STOPPING_KEY = "training.early_stopping"


def parse_metric(metric: str, key: str = "training.early_stopping.metric") -> tuple[str, int]:
    """``mrr@20`` -> ("mrr", 20); an unknown metric is a config error naming ``key``."""
    name, _, cutoff = str(metric).partition("@")
    if name not in TUNING_METRICS or not cutoff.isdigit() or int(cutoff) < 1:
        raise ConfigError(key, f"got {metric!r}, expected recall@k or mrr@k with a positive integer k")
    return name, int(cutoff)


def metric_columns(cutoffs) -> list[str]:
    """The history columns of a learning curve, in the order they are written."""
    cutoffs = check_cutoffs(cutoffs)
    return [f"{metric}@{k}" for metric in ACCURACY_METRICS for k in cutoffs] + ["eval_s"]


class EarlyStopping:
    """Tracks a metric (higher is better) epoch by epoch: stop once it has not improved for ``patience`` epochs."""

    def __init__(self, patience: int, metric: str, split: str):
        if split == "test":
            raise ConfigError(
                EARLY_STOPPING_KEY,
                "early stopping on the test split would choose the epoch count on test; it applies to the tuning "
                "setting and to tuning trials, which measure on valid",
            )
        if not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"{EARLY_STOPPING_KEY}.patience", f"got {patience!r}, expected an integer >= 1")
        parse_metric(metric)
        self.patience = patience
        self.metric = metric
        self.best_value = -math.inf
        self.best_epoch = 0
        self.epochs_without_gain = 0

    def update(self, epoch: int, value: float) -> None:
        if value > self.best_value:
            self.best_value, self.best_epoch, self.epochs_without_gain = value, epoch, 0
        else:
            self.epochs_without_gain += 1

    def resume(self, history: list[dict]) -> None:
        """Recall the metric of epochs trained before a resume (the training's checkpoint holds the best epoch's
        state)."""
        for row in history:
            self.update(int(row["epoch"]), float(row[self.metric]))

    @property
    def should_stop(self) -> bool:
        return self.epochs_without_gain >= self.patience


class EpochEvaluation:
    """Evaluates a training's model after each epoch on ``eval_arrays`` (split ``split``: valid or test);
    ``early_stopping``: ``{patience, metric}`` (None, or patience 0: none)."""

    def __init__(
        self,
        eval_arrays: SessionArrays,
        settings: EvaluationSettings,
        split: str,
        early_stopping: dict | None = None,
        device=None,
    ):
        self.arrays = eval_arrays
        self.split = split
        self.device = device
        self.stopping = None
        cutoffs = set(check_cutoffs(settings.cutoffs))
        if early_stopping and early_stopping.get("patience"):
            metric = early_stopping.get("metric", "mrr@20")
            self.stopping = EarlyStopping(int(early_stopping["patience"]), metric, split)
            cutoffs.add(parse_metric(metric)[1])
        self.settings = EvaluationSettings(tuple(sorted(cutoffs)), settings.tie_mode, settings.batch_size)
        self.eval_seconds = 0.0
        self.last: dict = {}

    @property
    def best_epoch(self) -> int | None:
        """The best epoch so far, with early stopping (None without)."""
        return None if self.stopping is None else self.stopping.best_epoch

    def after_epoch(self, epoch: int, row: dict, trainer) -> None:
        """Add the epoch's metric columns to its history ``row`` (which holds its training time ``wall_s``);
        ``trainer``: the training, whose ``model`` is evaluated."""
        row.update(self.measure(epoch, trainer.model, row))

    def measure(self, epoch: int, model, row: dict) -> dict:
        """The epoch's metric columns; ``row`` is the epoch's history row (its training time ``wall_s``)."""
        started = time.perf_counter()
        metrics = evaluate_model(
            model,
            self.arrays,
            cutoffs=self.settings.cutoffs,
            tie_mode=self.settings.tie_mode,
            batch_size=self.settings.batch_size,
            device=self.device,
            progress=False,
            source=f"the model after epoch {epoch}",
        )
        seconds = time.perf_counter() - started
        self.eval_seconds += seconds
        columns = {f"{name}@{k}": metrics[name][str(k)] for name in ACCURACY_METRICS for k in self.settings.cutoffs}
        bad = [name for name, value in columns.items() if not math.isfinite(value)]
        if bad:
            raise PipelineError(f"epoch {epoch}: the evaluation on {self.split} gave non-finite {', '.join(bad)}")
        columns["eval_s"] = seconds
        self.last = columns
        largest = max(self.settings.cutoffs)
        share = seconds / row["wall_s"] if row.get("wall_s") else math.nan
        log.info(
            "epoch %d on %s: recall@%d %.4f, mrr@%d %.4f; evaluation %.2f s, %.1f%% of the epoch's training time",
            epoch, self.split, largest, columns[f"recall@{largest}"], largest, columns[f"mrr@{largest}"],
            seconds, 100 * share,
        )  # fmt: skip
        if self.stopping is not None:
            self.stopping.update(epoch, columns[self.stopping.metric])
            if self.stopping.should_stop:
                log.info(
                    "early stopping: %s has not improved for %d epochs since epoch %d",
                    self.stopping.metric, self.stopping.patience, self.stopping.best_epoch,
                )  # fmt: skip
        return columns

    def resume(self, history: list[dict]) -> None:
        """Take up the rows of the epochs trained before a resume. A row without some of this evaluation's columns
        (written before NDCG was measured, with other cut-offs, or without the per-epoch evaluation) gets them as
        NaN, not measured, in place: every row of history.csv then has the same columns."""
        for row in history:
            for column in metric_columns(self.settings.cutoffs):
                row.setdefault(column, math.nan)
        if self.stopping is not None and history:
            self.stopping.resume(history)

    @property
    def should_stop(self) -> bool:
        return self.stopping is not None and self.stopping.should_stop

    def finish(self, trainer=None) -> dict:
        """What the training summary records of the curve (and of early stopping)."""
        summary = {"eval_every_epoch_seconds": self.eval_seconds, "eval_split": self.split}
        if self.stopping is not None:
            summary.update(best_epoch=self.stopping.best_epoch, best_value=self.stopping.best_value)
        return summary
