"""How an epoch drives the training step: the per-step loop, or the fast path (``fast_path``).

Both drivers have one method, ``run_epoch(progress) -> (loss_sum, steps)``: one epoch from zero hidden states,
the sum of the steps' losses (a 0-dim tensor on the device) and the number of steps; ``events`` is then the number
of (input, target) pairs that epoch trained on (every training event once: the last steps have fewer active lanes,
``iterator``). ``name`` is what the training's summary calls the driver (its ``fast_path`` field: ``off``,
``eager`` or ``cuda_graphs``).
"""

from __future__ import annotations

import numpy as np
import torch

from gru4rec_pipeline.model.fast_path import fast_path_epochs
from gru4rec_pipeline.model.iterator import SessionParallelIterator, min_active_lanes
from gru4rec_pipeline.model.sampling import NegativeSampler
from gru4rec_pipeline.model.train_step import TrainStep

BLOCK_STEPS = 1024  # steps whose indices are prepared (and moved to the device) at once


class LoopEpochs:
    """One Python call of ``step`` per minibatch (the CPU's path, with its compiled kernels)."""

    name = "off"

    def __init__(
        self, step: TrainStep, sampler: NegativeSampler | None, items: np.ndarray, iterator: SessionParallelIterator
    ):
        self.step, self.sampler, self.iterator = step, sampler, iterator
        self.items = torch.as_tensor(items, dtype=torch.int64, device=step.device)
        self.min_lanes = min_active_lanes(step.full or sampler is not None)
        self.events = 0

    def run_epoch(self, progress=None) -> tuple[torch.Tensor, int]:
        step, sampler, items, device = self.step, self.sampler, self.items, self.step.device
        lanes = step.lanes if step.lanes is not None else slice(None)
        state = step.init_state()
        loss_sum = torch.zeros((), device=device)
        steps = self.events = 0
        for block in self.iterator.blocks(BLOCK_STEPS, self.min_lanes):
            positions = torch.as_tensor(block.positions, device=device)
            inputs, targets = items[positions], items[positions + 1]
            keep = torch.as_tensor(~block.new_session[:, lanes], device=device).to(torch.float32).unsqueeze(2)
            resets = block.new_session[:, lanes].any(axis=1).tolist()
            for t in range(block.n_steps):
                if resets[t]:
                    for layer_state in state:
                        layer_state.mul_(keep[t])
                samples = sampler.next() if sampler is not None else None
                loss_sum += step(
                    inputs[t], targets[t], samples, state, None if block.active is None else block.active[t]
                )
            steps += block.n_steps
            self.events += block.n_events
            if progress is not None:
                progress.update(block.n_events)
        return loss_sum, steps


def epoch_driver(config, device: torch.device, step: TrainStep, sampler, items: np.ndarray, iterator):
    """The fast path where ``config.fast_path`` asks for it (or auto on a GPU), else the per-step loop."""
    fast = fast_path_epochs(config, device, step, sampler, items, iterator)
    return fast if fast is not None else LoopEpochs(step, sampler, items, iterator)
