"""How an epoch drives the training step: the engine (``training.engine``, ``names.ENGINES``).

- ``loop`` (:class:`LoopEngine`): one Python call of the step per minibatch; the CPU's engine, with the step's
  compiled kernels;
- ``eager`` and ``graphs`` (``graphs.FixedShapeEngine``): the fixed-shape step in chunks over device buffers, run
  eagerly, or replayed from CUDA graphs (on a GPU, where launching a step's kernels one by one from Python keeps
  the device waiting).

Every engine has one method, ``run_epoch(progress) -> (loss_sum, steps)``: one epoch from zero hidden states, the
sum of the steps' losses (a 0-dim tensor on the device) and the number of steps; ``events``, then the number of
(input, target) pairs that epoch trained on (every training event once: the last steps have fewer active slots,
``iterator``); and a ``name``, the word the configuration, the log and the training's summary use for it.
:func:`engine_name` resolves ``auto`` (graphs on a CUDA device, eager there across processes, loop on a CPU) and
refuses an engine that cannot run; :func:`build_engine` makes it.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.training.graphs import FixedShapeEngine, GraphCaptureError
from gru4rec_pipeline.training.iterator import SessionParallelIterator, min_active_slots
from gru4rec_pipeline.training.sampler import NegativeSampler
from gru4rec_pipeline.training.step import TrainStep

log = logging.getLogger("gru4rec_pipeline")

BLOCK_STEPS = 1024  # steps whose indices are prepared (and moved to the device) at once
ENGINE_KEY = "training.engine"


class LoopEngine:
    """One Python call of ``step`` per minibatch (the CPU's engine, with its compiled kernels)."""

    name = "loop"

    def __init__(
        self, step: TrainStep, sampler: NegativeSampler | None, items: np.ndarray, iterator: SessionParallelIterator
    ):
        self.step, self.sampler, self.iterator = step, sampler, iterator
        self.items = torch.as_tensor(items, dtype=torch.int64, device=step.device)
        self.min_slots = min_active_slots(step.full or sampler is not None)
        self.events = 0

    def run_epoch(self, progress=None) -> tuple[torch.Tensor, int]:
        step, sampler, items, device = self.step, self.sampler, self.items, self.step.device
        state = step.init_state()
        loss_sum = torch.zeros((), device=device)
        steps = self.events = 0
        for block in self.iterator.blocks(BLOCK_STEPS, self.min_slots):
            positions = torch.as_tensor(block.positions, device=device)
            inputs, targets = items[positions], items[positions + 1]
            new_session = step.local(block.new_session)
            keep = torch.as_tensor(~new_session, device=device).to(torch.float32).unsqueeze(2)
            resets = new_session.any(axis=1).tolist()
            active = block.active
            for t in range(block.n_steps):
                if resets[t]:
                    for layer_state in state:
                        layer_state.mul_(keep[t])
                samples = sampler.next() if sampler is not None else None
                loss_sum += step(inputs[t], targets[t], samples, state, None if active is None else active[t])
            steps += block.n_steps
            self.events += block.n_events
            if progress is not None:
                progress.update(block.n_events)
        return loss_sum, steps


def engine_name(setting: str, device: torch.device, across_processes: bool) -> str:
    """The engine ``setting`` (``training.engine``) means on ``device``; an error for one that cannot run there."""
    if setting == "auto":
        if device.type != "cuda":
            return "loop"
        # Across processes the step's all-reduce runs eagerly (a collective inside a CUDA graph needs NCCL's graph
        # support, which is not assumed).
        return "eager" if across_processes else "graphs"
    if setting == "graphs" and device.type != "cuda":
        raise ConfigError(ENGINE_KEY, f"graphs replays CUDA graphs, which {device} has not: choose loop or eager")
    if setting == "graphs" and across_processes:
        raise ConfigError(
            ENGINE_KEY, "graphs cannot hold the processes' all-reduce: choose eager (or auto) for a data-parallel run"
        )
    return setting


def build_engine(
    name: str,
    step: TrainStep,
    sampler: NegativeSampler | None,
    items: np.ndarray,
    iterator: SessionParallelIterator,
    required: bool = False,
):
    """The engine ``name`` (:func:`engine_name`'s) for ``step`` over ``iterator``'s blocks of ``items`` (the training
    events' item indices). A step that CUDA cannot capture falls back to the loop with a log line saying why, or,
    where graphs was ``required`` (asked for by name), is an error: a run that asked for graphs never silently
    measures the loop."""
    if name == "loop":
        log.info("engine: loop (one call of the step per minibatch on %s)", step.device)
        return LoopEngine(step, sampler, items, iterator)
    try:
        engine = FixedShapeEngine(step, sampler, items, iterator, graphs=name == "graphs")
    except GraphCaptureError as exc:
        if required:
            raise ConfigError(ENGINE_KEY, f"graphs, but the training step cannot be captured: {exc}") from None
        log.warning("engine: graphs could not capture the training step (%s): loop instead", exc)
        return LoopEngine(step, sampler, items, iterator)
    if name == "graphs":
        log.info("engine: graphs (the fixed-shape step replayed, %d steps a graph)", engine.graph_steps)
    else:
        log.info("engine: eager (the fixed-shape step run eagerly on %s)", step.device)
    return engine
