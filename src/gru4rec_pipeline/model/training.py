"""Training stage: session-parallel GRU4Rec training with per-epoch checkpoints.

- :func:`run_training` is the stage's driver (the workflow's ``train_model`` script and the command
  line's ``train`` call it): it reads the training session arrays and the vocabulary, holds the lock on
  the output folder, keeps checkpoints per training (``checkpoints.training_fingerprint``), writes the
  model, ``history.csv`` and ``training.json``, and removes the checkpoints once the model is written.
- :func:`train_model` is the loop itself. With the same seed a CPU run is repeatable bit for bit, and a
  resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from gru4rec_pipeline.compute import configure_threads, resolve_device
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.files import write_json_atomic
from gru4rec_pipeline.model import distributed, kernels
from gru4rec_pipeline.model.checkpoints import (
    CHECKPOINT_NAME,
    TrainingLock,
    capture_state,
    checkpoint_payload,
    load_checkpoint,
    restore_state,
    save_checkpoint,
    training_fingerprint,
    write_history,
)
from gru4rec_pipeline.model.divergence import check_divergence, untrained_loss
from gru4rec_pipeline.model.epochs import epoch_driver
from gru4rec_pipeline.model.hyperparameters import TrainConfig
from gru4rec_pipeline.model.iterator import SessionParallelIterator
from gru4rec_pipeline.model.network import GRU4Rec
from gru4rec_pipeline.model.sampling import NegativeSampler
from gru4rec_pipeline.model.shared_exchange import exchange_for
from gru4rec_pipeline.model.train_step import TrainStep
from gru4rec_pipeline.model.warm_start import WarmStart, save_training_state
from gru4rec_pipeline.progress import Progress

log = logging.getLogger("gru4rec_pipeline")

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
    processes: int = 1,
    nodes: int = 1,
    state_path: str | Path | None = None,
    epoch_evaluation=None,
    exchange: str = "auto",
) -> dict:
    """The training stage: train ``loss`` with ``hyperparameters`` on the session arrays ``train_path``.

    Writes the model, its history and ``summary_path`` (JSON: epochs, seconds, events/s, final loss, device,
    threads); returns the summary. With ``checkpoint_root`` an interrupted training resumes from its last
    epoch, and the checkpoints are removed once the model is written (a forced rerun then trains anew).
    ``processes`` per node x ``nodes`` > 1: one model trained data-parallel by that many processes
    (``distributed``), which this call launches and waits for; ``exchange`` (``names.EXCHANGES``) is how they
    combine their gradients.
    """
    run = {
        "train_path": str(train_path),
        "vocab_path": str(vocab_path),
        "model_path": str(model_path),
        "history_path": str(history_path),
        "summary_path": str(summary_path),
        "settings": {**hyperparameters, "loss": loss, "seed": seed, "device": device, "threads": threads},
        "progress": progress,
        "world_size": processes * nodes,
        "exchange": exchange,
        "state_path": None if state_path is None else str(state_path),
    }
    config = TrainConfig.from_dict(run["settings"])
    # Read here also when other processes train: bad input stops the run before any process starts.
    vocabulary = Vocabulary.load(vocab_path)
    train = SessionArrays.load(train_path)
    vocabulary.check_indices(train, train_path, vocab_path)
    with TrainingLock(Path(model_path).parent) as lock:
        run["checkpoint_dir"] = None
        if checkpoint_root is not None:
            identity = {k: v for k, v in config.to_dict().items() if k not in RUN_ONLY_SETTINGS}
            run["checkpoint_dir"] = str(Path(checkpoint_root) / training_fingerprint(identity, train_path))
            log.info("checkpoints in %s", run["checkpoint_dir"])
        if run["world_size"] > 1:
            _refuse_epoch_evaluation_across_processes(epoch_evaluation)
            lock.share()  # with rank 0, which holds it too while it trains
            summary = _launch_processes(run, processes, nodes)
        else:
            summary = train_run(run, inputs=(train, vocabulary), epoch_evaluation=epoch_evaluation)
        if checkpoint_root is not None:
            shutil.rmtree(checkpoint_root, ignore_errors=True)
    log.info("training summary: %s", summary)
    return summary


def _refuse_epoch_evaluation_across_processes(epoch_evaluation) -> None:
    """The per-epoch evaluation runs in the training's own process: a data-parallel training goes without its
    learning curve (said so), and early stopping, which would be ignored there, is refused."""
    if epoch_evaluation is None:
        return
    if epoch_evaluation.stopping is not None:
        raise ConfigError(
            "training.early_stopping",
            "early stopping needs the per-epoch evaluation, which a data-parallel training (training.processes or "
            "training.nodes above 1) does not run; turn one of them off",
        )
    log.warning("a data-parallel training is not evaluated after each epoch: history.csv has no learning curve")


def train_run(
    run: dict, group=None, inputs: tuple[SessionArrays, Vocabulary] | None = None, epoch_evaluation=None
) -> dict:
    """One process's part of the training ``run`` (what ``run_training`` describes): reads the inputs (unless
    given: the session arrays and the vocabulary), trains, and (the only process, or rank 0 of ``group``)
    writes the summary."""
    config = TrainConfig.from_dict(run["settings"])
    if inputs is None:
        inputs = SessionArrays.load(run["train_path"]), Vocabulary.load(run["vocab_path"])
    train, vocabulary = inputs
    summary = train_model(
        train,
        vocabulary.support,
        config,
        run["model_path"],
        run["history_path"],
        checkpoint_dir=run["checkpoint_dir"],
        progress=run["progress"],
        vocabulary_identity=vocabulary.identity(),
        group=group,
        exchange=run.get("exchange", "auto"),
        state_path=run.get("state_path"),
        epoch_evaluation=epoch_evaluation,
    )
    if group is None or group.is_writer:
        write_json_atomic(run["summary_path"], summary)
    return summary


def _launch_processes(run: dict, processes: int, nodes: int) -> dict:
    """Start the processes of a data-parallel training on ``run`` (written beside the model for them) and
    return the summary rank 0 wrote."""
    folder = Path(run["model_path"]).parent
    spec_path = folder / f".{Path(run['model_path']).stem}.run.json"
    write_json_atomic(spec_path, run)
    try:
        distributed.launch(processes, nodes, str(spec_path), run["settings"]["threads"])
    finally:
        spec_path.unlink(missing_ok=True)
    return json.loads(Path(run["summary_path"]).read_text())


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
    group=None,
    exchange: str = "auto",
    initial: WarmStart | None = None,
    state_path=None,
    epoch_evaluation=None,
) -> dict:
    """Train GRU4Rec; write the model and the history; return a summary.

    ``item_support``: training events per vocabulary index; ``vocabulary_identity``: what the model
    records of its vocabulary (``Vocabulary.identity()``). ``on_epoch(epoch, model)`` runs after each
    epoch is recorded (a tuning trial evaluates the model there, and stops the training by raising).
    ``group``: this process's ``distributed.ProcessGroup`` in a data-parallel training (None: one process);
    every process trains its lanes, rank 0 alone writes the files; ``exchange``: how the processes combine their
    gradients (``names.EXCHANGES``).
    ``initial``: a parent model's state to continue from (a retrain, ``warm_start.py``); ``state_path``: where
    to write the training state a later retrain continues (beside the model).
    ``epoch_evaluation`` (``evaluation.epoch_evaluation.EpochEvaluation``) adds each epoch's metrics to its
    history row, may stop the training early and restores the best epoch's weights before the model is saved.
    Summary keys: epochs, train_seconds, events, events_per_s, final_loss, device, threads, fast_path
    (and processes in a data-parallel training).
    """
    # Set up: checked inputs, the device and threads, the network with its step, sampler and epoch driver.
    config.validate()
    model_path, history_path = Path(model_path), Path(history_path)
    item_support = np.asarray(item_support, dtype=np.int64)
    _check_item_indices(train, len(item_support))
    device = resolve_device(config.device) if group is None else group.device
    configure_threads(config.threads)
    log.info("training %s on %s with %d threads", config.loss, device, torch.get_num_threads())
    iterator = _session_iterator(train, config)
    lanes = gradient_exchange = None
    if group is not None:
        lanes = distributed.lane_share(config.batch_size, group.world_size, group.rank)
        compiled = device.type == "cpu" and config.fast_path != "on"  # the per-step loop's compiled kernels
        gradient_exchange = exchange_for(group, exchange, compiled, config.n_sample)
    step, sampler = build_step(config, item_support, device, lanes=lanes, exchange=gradient_exchange)
    if gradient_exchange is not None:
        gradient_exchange = gradient_exchange.attach(step, sampler)
    model = step.model
    model.vocabulary = vocabulary_identity
    untrained = untrained_loss(config, item_support, sampler.n_sample if sampler is not None else 0)
    if initial is not None:
        initial.apply(step, sampler)
    fingerprint = _fingerprint(train, len(item_support), config)
    if group is not None:  # a checkpoint resumes with the process count that wrote it
        fingerprint["processes"] = group.world_size
    writes = group is None or group.is_writer

    # Resume from the last epoch's checkpoint, if there is one of this training. With early stopping, ``best`` is
    # the state after the best epoch so far: the model and the training state keep it in the end.
    checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    history, start_epoch, best = _resume(checkpoint_path, fingerprint, config, step, sampler)
    stopping = getattr(epoch_evaluation, "stopping", None)
    if epoch_evaluation is not None:
        epoch_evaluation.resume(history)

    # Run the epochs: the per-step loop or the fast path (epochs.py).
    if device.type == "cpu":
        kernels.warm_up()
    epochs = epoch_driver(config, device, step, sampler, train.items, iterator)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        started = time.perf_counter()
        bar = Progress(f"epoch {epoch}", total=iterator.upper_bound_events(), unit="events", enabled=progress)
        loss_sum, steps = epochs.run_epoch(bar)
        mean_loss = float(loss_sum) / max(steps, 1)
        bar.set_postfix(f"loss {mean_loss:.4f}")
        bar.close()
        wall = time.perf_counter() - started
        check_divergence(epoch, mean_loss, history, model, config, untrained)
        events = epochs.events  # every training event once (the last steps have fewer lanes)
        row = {"epoch": epoch, "loss": mean_loss, "events": events, "events_per_s": events / wall, "wall_s": wall}
        if epoch_evaluation is not None:
            row.update(epoch_evaluation.measure(epoch, model, row))
            if stopping is not None and stopping.best_epoch == epoch:
                best = capture_state(step, sampler, epoch)
        history.append(row)
        log.info("epoch %d: loss %.6f, %d events, %.0f events/s", epoch, mean_loss, events, events / wall)
        if group is not None:
            distributed.check_replicas(group, _replicated_tensors(step), epoch)
        if writes:
            write_history(history_path, history)
        if checkpoint_path is not None and writes:
            state = capture_state(step, sampler, epoch)
            save_checkpoint(checkpoint_path, checkpoint_payload(fingerprint, state, history, best))
        if on_epoch is not None:
            on_epoch(epoch, model)
        if epoch_evaluation is not None and epoch_evaluation.should_stop:
            break

    # The model (the best epoch's weights, optimizer state and streams with early stopping), and the summary.
    if best is not None and best["epoch"] != history[-1]["epoch"]:
        log.info("restoring the state after epoch %d, the best", best["epoch"])
        restore_state(best, step, sampler)
    evaluated = epoch_evaluation.finish(model) if epoch_evaluation is not None else {}
    if writes:
        model.save(model_path)
        if state_path is not None:
            kept = best["epoch"] if best is not None else len(history)
            save_training_state(state_path, config, step, sampler, train, initial, len(history), kept)
        if not history_path.exists():
            write_history(history_path, history)
    summary = {**_summary(history, device, epochs.name), **evaluated}
    if group is not None:
        summary["processes"] = group.world_size
        summary["exchange"] = gradient_exchange.figures()
    return summary


def _replicated_tensors(step: TrainStep) -> list[torch.Tensor]:
    """What every process of a data-parallel training holds identically: weights and optimizer state."""
    return list(step.model.state_dict().values()) + list(step.optimizer.state.values())


def _check_item_indices(train: SessionArrays, n_items: int) -> None:
    if train.n_events and (train.items.min() < 0 or train.items.max() >= n_items):
        raise DataFormatError("<train>", f"item indices must lie in 0..{n_items - 1} (the vocabulary size)")


def _session_iterator(train: SessionArrays, config: TrainConfig) -> SessionParallelIterator:
    try:
        return SessionParallelIterator(train.offsets, config.batch_size)
    except ValueError as exc:
        raise ConfigError(
            f"training.losses.{config.loss}.batch_size",
            f"{exc}: the training split is too small for this loss's minibatch; lower batch_size or use more data",
        ) from None


def _resume(
    checkpoint_path, fingerprint: dict, config: TrainConfig, step: TrainStep, sampler
) -> tuple[list, int, dict]:
    """Load the checkpoint at ``checkpoint_path`` into the step and sampler if it is this training's; returns
    the history so far, the last epoch done (0: start) and the best epoch's state (early stopping, else None)."""
    payload = load_checkpoint(checkpoint_path) if checkpoint_path is not None else None
    if payload is None:
        return [], 0, None
    if payload["fingerprint"] != fingerprint or payload["epoch"] > config.epochs:
        log.warning("checkpoint %s belongs to another run; starting over", checkpoint_path)
        return [], 0, None
    restore_state(payload, step, sampler)
    log.info("resuming from %s after epoch %d", checkpoint_path, int(payload["epoch"]))
    return list(payload["history"]), int(payload["epoch"]), payload["best"]


def _summary(history: list[dict], device: torch.device, fast_path: str) -> dict:
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
        # How the epochs ran: the per-step loop (off), the fixed-shape step eagerly, or from CUDA graphs.
        "fast_path": fast_path,
    }


def build_step(
    config: TrainConfig,
    item_support: np.ndarray,
    device: torch.device,
    sampler_device: torch.device | None = None,
    lanes: slice | None = None,
    exchange=None,
) -> tuple[TrainStep, NegativeSampler | None]:
    """The network (``step.model``), its training step and the negative sampler (None where the loss samples
    none), seeded from ``config.seed`` as :func:`train_model` trains them. The sampler may live on another
    device (``sampler_device``) to compare a GPU step with a CPU one on the same negatives. ``lanes`` and
    ``exchange``: this process's share of a data-parallel training (``distributed``)."""
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
        lanes=lanes,
        exchange=exchange,
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
