"""Retraining: a trained model continues on new clicks, with a vocabulary that grows (``gru4rec-pipeline retrain``,
the workflow's ``retrain_model`` and rolling-evaluation rules).

:func:`run_retrain` loads a model and the training state beside it (:mod:`gru4rec_pipeline.training.warm_start`),
maps the new clicks to the grown vocabulary (:mod:`gru4rec_pipeline.data.increment`: the data stage's readers
and protocol filters; old items keep their index, new ones are appended) and trains on them through
``train_model(..., initial=WarmStart)``: weights, Adagrad accumulators and momentum, and the dropout and
sampler streams continue; the sampler draws by the support of the new clicks (``support_decay`` mixes in the
parent's). So a retrain on the very same data with no new item is the parent's training continued for more
epochs, bit for bit on the CPU.

The output is an ordinary model folder (``model.pt``, ``history.csv``, ``training.json``, ``vocab.parquet``,
``training_state.pt``) that ``evaluate``, ``recommend`` and a further retrain accept; ``training.json`` names
the parent model and the clicks it was retrained on (``retrained_from``).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

from gru4rec_pipeline.data.increment import new_sessions
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import PipelineError
from gru4rec_pipeline.files import write_json_atomic
from gru4rec_pipeline.model.folder import check_vocabulary, load_model
from gru4rec_pipeline.model.hyperparameters import TrainConfig
from gru4rec_pipeline.names import TRAINING_STATE_FILE
from gru4rec_pipeline.training.loop import train_model
from gru4rec_pipeline.training.state import TrainingLock, training_fingerprint
from gru4rec_pipeline.training.warm_start import load_warm_start, training_state_path

log = logging.getLogger("gru4rec_pipeline")


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_retrain(
    model_path: str | Path,
    vocab_path: str | Path,
    clicks_path: str | Path,
    out_dir: str | Path,
    epochs: int = 1,
    protocol: dict | None = None,
    support_decay: float = 0.0,
    device: str = "auto",
    threads: int = 1,
    progress: bool = True,
) -> dict:
    """Continue the model ``model_path`` (trained with ``vocab_path``) on ``clicks_path`` for ``epochs`` epochs;
    write the retrained model folder ``out_dir``; return its training summary.

    Nothing is written when an input is refused. An interrupted retrain resumes from its checkpoint in
    ``out_dir/checkpoints``; ``out_dir`` may not be the parent's folder.
    """
    out_dir = Path(out_dir)
    if out_dir.resolve() == Path(model_path).resolve().parent:
        raise PipelineError(f"{out_dir}: the retrained model would replace its parent {model_path}; choose another")
    vocabulary = Vocabulary.load(vocab_path)
    check_vocabulary(load_model(model_path), vocabulary, model_path, vocab_path)
    warm = load_warm_start(model_path)
    new = new_sessions(clicks_path, vocabulary, protocol, support_decay, parent_range=warm.time_range)
    parent_range = f"{utc(warm.time_range[0])} .. {utc(warm.time_range[1])}"
    new_range = f"{utc(new.time_range[0])} .. {utc(new.time_range[1])}"
    config = TrainConfig.from_dict({**warm.config, "epochs": epochs, "device": device, "threads": threads})
    identity = {
        "config": {k: v for k, v in config.to_dict().items() if k not in ("device", "threads")},
        "parent": file_digest(model_path),
        "parent_state": file_digest(training_state_path(model_path)),
        "support_decay": support_decay,
        "protocol": protocol,
    }
    checkpoint_root = out_dir / "checkpoints"
    with TrainingLock(out_dir):
        summary = train_model(
            new.arrays,
            new.vocabulary.support,
            config,
            out_dir / "model.pt",
            out_dir / "history.csv",
            checkpoint_dir=checkpoint_root / training_fingerprint(identity, clicks_path),
            progress=progress,
            vocabulary_identity=new.vocabulary.identity(),
            initial=warm,
            state_path=out_dir / TRAINING_STATE_FILE,
        )
        summary["retrained_from"] = {
            "model": str(model_path),
            "model_sha256": identity["parent"],
            "vocab": str(vocab_path),
            "parent_items": warm.n_items,
            "parent_data": parent_range,
            "parent_epochs": warm.epochs,
            "clicks": str(clicks_path),
            "clicks_sha256": file_digest(clicks_path),
            "clicks_data": new_range,
            "clicks_counts": new.counts,
            "new_items": new.new_items,
            "items": new.vocabulary.n_items,
            "support_decay": support_decay,
        }
        write_json_atomic(out_dir / "training.json", summary)
        new.vocabulary.save(out_dir / "vocab.parquet")
        shutil.rmtree(checkpoint_root, ignore_errors=True)
    log.info("retrained %s on %s: %s", model_path, clicks_path, summary)
    return summary
