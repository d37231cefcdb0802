"""A diverging training told from a slow one, after every epoch, before its checkpoint or model is written.

With a learning rate far too high GRU4Rec's loss does not become NaN: it jumps by orders of magnitude in the first
epoch (bpr on the default dataset: 2.7e6 at ``learning_rate: 1e6``, 0.28 normally) and the weights grow to
millions, while the saturated sigmoids of TOP1 keep its loss bounded. The model still ranks, worse, and nothing
else would flag it. :func:`check_divergence` stops the training when, after an epoch,

- the mean loss or a weight is not finite;
- the mean loss is over ``LOSS_CEILING_FACTOR`` times ``max(1, ln n_items)``: an untrained model (equal scores)
  has a loss of ln 2 (BPR), 1 (TOP1) or ln of the items it ranks (cross-entropy), and training lowers it;
- the mean loss is over ``GROWTH_FACTOR`` times the lowest of the earlier epochs';
- a weight's magnitude is over ``WEIGHT_CEILING``: trained weights stay within a few units (0.7 to 4 on the
  default dataset at the configured settings), and at such magnitudes every sigmoid and tanh saturates.
"""

from __future__ import annotations

import math

import torch

from gru4rec_pipeline.errors import PipelineError

LOSS_CEILING_FACTOR = 100.0
GROWTH_FACTOR = 10.0
WEIGHT_CEILING = 1e4


def divergence_reason(mean_loss: float, earlier_losses: list[float], n_items: int, model: torch.nn.Module):
    """Why an epoch's result shows a diverging training, or None."""
    if not math.isfinite(mean_loss):
        return f"loss {mean_loss}"
    ceiling = LOSS_CEILING_FACTOR * max(1.0, math.log(max(n_items, 1)))
    if mean_loss > ceiling:
        return f"loss {mean_loss:.4g}, over {ceiling:.4g} ({LOSS_CEILING_FACTOR:g} x max(1, ln {n_items} items))"
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


def check_divergence(epoch: int, mean_loss: float, history: list[dict], model: torch.nn.Module, config) -> None:
    """PipelineError naming the epoch, the loss and the setting to lower when epoch ``epoch`` diverged
    (``history``: the earlier epochs' rows; ``config``: the training's TrainConfig)."""
    reason = divergence_reason(mean_loss, [row["loss"] for row in history], model.n_items, model)
    if reason is not None:
        raise PipelineError(
            f"training diverged in epoch {epoch}: {reason}; lower training.losses.{config.loss}.learning_rate "
            f"(now {config.learning_rate:g})"
        )
