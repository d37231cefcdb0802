"""A diverging training told from a slow one, after every epoch, before its checkpoint or model is written
(:class:`DivergenceCheck`, the training loop's first observer).

With a learning rate too high GRU4Rec's loss rarely becomes NaN: it jumps above what a model that has learnt
nothing scores (bpr on the tiny preset: 25 at ``learning_rate: 5``, 0.22 normally, against ln 2 = 0.69 untrained)
and the weights may grow to millions, while the saturated sigmoids of TOP1 keep its loss bounded. The model still
ranks, worse, and nothing else would flag it. :func:`check_divergence` stops the training when, after an epoch,

- the mean loss or a weight is not finite;
- the mean loss is over ``UNTRAINED_FACTOR`` times the loss's untrained value (:func:`untrained_loss`: the loss
  of equal scores, derived from its definition and the run's sizes), which training lowers;
- the mean loss is over ``GROWTH_FACTOR`` times the lowest of the earlier epochs';
- a weight's magnitude is over ``WEIGHT_CEILING``: trained weights stay within a few units (0.7 to 4 on the
  default dataset at the configured settings), and at such magnitudes every sigmoid and tanh saturates.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gru4rec_pipeline.errors import PipelineError

UNTRAINED_FACTOR = 10.0
GROWTH_FACTOR = 10.0
WEIGHT_CEILING = 1e4


def untrained_loss(config, item_support: np.ndarray, n_sample: int) -> tuple[float, str]:
    """The mean loss of a model that scores every item alike, and how it comes about (for messages).

    ``config``: the training's Hyperparameters; ``n_sample``: the shared negatives per minibatch (the sampler's, 0
    without one). A sampled loss scores the minibatch's ``batch_size`` targets and the ``n_sample`` samples, N
    columns; with equal scores
    - cross-entropy is ln N (ce_full: ln of the items); with the logQ correction of ce_sampled, a column's score
      is lowered by ``logq * ln`` its support (``sample_alpha`` times that for a sample), and the value is
      ``E[logq ln s_target] + ln(batch_size E[s_target^-logq] + n_sample E[s_sample^(-alpha logq)])`` (targets
      drawn by support, samples by support^alpha; the mean of the log bounded by the log of the mean);
    - bpr and bpr_max are ln 2 (bpr_max's regularisation term, bpreg times the squared scores, is 0 at 0);
    - top1 is 1 - 1/(2N) and top1_max 1.
    """
    columns = config.batch_size + n_sample
    if config.loss == "ce_full":
        return math.log(len(item_support)), f"ln {len(item_support)} items"
    if config.loss == "ce_sampled":
        if config.logq <= 0:
            return math.log(columns), f"ln {columns} scored columns"
        support = np.asarray(item_support, dtype=np.float64)
        support = support[support > 0]
        targets = support / support.sum()
        samples = support**config.sample_alpha / (support**config.sample_alpha).sum()
        scale = config.batch_size * (targets * support**-config.logq).sum()
        scale += n_sample * (samples * support ** (-config.sample_alpha * config.logq)).sum()
        value = config.logq * (targets * np.log(support)).sum() + math.log(scale)
        return float(value), f"ln {columns} scored columns with their logQ correction"
    if config.loss in ("bpr", "bpr_max"):
        return math.log(2), "ln 2"
    if config.loss == "top1":
        return 1 - 1 / (2 * columns), f"1 - 1/(2 x {columns} columns)"
    return 1.0, "1"


def divergence_reason(mean_loss: float, earlier_losses: list[float], untrained: tuple[float, str], model):
    """Why an epoch's result shows a diverging training, or None. ``untrained``: :func:`untrained_loss`."""
    if not math.isfinite(mean_loss):
        return f"loss {mean_loss}"
    value, derivation = untrained
    if mean_loss > UNTRAINED_FACTOR * value:
        return (
            f"loss {mean_loss:.4g}, {mean_loss / value:.3g} x an untrained model's {value:.4g} ({derivation}: all "
            f"scores equal), over the {UNTRAINED_FACTOR:g} x that a training stays below"
        )
    if earlier_losses and mean_loss > GROWTH_FACTOR * min(earlier_losses):
        return f"loss {mean_loss:.4g}, over {GROWTH_FACTOR:g} x the lowest earlier epoch's {min(earlier_losses):.4g}"
    with torch.no_grad():
        for name, weight in model.named_parameters():
            largest = float(weight.detach().abs().max()) if weight.numel() else 0.0
            if not math.isfinite(largest):
                return f"loss {mean_loss:.4g}, weights {name} not finite"
            if largest > WEIGHT_CEILING:
                return f"loss {mean_loss:.4g}, weights {name} up to {largest:.3g} (over {WEIGHT_CEILING:g})"
    return None


def check_divergence(
    epoch: int, mean_loss: float, history: list[dict], model: torch.nn.Module, config, untrained: tuple[float, str]
) -> None:
    """PipelineError naming the epoch, the loss and the setting to lower when epoch ``epoch`` diverged
    (``history``: the earlier epochs' rows; ``config``: the training's Hyperparameters; ``untrained``:
    :func:`untrained_loss`)."""
    reason = divergence_reason(mean_loss, [row["loss"] for row in history], untrained, model)
    if reason is not None:
        raise PipelineError(
            f"training diverged in epoch {epoch}: {reason}; lower training.losses.{config.loss}.learning_rate "
            f"(now {config.learning_rate:g})"
        )


class DivergenceCheck:
    """After each epoch: :func:`check_divergence` of the epoch's loss and the trainer's model."""

    def __init__(self, hyperparameters, item_support: np.ndarray, n_sample: int):
        self.hyperparameters = hyperparameters
        self.untrained = untrained_loss(hyperparameters, item_support, n_sample)

    def after_epoch(self, epoch: int, row: dict, trainer) -> None:
        check_divergence(epoch, row["loss"], trainer.history, trainer.model, self.hyperparameters, self.untrained)
