"""Training stage: session-parallel GRU4Rec training with per-epoch checkpoints.

- :func:`run_training` is the stage's driver (the workflow's ``train_model`` script and the command
  line's ``train`` call it): it reads the training session arrays and the vocabulary, holds the lock on
  the output folder, keeps checkpoints per training (``checkpoints.training_fingerprint``), writes the
  model, ``history.csv`` and ``training.json``, and removes the checkpoints once the model is written.
- :func:`train_model` is the loop itself. With the same seed a CPU run is repeatable bit for bit, and a
  resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from gru4rec_pipeline.compute import configure_threads, resolve_device
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError, DataFormatError, PipelineError
from gru4rec_pipeline.files import write_json_atomic
from gru4rec_pipeline.model import kernels
from gru4rec_pipeline.model.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    TrainingLock,
    load_checkpoint,
    save_checkpoint,
    training_fingerprint,
    write_history,
)
from gru4rec_pipeline.model.graph_training import fast_epoch_runner
from gru4rec_pipeline.model.hyperparameters import TrainConfig
from gru4rec_pipeline.model.iterator import SessionParallelIterator
from gru4rec_pipeline.model.network import GRU4Rec
from gru4rec_pipeline.model.sampling import NegativeSampler, set_generator_state
from gru4rec_pipeline.model.train_step import TrainStep
from gru4rec_pipeline.progress import Progress

log = logging.getLogger("gru4rec_pipeline")

BLOCK_STEPS = 1024  # steps whose indices are prepared (and moved to the device) at once
# Settings that do not change what a training computes: a checkpoint is resumed across them.
RUN_ONLY_SETTINGS = ("epochs", "device", "threads", "fast_path")


def _fingerprint(train: SessionArrays, n_items: int, config: TrainConfig) -> dict:
    """What a checkpoint must match to be resumed (everything but run length and hardware)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in RUN_ONLY_SETTINGS}
    return {"config": settings, "n_events": train.n_events, "n_sessions": train.n_sessions, "n_items": n_items}


def run_training(
    train_path: str | Path,
    vocab_path: str | Path,
    loss: str,
    hyperparameters: dict,
    model_path: str | Path,
    history_path: str | Path,
    summary_path: str | Path,
    checkpoint_root: str | Path | None = None,
    seed: int = 42,
    device: str = "auto",
    threads: int = 1,
    progress: bool = True,
    epoch_evaluation=None,
) -> dict:
    """The training stage: train ``loss`` with ``hyperparameters`` on the session arrays ``train_path``.

    Writes the model, its history and ``summary_path`` (JSON: epochs, seconds, events/s, final loss, device,
    threads); returns the summary. With ``checkpoint_root`` an interrupted training resumes from its last
    epoch, and the checkpoints are removed once the model is written (a forced rerun then trains anew).
    """
    settings = {**hyperparameters, "loss": loss, "seed": seed, "device": device, "threads": threads}
    config = TrainConfig.from_dict(settings)
    vocabulary = Vocabulary.load(vocab_path)
    train = SessionArrays.load(train_path)
    with TrainingLock(Path(model_path).parent):
        checkpoint_dir = None
        if checkpoint_root is not None:
            identity = {k: v for k, v in config.to_dict().items() if k not in RUN_ONLY_SETTINGS}
            checkpoint_dir = Path(checkpoint_root) / training_fingerprint(identity, train_path)
            log.info("checkpoints in %s", checkpoint_dir)
        summary = train_model(
            train,
            vocabulary.support,
            config,
            model_path,
            history_path,
            checkpoint_dir=checkpoint_dir,
            progress=progress,
            vocabulary_identity=vocabulary.identity(),
            epoch_evaluation=epoch_evaluation,
        )
        write_json_atomic(summary_path, summary)
        if checkpoint_root is not None:
            shutil.rmtree(checkpoint_root, ignore_errors=True)
    log.info("training summary: %s", summary)
    return summary


def train_model(
    train: SessionArrays,
    item_support: np.ndarray,
    config: TrainConfig,
    model_path,
    history_path,
    checkpoint_dir=None,
    progress: bool = True,
    vocabulary_identity: dict | None = None,
    on_epoch=None,
    epoch_evaluation=None,
) -> dict:
    """Train GRU4Rec; write the model and the history; return a summary.

    ``item_support``: training events per vocabulary index; ``vocabulary_identity``: what the model
    records of its vocabulary (``Vocabulary.identity()``). ``on_epoch(epoch, model)`` runs after each
    epoch is recorded (a tuning trial evaluates the model there, and stops the training by raising).
    ``epoch_evaluation`` (``evaluation.epoch_evaluation.EpochEvaluation``) adds each epoch's metrics to its
    history row, may stop the training early and restores the best epoch's weights before the model is saved.
    Summary keys: epochs, train_seconds, events, events_per_s, final_loss, device, threads.
    """
    config.validate()
    model_path, history_path = Path(model_path), Path(history_path)
    item_support = np.asarray(item_support, dtype=np.int64)
    n_items = len(item_support)
    if train.n_events and (train.items.min() < 0 or train.items.max() >= n_items):
        raise DataFormatError("<train>", f"item indices must lie in 0..{n_items - 1} (the vocabulary size)")
    device = resolve_device(config.device)
    configure_threads(config.threads)
    log.info("training %s on %s with %d threads", config.loss, device, torch.get_num_threads())
    try:
        iterator = SessionParallelIterator(train.offsets, config.batch_size)
    except ValueError as exc:
        raise ConfigError(
            f"training.losses.{config.loss}.batch_size",
            f"{exc}: the training split is too small for this loss's minibatch; lower batch_size or use more data",
        ) from None

    step, sampler = build_step(config, item_support, device)
    model = step.model
    model.vocabulary = vocabulary_identity

    history: list[dict] = []
    start_epoch = 0
    fingerprint = _fingerprint(train, n_items, config)
    checkpoint_path = None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        checkpoint_path = checkpoint_dir / CHECKPOINT_NAME
        payload = load_checkpoint(checkpoint_path)
        if payload is not None and payload["fingerprint"] == fingerprint and payload["epoch"] <= config.epochs:
            model.load_state_dict(payload["model"])
            step.optimizer.load_state_dict(payload["optimizer"])
            set_generator_state(step.dropout_generator, payload["dropout_generator"], "dropout")
            if sampler is not None:
                sampler.load_state_dict(payload["sampler"])
            history = list(payload["history"])
            start_epoch = int(payload["epoch"])
            if epoch_evaluation is not None:
                epoch_evaluation.resume(history)
            log.info("resuming from %s after epoch %d", checkpoint_path, start_epoch)
        elif payload is not None:
            log.warning("checkpoint %s belongs to another run; starting over", checkpoint_path)

    if device.type == "cpu":
        kernels.warm_up()
    items = torch.as_tensor(train.items, dtype=torch.int64, device=device)
    batch = config.batch_size
    # The static-shape step (CUDA graphs on a GPU), or None for the per-step loop below: graph_training.py.
    fast_epochs = fast_epoch_runner(config, device, step, sampler, train.items, iterator)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        started = time.perf_counter()
        state = model.init_state(batch)
        loss_sum = torch.zeros((), device=device)
        steps = 0
        bar = Progress(f"epoch {epoch}", total=iterator.upper_bound_events(), unit="events", enabled=progress)
        blocks = iterator.blocks(BLOCK_STEPS)
        if fast_epochs is not None:
            loss_sum, steps = fast_epochs.run_epoch(bar)
            blocks = ()
        for block in blocks:
            positions = torch.as_tensor(block.positions, device=device)
            inputs, targets = items[positions], items[positions + 1]
            keep = torch.as_tensor(~block.new_session, device=device).to(torch.float32).unsqueeze(2)
            resets = block.new_session.any(axis=1).tolist()
            for t in range(block.n_steps):
                if resets[t]:
                    for layer_state in state:
                        layer_state.mul_(keep[t])
                samples = sampler.next() if sampler is not None else None
                loss_sum += step(inputs[t], targets[t], samples, state)
            steps += block.n_steps
            bar.update(block.n_steps * batch)
        mean_loss = float(loss_sum) / max(steps, 1)
        bar.set_postfix(f"loss {mean_loss:.4f}")
        bar.close()
        wall = time.perf_counter() - started
        if not math.isfinite(mean_loss):
            raise PipelineError(f"training diverged in epoch {epoch}: loss {mean_loss}")
        events = steps * batch
        row = {"epoch": epoch, "loss": mean_loss, "events": events, "events_per_s": events / wall, "wall_s": wall}
        if epoch_evaluation is not None:
            row.update(epoch_evaluation.measure(epoch, model, row))
        history.append(row)
        log.info("epoch %d: loss %.6f, %d events, %.0f events/s", epoch, mean_loss, events, events / wall)
        write_history(history_path, history)
        if checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path,
                {
                    "format": CHECKPOINT_FORMAT,
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                    "optimizer": step.optimizer.state_dict(),
                    "dropout_generator": step.dropout_generator.get_state(),
                    "sampler": sampler.state_dict() if sampler is not None else None,
                    "history": history,
                },
            )
        if on_epoch is not None:
            on_epoch(epoch, model)
        if epoch_evaluation is not None and epoch_evaluation.should_stop:
            break

    evaluated = epoch_evaluation.finish(model) if epoch_evaluation is not None else {}
    model.save(model_path)
    if not history_path.exists():
        write_history(history_path, history)
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
        # How the epochs ran: CUDA graphs of the static-shape step, that step eagerly, or the per-step loop.
        "step": "loop" if fast_epochs is None else ("cuda_graphs" if fast_epochs.graphs else "static"),
        **evaluated,
    }


def build_step(
    config: TrainConfig, item_support: np.ndarray, device: torch.device, sampler_device: torch.device | None = None
) -> tuple[TrainStep, NegativeSampler | None]:
    """The network (``step.model``), its training step and the negative sampler (None where the loss samples
    none), seeded from ``config.seed`` as :func:`train_model` trains them. The sampler may live on another
    device (``sampler_device``) to compare a GPU step with a CPU one on the same negatives."""
    model = GRU4Rec(len(item_support), config.layers, config.embedding, config.embedding_dim, seed=config.seed)
    step = TrainStep(
        model.to(device),
        config.loss,
        config.batch_size,
        config.learning_rate,
        config.momentum,
        config.dropout_embed,
        config.dropout_hidden,
        item_support,
        logq=config.logq,
        sample_alpha=config.sample_alpha,
        bpreg=config.bpreg,
        elu_param=config.elu_param,
        seed=config.seed + 1,
    )
    if config.loss == "ce_full" or config.n_sample == 0:
        return step, None
    sampler = NegativeSampler(
        item_support,
        config.n_sample,
        config.sample_alpha,
        config.sample_store_size,
        sampler_device or device,
        seed=config.seed + 2,
    )
    return step, sampler
