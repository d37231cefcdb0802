"""The learning curve: a training's model evaluated after every epoch on its setting's evaluation split.

:class:`EpochEvaluation` is what ``train_model(..., epoch_evaluation=...)`` calls after each epoch: it returns the
epoch's ``recall@k``, ``mrr@k`` and ``ndcg@k`` (every configured cut-off) and ``eval_s`` for ``history.csv``, logs
what the evaluation cost next to the epoch's training time, and, with :class:`~gru4rec_pipeline.model.early_stopping.
EarlyStopping`, says when to stop and restores the best epoch's weights.

In the final setting the curve is measured on test: it is for reading, never for choosing an epoch count.
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
from gru4rec_pipeline.model.early_stopping import EarlyStopping
from gru4rec_pipeline.names import ACCURACY_METRICS, TUNING_METRICS

log = logging.getLogger(__name__)


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


class EpochEvaluation:
    """Evaluates a training's model after each epoch on ``eval_arrays`` (split ``split``: valid or test)."""

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
            _, cutoff = parse_metric(early_stopping.get("metric", "mrr@20"))
            self.stopping = EarlyStopping(
                int(early_stopping["patience"]), early_stopping.get("metric", "mrr@20"), split
            )
            cutoffs.add(cutoff)
        self.settings = EvaluationSettings(tuple(sorted(cutoffs)), settings.tie_mode, settings.batch_size)
        self.eval_seconds = 0.0
        self.last: dict = {}

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
            self.stopping.update(epoch, columns[self.stopping.metric], model)
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
        if self.stopping is None or not self.stopping.should_stop:
            return False
        log.info(
            "early stopping: %s has not improved for %d epochs since epoch %d",
            self.stopping.metric, self.stopping.patience, self.stopping.best_epoch,
        )  # fmt: skip
        return True

    def finish(self, model) -> dict:
        """Restore the best epoch's weights (early stopping); what the training summary records."""
        summary = {"eval_every_epoch_seconds": self.eval_seconds, "eval_split": self.split}
        if self.stopping is not None:
            self.stopping.restore(model)
            summary.update(best_epoch=self.stopping.best_epoch, best_value=self.stopping.best_value)
        return summary
