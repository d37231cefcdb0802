"""What continues a training, in one format: the per-epoch checkpoint and the training state beside a model.

A :class:`TrainingState` is written after every epoch as the checkpoint (``checkpoints/<identity>/checkpoint.pt``
in the model's folder: an interrupted training resumes after its last finished epoch and ends with the weights of
an uninterrupted one) and, once the model is written, as ``training_state.pt`` beside it (what a retrain
continues: ``retraining``). Both hold

- ``last``: a :class:`Snapshot` of the step and the sampler after the last epoch: the weights, the optimizer's
  state (Adagrad accumulators and momenta), the dropout and sampler generators;
- ``best``: with early stopping, the snapshot after the best epoch so far, which the model keeps in the end even
  when the training is resumed after it (None without early stopping, and in ``training_state.pt``, whose
  ``last`` is the state kept);
- the history (in a checkpoint; a model's is its folder's ``history.csv``), the training's identity (a checkpoint
  is resumed only by the very same training: ``TrainingJob.identity``), its hyperparameters and seed, the
  vocabulary's identity, the time range of the events it trained on (a parent's included), the epochs it ran and
  those its weights are the result of;
- ``weights_sha256``: the digest of those weights that ``model.pt`` records (``network.weights_digest``). In
  ``training_state.pt`` the weights themselves are left out: ``model.pt`` holds them, and the digest ties the
  state to its model.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_output
from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.training.sampler import set_generator_state

log = logging.getLogger(__name__)

# 3: one format for checkpoints and training states (format 2 was the training state alone, beside a checkpoint
# format of its own).
TRAINING_STATE_FORMAT = "gru4rec_pipeline.training_state/3"
CHECKPOINT_NAME = "checkpoint.pt"
STATE_KEYS = (
    *("identity", "hyperparameters", "seed", "vocabulary", "history", "time_range"),
    *("epochs", "epochs_run", "weights_sha256", "last", "best"),
)


@dataclass
class Snapshot:
    """The step's and the sampler's state after ``epoch``: what a training continues from."""

    epoch: int
    weights: dict[str, Tensor] | None  # None in training_state.pt: model.pt holds them
    optimizer: dict[str, Tensor]
    dropout_generator: Tensor
    sampler: dict | None

    @classmethod
    def capture(cls, step, sampler, epoch: int) -> "Snapshot":
        """A copy of ``step``'s (a ``TrainStep``) and ``sampler``'s (a ``NegativeSampler`` or None) state."""
        return cls(
            epoch,
            {name: value.detach().cpu().clone() for name, value in step.model.state_dict().items()},
            {name: value.clone() for name, value in step.optimizer.state_dict().items()},
            step.dropout_generator.get_state(),
            _cloned(sampler.state_dict()) if sampler is not None else None,
        )

    def restore(self, step, sampler) -> None:
        """Put this state back into the step and the sampler (of the same sizes)."""
        step.model.load_state_dict(self.weights)
        step.optimizer.load_state_dict(self.optimizer)
        set_generator_state(step.dropout_generator, self.dropout_generator, "dropout")
        if sampler is not None:
            sampler.load_state_dict(self.sampler)

    def payload(self) -> dict:
        return {key: getattr(self, key) for key in ("epoch", "weights", "optimizer", "dropout_generator", "sampler")}


def _cloned(value):
    if isinstance(value, Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {key: _cloned(item) for key, item in value.items()}
    return value


@dataclass
class TrainingState:
    """A training's state after its last epoch (module docstring): a checkpoint, or a model's training state."""

    last: Snapshot
    history: list[dict]
    best: Snapshot | None = None
    identity: str = ""
    hyperparameters: dict = field(default_factory=dict)
    seed: int = 0
    vocabulary: dict | None = None
    time_range: tuple[float, float] = (0.0, 0.0)
    epochs: int = 0  # the epochs the weights are the result of, a parent's included
    epochs_run: int = 0  # the epochs this training ran
    weights_sha256: str = ""

    def save(self, path: str | Path) -> None:
        """Write the state atomically (tensors and plain values only: nothing to unpickle)."""
        payload = {key: getattr(self, key) for key in STATE_KEYS if key not in ("last", "best")}
        payload.update(format=TRAINING_STATE_FORMAT, time_range=list(self.time_range), last=self.last.payload())
        payload["best"] = self.best.payload() if self.best is not None else None
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # a checkpoint's folder: made by the first one
        with atomic_output(path) as temporary:
            torch.save(payload, temporary)

    @classmethod
    def from_payload(cls, payload: dict) -> "TrainingState":
        best = payload["best"]
        return cls(
            Snapshot(**payload["last"]),
            list(payload["history"]),
            Snapshot(**best) if best is not None else None,
            payload["identity"],
            payload["hyperparameters"],
            int(payload["seed"]),
            payload["vocabulary"],
            (float(payload["time_range"][0]), float(payload["time_range"][1])),
            int(payload["epochs"]),
            int(payload["epochs_run"]),
            payload["weights_sha256"],
        )

    @classmethod
    def resumable(cls, path: Path, identity: str, epochs: int) -> "TrainingState | None":
        """The checkpoint at ``path`` if it is one of the training ``identity`` that has not run past ``epochs``;
        None when there is none or it cannot be used (the training starts over, saying why)."""
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file: start over rather than fail
            log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
            return None
        if not isinstance(payload, dict) or payload.get("format") != TRAINING_STATE_FORMAT:
            log.warning("ignoring %s: not a checkpoint of format %s", path, TRAINING_STATE_FORMAT)
            return None
        state = cls.from_payload(payload)
        if state.identity != identity or state.last.epoch > epochs:
            log.warning("checkpoint %s belongs to another run; starting over", path)
            return None
        return state

    @classmethod
    def load(cls, path: str | Path) -> "TrainingState":
        """The training state ``path`` (``training_state.pt``), with clear errors naming the file for an empty
        file, one that is not a training state or of another format, and optimizer values no training writes."""
        path = Path(path)
        if path.stat().st_size == 0:
            raise DataFormatError(
                path,
                "the training state file is empty (0 bytes): a copy or write that failed; copy it again or train "
                "the parent again",
            )
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch's own text would advise unpickling the file, which is no answer here
            raise DataFormatError(
                path, f"not a training state (torch reads no tensors and plain values from it: {type(exc).__name__})"
            ) from None
        if not isinstance(payload, dict) or "format" not in payload:
            raise DataFormatError(path, f"not a training state (a {type(payload).__name__} without a format field)")
        if payload["format"] != TRAINING_STATE_FORMAT:
            raise DataFormatError(
                path,
                f"training state of format {payload['format']!r}; this version retrains from format "
                f"{TRAINING_STATE_FORMAT!r} only: train the parent model again with this version",
            )
        missing = [key for key in STATE_KEYS if key not in payload]
        if missing or not isinstance(payload["last"], dict) or not isinstance(payload["last"].get("optimizer"), dict):
            raise DataFormatError(path, f"not a complete training state (missing {', '.join(missing) or 'optimizer'})")
        hyperparameters = Hyperparameters.from_dict(payload["hyperparameters"])
        for name, tensor in payload["last"]["optimizer"].items():
            _check_optimizer_state(path, name, tensor, hyperparameters.learning_rate, hyperparameters.momentum)
        return cls.from_payload(payload)


def checkpoint_path(folder: Path, identity: str) -> Path:
    """Where the checkpoint of the training ``identity`` lives in the model folder's checkpoints ``folder``."""
    return Path(folder) / identity[:16] / CHECKPOINT_NAME


# Adagrad's step, lr * g / sqrt(acc + eps), is below lr in magnitude since acc includes g^2; the slack is rounding.
MOMENTUM_SLACK = 1.001


def _check_optimizer_state(path, name: str, state, learning_rate: float, momentum: float) -> None:
    """Refuse values no training writes (a damaged or edited file), before they are blamed on the learning rate
    after an epoch: NaN or infinity, a negative accumulator (a sum of squared gradients), a momentum beyond
    ``learning_rate / (1 - momentum)`` (a sum of steps each smaller than the learning rate, decayed by momentum).
    ``state``: [2, ...] for dense parameters (accumulators, momenta), [rows, 2 * width] for row parameters."""
    where = f"optimizer state {name!r}"
    if not isinstance(state, Tensor) or not state.is_floating_point():
        raise DataFormatError(path, f"{where} is not a floating-point tensor")
    if name == "dense" and state.dim() >= 1 and state.shape[0] == 2:
        accumulators, momenta = state[0], state[1]
    elif name != "dense" and state.dim() == 2 and state.shape[1] % 2 == 0:
        accumulators, momenta = state[:, : state.shape[1] // 2], state[:, state.shape[1] // 2 :]
    else:
        raise DataFormatError(path, f"{where} has the shape {tuple(state.shape)}, not one a training writes")
    if state.numel() == 0:
        return
    if not bool(torch.isfinite(state).all()):
        kind = "NaN" if bool(torch.isnan(state).any()) else "infinite values"
        raise DataFormatError(path, f"{where} holds {kind}: the file is damaged; train the parent model again")
    lowest = float(accumulators.min()) if accumulators.numel() else 0.0
    if lowest < 0:
        raise DataFormatError(
            path,
            f"{where}: its accumulators go down to {lowest:.3g}, but they are sums of squared gradients (never "
            "negative): the file is damaged; train the parent model again",
        )
    largest = float(momenta.abs().max()) if momenta.numel() else 0.0
    bound = learning_rate / (1 - momentum) if momentum < 1 else math.inf
    if largest > bound * MOMENTUM_SLACK:
        raise DataFormatError(
            path,
            f"{where}: its momentum reaches {largest:.3g}, beyond the {bound:.3g} (learning_rate / (1 - momentum) "
            "of its settings) no training reaches: the file is damaged; train the parent model again",
        )
