"""Early stopping on a validation metric: stop once it has not improved for ``patience`` epochs, keep the best
epoch's weights.

Only legitimate where the metric is measured on a validation split (the tuning setting, tuning trials): the
epoch count it picks is a choice, and a choice made on test would leak the test split into the result.
"""

from __future__ import annotations

import logging
import math

import torch

from gru4rec_pipeline.errors import ConfigError

log = logging.getLogger(__name__)


class EarlyStopping:
    """Tracks a metric (higher is better) epoch by epoch and holds a copy of the best epoch's weights."""

    def __init__(self, patience: int, metric: str, split: str):
        if split == "test":
            raise ConfigError(
                "training.early_stopping",
                "early stopping on the test split would choose the epoch count on test; it applies to the tuning "
                "setting and to tuning trials, which measure on valid",
            )
        if not isinstance(patience, int) or patience < 1:
            raise ConfigError("training.early_stopping.patience", f"got {patience!r}, expected an integer >= 1")
        self.patience = patience
        self.metric = metric
        self.best_value = -math.inf
        self.best_epoch = 0
        self.best_state: dict | None = None
        self.epochs_without_gain = 0

    def update(self, epoch: int, value: float, model: torch.nn.Module) -> None:
        if value > self.best_value:
            self.best_value, self.best_epoch, self.epochs_without_gain = value, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.epochs_without_gain += 1

    def resume(self, history: list[dict]) -> None:
        """Recall the metric of epochs trained before a resume. Their weights are not here: the training's
        checkpoint holds the best epoch's state, which ``training.train_model`` restores in the end."""
        for row in history:
            value = float(row[self.metric])
            if value > self.best_value:
                self.best_value, self.best_epoch, self.epochs_without_gain = value, int(row["epoch"]), 0
            else:
                self.epochs_without_gain += 1

    @property
    def should_stop(self) -> bool:
        return self.epochs_without_gain >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best epoch's weights into ``model`` (when this run saw that epoch; after a resume, the
        training restores them from its checkpoint)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
            log.info("kept the weights of epoch %d (%s %.4f)", self.best_epoch, self.metric, self.best_value)
