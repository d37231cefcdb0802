"""How a model is trained: the trainer, the training loop and its observers.

- :func:`train` is one process's training of a job (``job.TrainingJob``) on its loaded inputs
  (:class:`TrainingInputs`): it sets up a :class:`Trainer` (the network with its step, sampler, epoch engine and
  iterator, on the job's device), resumes the job's checkpoint, runs :func:`run_epochs`, restores the best epoch's
  state where early stopping kept one, and writes the model folder (in a data-parallel training, rank 0 alone).
- :func:`run_epochs` is the loop itself, a comment per phase. What happens after an epoch besides training is its
  observers': the divergence check (``divergence``), the learning curve with early stopping
  (``evaluation/epoch_evaluation``), and whatever the caller adds (a tuning trial reports to its study and may be
  pruned: ``tuning/trial``). An observer has ``after_epoch(epoch, row, trainer)``, which may add columns to the
  epoch's history row or raise to end the training, and may have ``should_stop`` and ``finish(trainer)`` (what the
  summary adds).

With the same seed a CPU run is repeatable bit for bit, and a resumed run ends with the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gru4rec_pipeline.compiled import announce_compilation
from gru4rec_pipeline.compute import configure_threads, resolve_device
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.evaluation.epoch_evaluation import EpochEvaluation
from gru4rec_pipeline.model import kernels
from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.model.network import GRU4Rec, weights_digest
from gru4rec_pipeline.progress import TERMINAL, Progress, time_left
from gru4rec_pipeline.training.divergence import DivergenceCheck
from gru4rec_pipeline.training.engines import build_engine, engine_name
from gru4rec_pipeline.training.iterator import SessionParallelIterator
from gru4rec_pipeline.training.job import TrainingJob
from gru4rec_pipeline.training.parallel.group import ProcessGroup
from gru4rec_pipeline.training.parallel.shared_memory import process_share
from gru4rec_pipeline.training.sampler import NegativeSampler
from gru4rec_pipeline.training.state import Snapshot, TrainingState, checkpoint_path
from gru4rec_pipeline.training.step import StepSetup, TrainStep

log = logging.getLogger("gru4rec_pipeline")


@dataclass
class TrainingInputs:
    """What a training reads, loaded (``run.load_inputs``; a tuning trial and tests make their own)."""

    train: SessionArrays
    item_support: np.ndarray  # training events per vocabulary index
    vocabulary: dict | None = None  # the vocabulary's identity (``Vocabulary.identity()``), recorded in the model
    evaluation: SessionArrays | None = None  # the sessions of the per-epoch evaluation
    parent: object = None  # a retrain's ``retraining.ParentState``
    record: dict = field(default_factory=dict)  # what the summary adds (a retrain's parent and clicks)
    vocabulary_table: Vocabulary | None = None  # written into the model folder: what it trained with (grown: a retrain)


class Trainer:
    """One process's training of ``job`` on ``inputs``: its network (``model``), step, sampler, epoch engine and
    iterator on its device, its history so far, and the best epoch's state. ``group``: this process's place in a
    data-parallel training (``parallel.group.ProcessGroup``; None: one process)."""

    def __init__(self, job: TrainingJob, inputs: TrainingInputs, group: ProcessGroup | None = None):
        hyperparameters = job.hyperparameters
        hyperparameters.validate()
        self.job, self.inputs, self.group = job, inputs, group
        self.writes = group is None or group.is_writer
        self.epochs = hyperparameters.epochs
        item_support = np.asarray(inputs.item_support, dtype=np.int64)
        _check_item_indices(inputs.train, len(item_support))
        self.device = resolve_device(job.run.device) if group is None else group.device
        configure_threads(job.run.threads)
        log.info("training %s on %s with %d threads", hyperparameters.loss, self.device, torch.get_num_threads())
        self.iterator = _session_iterator(inputs.train, hyperparameters)
        engine = engine_name(job.run.engine, self.device, group is not None)
        compiled = engine == "loop"
        self.share = None if group is None else process_share(group, job.parallel, compiled, hyperparameters)
        built = build_step(hyperparameters, item_support, self.device, job.run.seed, compiled, self.share)
        self.step, self.sampler = built
        if self.share is not None:
            self.share.attach(self.step, self.sampler)
        self.model = self.step.model
        self.model.vocabulary = inputs.vocabulary
        n_sample = self.sampler.n_sample if self.sampler is not None else 0
        self.observers = [DivergenceCheck(hyperparameters, item_support, n_sample)]
        self.curve = None
        if job.epoch_evaluation is not None:
            options = job.epoch_evaluation
            self.curve = EpochEvaluation(inputs.evaluation, options.settings, options.split, options.early_stopping)
            self.observers.append(self.curve)
        if inputs.parent is not None:
            inputs.parent.apply(self.step, self.sampler)
        # Resume from the last epoch's checkpoint, if there is one of this training.
        self.checkpoint = None
        self.identity = ""
        if job.run.checkpoints:
            self.identity = job.identity_digest()
            self.checkpoint = checkpoint_path(job.model_folder.checkpoints, self.identity)
        self.history: list[dict] = []
        self.best: Snapshot | None = None  # the state after the best epoch so far (early stopping)
        self._resume()
        if self.device.type == "cpu":
            with announce_compilation("the training kernels"):
                kernels.warm_up()
        self.engine = build_engine(
            engine, self.step, self.sampler, inputs.train.items, self.iterator, job.run.engine == "graphs"
        )

    @property
    def epoch(self) -> int:
        """The last epoch done (0: none)."""
        return len(self.history)

    def _resume(self) -> None:
        state = TrainingState.resumable(self.checkpoint, self.identity, self.epochs) if self.checkpoint else None
        if state is None:
            return
        state.last.restore(self.step, self.sampler)
        self.history, self.best = list(state.history), state.best
        if self.curve is not None:
            self.curve.resume(self.history)
        log.info("resuming from %s after epoch %d", self.checkpoint, state.last.epoch)

    def run_epoch(self, epoch: int) -> dict:
        """Train one epoch; its history row (mean loss, events, speed, seconds)."""
        started = time.perf_counter()
        bar = Progress(
            f"epoch {epoch}", total=self.iterator.upper_bound_events(), unit="events", enabled=self.job.run.progress
        )
        loss_sum, steps = self.engine.run_epoch(bar)
        mean_loss = float(loss_sum) / max(steps, 1)
        bar.set_postfix(f"loss {mean_loss:.4f}")
        bar.close()
        wall = time.perf_counter() - started
        events = self.engine.events  # every training event once (the last steps have fewer slots)
        return {"epoch": epoch, "loss": mean_loss, "events": events, "events_per_s": events / wall, "wall_s": wall}

    def keep_if_best(self, epoch: int) -> None:
        """Keep the state after ``epoch`` when early stopping ranks it the best so far."""
        if self.curve is not None and self.curve.best_epoch == epoch:
            self.best = Snapshot.capture(self.step, self.sampler, epoch)

    def check_replicas(self, epoch: int) -> None:
        if self.share is not None:
            self.share.check_replicas(self.step, epoch)

    def save_progress(self, epoch: int) -> None:
        """The history so far and (with checkpoints) the checkpoint after ``epoch``; one process writes."""
        if not self.writes:
            return
        self.job.model_folder.path.mkdir(parents=True, exist_ok=True)
        self.job.model_folder.write_history(self.history)
        if self.checkpoint is not None:
            last = Snapshot.capture(self.step, self.sampler, epoch)
            self.state(last, self.best, self.history).save(self.checkpoint)

    def state(self, last: Snapshot, best: Snapshot | None, history: list[dict]) -> TrainingState:
        """The training's state with the snapshot ``last`` (and ``best``, and ``history``)."""
        train, parent = self.inputs.train, self.inputs.parent
        low, high = (float(train.times.min()), float(train.times.max())) if train.n_events else (0.0, 0.0)
        if parent is not None:
            low, high = min(low, parent.time_range[0]), max(high, parent.time_range[1])
        return TrainingState(
            last,
            history,
            best,
            self.identity,
            self.job.hyperparameters.to_dict(),
            self.job.run.seed,
            self.model.vocabulary,
            (low, high),
            last.epoch + (parent.epochs if parent is not None else 0),
            len(self.history),
            weights_digest(self.model.state_dict()),
        )

    def finish(self) -> dict:
        """Restore the best epoch's state (early stopping), write the model folder; the summary."""
        if self.best is not None and self.best.epoch != self.history[-1]["epoch"]:
            log.info("restoring the state after epoch %d, the best", self.best.epoch)
            self.best.restore(self.step, self.sampler)
        summary = _summary(self.history, self.device, self.engine.name)
        for observer in self.observers:
            if hasattr(observer, "finish"):
                summary.update(observer.finish(self))
        if self.share is not None:
            summary.update(self.share.summary())
        summary.update(self.inputs.record)
        if self.writes:
            folder = self.job.model_folder
            self.model.save(folder.model)
            # The state kept (the best epoch's, with early stopping); its weights and history are the folder's.
            kept = Snapshot.capture(self.step, self.sampler, self.best.epoch if self.best else len(self.history))
            kept.weights = None
            self.state(kept, None, []).save(folder.state)
            if not folder.history.exists():
                folder.write_history(self.history)
            if self.inputs.vocabulary_table is not None and folder.vocab.resolve() != Path(self.job.vocab).resolve():
                self.inputs.vocabulary_table.save(folder.vocab)  # (not over the very file it read)
            folder.write_summary(summary)
        return summary


def run_epochs(trainer: Trainer, observers: list) -> None:
    """The training loop: from the trainer's last epoch (a resumed checkpoint's, else none) to its last."""
    first, started = trainer.epoch + 1, time.perf_counter()
    for epoch in range(first, trainer.epochs + 1):
        # Train one epoch: the engine runs its steps over the session-parallel minibatches.
        row = trainer.run_epoch(epoch)
        # Look at it: divergence, the learning curve and early stopping, what the caller added (a trial's report).
        for observer in observers:
            observer.after_epoch(epoch, row, trainer)
        trainer.history.append(row)
        left = _epochs_left(trainer.epochs - epoch, (time.perf_counter() - started) / (epoch - first + 1))
        line = (
            f"epoch {epoch}: loss {row['loss']:.6f}, {row['events']} events, {row['events_per_s']:.0f} events/s{left}"
        )
        log.info("%s", line, **TERMINAL)
        # Keep the best epoch's state: early stopping restores it in the end.
        trainer.keep_if_best(epoch)
        # Across processes: every replica holds the same weights.
        trainer.check_replicas(epoch)
        # Write the history and the checkpoint, which a rerun resumes.
        trainer.save_progress(epoch)
        # Stop where an observer says so (early stopping).
        if any(getattr(observer, "should_stop", False) for observer in observers):
            break


def train(job: TrainingJob, inputs: TrainingInputs, group: ProcessGroup | None = None, observers=()) -> dict:
    """Train ``job`` on ``inputs`` in this process (module docstring) and write its model folder; ``observers``:
    what looks at each epoch besides the job's own (the divergence check, the learning curve). Returns the
    summary: epochs, train_seconds, events, events_per_s, final_loss, device, threads, engine (and processes and
    exchange in a data-parallel training, the curve's and a retrain's records)."""
    trainer = Trainer(job, inputs, group)
    trainer.observers += list(observers)
    run_epochs(trainer, trainer.observers)
    return trainer.finish()


def _epochs_left(epochs: int, seconds_each: float) -> str:
    """What the epoch's line adds: the epochs left and their time at the epochs' pace so far (early stopping may
    end the training sooner)."""
    if epochs <= 0:
        return ""
    return f"; {epochs} epoch{'s' if epochs > 1 else ''} left, {time_left(epochs * seconds_each)}"


def _check_item_indices(train: SessionArrays, n_items: int) -> None:
    if train.n_events and (train.items.min() < 0 or train.items.max() >= n_items):
        raise DataFormatError("<train>", f"item indices must lie in 0..{n_items - 1} (the vocabulary size)")


def _session_iterator(train: SessionArrays, hyperparameters: Hyperparameters) -> SessionParallelIterator:
    try:
        return SessionParallelIterator(train.offsets, hyperparameters.batch_size)
    except ValueError as exc:
        raise ConfigError(
            f"training.losses.{hyperparameters.loss}.batch_size",
            f"{exc}: the training split is too small for this loss's minibatch; lower batch_size or use more data",
        ) from None


def _summary(history: list[dict], device: torch.device, engine: str) -> dict:
    train_seconds = sum(row["wall_s"] for row in history)
    events = sum(row["events"] for row in history)
    return {
        "epochs": len(history),
        "train_seconds": train_seconds,
        "events": events,
        "events_per_s": events / train_seconds if train_seconds > 0 else 0.0,
        "final_loss": history[-1]["loss"] if history else float("nan"),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "engine": engine,  # how the epochs ran: loop, eager or graphs (engines.py)
    }


def build_step(
    hyperparameters: Hyperparameters,
    item_support: np.ndarray,
    device: torch.device,
    seed: int,
    use_kernels: bool = True,
    share=None,
) -> tuple[TrainStep, NegativeSampler | None]:
    """The network (``step.model``), its training step and the negative sampler (None where the loss samples
    none), seeded from ``seed`` as a training seeds them: the weights from ``seed``, dropout from ``seed + 1``,
    the samples from ``seed + 2``. ``use_kernels``: the CPU's compiled kernels (False: the fixed-shape step);
    ``share``: this process's share of a data-parallel training (``parallel.group.process_share``)."""
    sizes = hyperparameters.layers, hyperparameters.embedding, hyperparameters.embedding_dim
    model = GRU4Rec(len(item_support), *sizes, seed=seed)
    step = TrainStep(model.to(device), hyperparameters, item_support, StepSetup(seed + 1, use_kernels, share))
    return step, build_sampler(hyperparameters, item_support, device, seed)


def build_sampler(
    hyperparameters: Hyperparameters, item_support: np.ndarray, device: torch.device, seed: int
) -> NegativeSampler | None:
    """The negative sampler of a training seeded from ``seed`` (None where the loss samples none)."""
    if hyperparameters.loss == "ce_full" or hyperparameters.n_sample == 0:
        return None
    return NegativeSampler(
        item_support,
        hyperparameters.n_sample,
        hyperparameters.sample_alpha,
        hyperparameters.sample_store_size,
        device,
        seed=seed + 2,
    )
