"""Training stage: session-parallel GRU4Rec training with per-epoch checkpoints.

Reads the training ``SessionArrays`` (.npz) and the vocabulary (item support), writes the model
(.pt, tensors and plain values only), a per-epoch history CSV (epoch, loss, events, events_per_s,
wall_s) and, when a checkpoint folder is given, a checkpoint after every epoch from which an
interrupted run resumes. With the same seed a CPU run is repeatable bit for bit, and a resumed run
ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import ConfigError, DataFormatError, PipelineError
from gru4rec_pipeline.model import kernels
from gru4rec_pipeline.model.graph_training import fast_epoch_runner
from gru4rec_pipeline.model.hyperparameters import DEFAULT_HYPERPARAMETERS, TrainConfig  # noqa: F401  (re-exported)
from gru4rec_pipeline.model.iterator import SessionParallelIterator
from gru4rec_pipeline.model.network import GRU4Rec
from gru4rec_pipeline.model.sampling import NegativeSampler, set_generator_state
from gru4rec_pipeline.model.train_step import TrainStep
from gru4rec_pipeline.progress import Progress

log = logging.getLogger("gru4rec_pipeline")

CHECKPOINT_FORMAT = "gru4rec_pipeline.checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_COLUMNS = ["epoch", "loss", "events", "events_per_s", "wall_s"]
BLOCK_STEPS = 1024  # steps whose indices are prepared (and moved to the device) at once


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was requested but no CUDA device is available")
    return torch.device(device)


def configure_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass  # can only be set once per process, before any parallel work


def load_item_support(vocab_path: str | Path) -> np.ndarray:
    """Support per item index from vocab.parquet (columns ItemIdx, Support)."""
    import pandas as pd

    try:
        vocab = pd.read_parquet(vocab_path, columns=["ItemIdx", "Support"])
    except (KeyError, ValueError) as exc:
        raise DataFormatError(vocab_path, f"expected columns ItemIdx and Support: {exc}") from None
    index = vocab["ItemIdx"].to_numpy(dtype=np.int64)
    n_items = len(index)
    if n_items == 0 or not np.array_equal(np.sort(index), np.arange(n_items)):
        raise DataFormatError(vocab_path, "ItemIdx must be a permutation of 0..n_items-1")
    support = np.zeros(n_items, dtype=np.int64)
    support[index] = vocab["Support"].to_numpy(dtype=np.int64)
    if np.any(support < 0):
        raise DataFormatError(vocab_path, "Support must be non-negative")
    return support


def _fingerprint(train: SessionArrays, n_items: int, config: TrainConfig) -> dict:
    """What a checkpoint must match to be resumed (everything but run length and hardware)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("epochs", "device", "threads", "fast_path")}
    return {"config": settings, "n_events": train.n_events, "n_sessions": train.n_sessions, "n_items": n_items}


def save_checkpoint(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: start over rather than fail
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        log.warning("ignoring %s: not a checkpoint of format %s", path, CHECKPOINT_FORMAT)
        return None
    return payload


def write_history(path: Path, history: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(path)


def train_model(
    train: SessionArrays,
    item_support: np.ndarray,
    config: TrainConfig,
    model_path,
    history_path,
    checkpoint_dir=None,
    progress: bool = True,
) -> dict:
    """Train GRU4Rec; write the model and the history; return a summary.

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
        raise ConfigError("batch_size", str(exc)) from None

    model = GRU4Rec(n_items, config.layers, config.embedding, config.embedding_dim, seed=config.seed).to(device)
    step = TrainStep(
        model,
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
    sampler = None
    if config.loss != "ce_full" and config.n_sample > 0:
        sampler = NegativeSampler(
            item_support, config.n_sample, config.sample_alpha, config.sample_store_size, device, seed=config.seed + 2
        )

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
        history.append(
            {"epoch": epoch, "loss": mean_loss, "events": events, "events_per_s": events / wall, "wall_s": wall}
        )
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
    }


def load_model(model_path, device: str = "cpu") -> GRU4Rec:
    """Load a model written by ``train_model`` (weights only: nothing is unpickled)."""
    try:
        payload = torch.load(model_path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DataFormatError(model_path, "model file not found") from None
    except Exception as exc:
        raise DataFormatError(model_path, f"cannot read the model: {exc}") from None
    model = GRU4Rec.from_payload(payload, str(model_path)).to(device)
    return model.eval()


# -- command line -------------------------------------------------------------------------------
def _parse_setting(text: str) -> tuple[str, object]:
    import json

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(text, "expected --set key=value")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _run_cli(args) -> int:
    settings = {"loss": args.loss}
    for text in args.set or []:
        key, value = _parse_setting(text)
        settings[key] = value
    if args.threads is not None:
        settings["threads"] = args.threads
    if args.device is not None:
        settings["device"] = args.device
    config = TrainConfig.from_dict(settings)
    train = SessionArrays.load(args.train)
    support = load_item_support(args.vocab)
    summary = train_model(
        train, support, config, args.model, args.history, checkpoint_dir=args.checkpoint_dir, progress=not args.quiet
    )
    log.info("trained %s: %s", config.loss, summary)
    return 0


def register_cli(subparsers) -> None:
    from gru4rec_pipeline.model.losses import LOSSES

    parser = subparsers.add_parser("train", help="train GRU4Rec on session arrays")
    parser.add_argument("--train", required=True, help="training session arrays (.npz)")
    parser.add_argument("--vocab", required=True, help="vocabulary (vocab.parquet with ItemIdx, Support)")
    parser.add_argument("--loss", required=True, choices=LOSSES)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a hyperparameter (repeatable)")
    parser.add_argument("--model", required=True, help="output model file (.pt)")
    parser.add_argument("--history", required=True, help="output per-epoch history (.csv)")
    parser.add_argument("--checkpoint-dir", help="folder for the per-epoch checkpoint (resume after a crash)")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=_run_cli)
