"""A training that starts where another ended: the parent's weights, optimizer state and generator states.

``train_model(..., initial=WarmStart)`` applies one right after the network, the step and the sampler are
built (and before a checkpoint of the retrain itself is resumed); ``train_model(..., state_path=...)`` writes,
beside the model, the *training state* a later retrain starts from (:func:`save_training_state`). Loading a
model and its state as a warm start: :func:`load_warm_start`. The driver is :mod:`gru4rec_pipeline.model.retrain`.

Growing the vocabulary: item matrices (output weights and bias, a separate input embedding, the one-hot input
layer) and their per-row optimizer state are built at the grown size with fresh rows, drawn as at the start of
a training; the parent's rows are copied over the first ``n_parent`` of them, one copy of each matrix per
retrain. Dense parameters and their state are copied as they are; the generators continue their streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gru4rec_pipeline.errors import DataFormatError, PipelineError
from gru4rec_pipeline.files import atomic_output
from gru4rec_pipeline.model.hyperparameters import TrainConfig
from gru4rec_pipeline.model.loading import load_model
from gru4rec_pipeline.model.network import weights_digest
from gru4rec_pipeline.model.sampling import set_generator_state
from gru4rec_pipeline.names import TRAINING_STATE_FILE

# 2: the weights' digest of the model it belongs to; the epochs run and kept (format 1 held the last epoch's
# optimizer state beside an early-stopped model's best weights).
TRAINING_STATE_FORMAT = "gru4rec_pipeline.training_state/2"
# Parameters with one row per item: they grow with the vocabulary.
ITEM_ROW_PARAMETERS = ("item_weight", "item_bias", "input_embedding", "gru_input_weights.0")


def training_state_path(model_path: str | Path) -> Path:
    return Path(model_path).with_name(TRAINING_STATE_FILE)


@dataclass
class WarmStart:
    """What a retrain starts from: the parent's weights, optimizer state and generator states."""

    weights: dict[str, Tensor]
    optimizer: dict[str, Tensor]
    dropout_generator: Tensor
    sampler: dict | None
    config: dict
    time_range: tuple[float, float]
    epochs: int
    source: str = "<training state>"  # the file it was read from, for errors

    @property
    def n_items(self) -> int:
        return int(self.weights["item_weight"].shape[0])

    def apply(self, step, sampler) -> None:
        """Overwrite the freshly built ``step`` (network, optimizer, dropout) and ``sampler`` with the parent's."""
        try:
            self._apply(step, sampler)
        except PipelineError as exc:
            raise DataFormatError(self.source, str(exc)) from None

    def _apply(self, step, sampler) -> None:
        current = step.model.state_dict()  # tensors sharing the parameters' storage
        for name, source in self.weights.items():
            _copy_rows(current[name], source, name, grows=name in ITEM_ROW_PARAMETERS)
        shapes = {name: tuple(source.shape) for name, source in self.weights.items()}
        for name, target in step.optimizer.state.items():
            source = self.optimizer.get(name)
            if source is None:
                raise PipelineError(f"the training state has no optimizer state {name!r}: it belongs to another model")
            if name == "dense":
                _copy_dense_state(target, source, step.dense_names, shapes, current)
            else:
                _copy_rows(target, source, f"optimizer state {name}", grows=name in ITEM_ROW_PARAMETERS)
        set_generator_state(step.dropout_generator, self.dropout_generator, "dropout")
        if sampler is not None and self.sampler is not None:
            sampler.load_state_dict(self.sampler)


def _copy_rows(target: Tensor, source: Tensor, name: str, grows: bool) -> None:
    """``source`` into the first rows of ``target``: equal shapes, or (``grows``: one row per item) ``target`` with
    more rows, the grown vocabulary's new items."""
    if target.shape == source.shape:
        target.copy_(source)
    elif grows and target.shape[1:] == source.shape[1:] and target.shape[0] >= source.shape[0]:
        target[: source.shape[0]].copy_(source)
    else:
        raise PipelineError(f"{name}: the parent's shape {tuple(source.shape)} does not fit {tuple(target.shape)}")


def _copy_dense_state(target: Tensor, source: Tensor, names: list[str], parent_shapes: dict, current: dict) -> None:
    """The flat dense optimizer state [2, total], segment by segment: a segment that grew (the item matrices of
    ce_full, row-major) takes the parent's values as its prefix, the new items' part stays zero."""
    new_offset = old_offset = 0
    for name in names:
        new_size, old_size = current[name].numel(), int(torch.Size(parent_shapes[name]).numel())
        if old_size > new_size:
            raise PipelineError(f"optimizer state of {name}: the parent's {old_size} values do not fit {new_size}")
        target[:, new_offset : new_offset + old_size].copy_(source[:, old_offset : old_offset + old_size])
        new_offset, old_offset = new_offset + new_size, old_offset + old_size
    if old_offset != source.shape[1]:
        raise PipelineError("the training state's dense optimizer state does not match the model's parameters")


def save_training_state(
    path, config: TrainConfig, step, sampler, train, initial: WarmStart | None, epochs_run: int, epochs_kept: int
) -> None:
    """Write what a retrain needs beside the weights (see the module docstring), atomically. ``epochs_run``: the
    epochs this training ran; ``epochs_kept``: those the weights are the result of (the best epoch's number where
    early stopping kept an earlier epoch's state, else ``epochs_run``)."""
    low, high = (float(train.times.min()), float(train.times.max())) if train.n_events else (0.0, 0.0)
    if initial is not None:
        low, high = min(low, initial.time_range[0]), max(high, initial.time_range[1])
    payload = {
        "format": TRAINING_STATE_FORMAT,
        # The model it continues: the digest model.pt records of its weights (``network.weights_digest``).
        "weights_sha256": weights_digest(step.model.state_dict()),
        "config": config.to_dict(),
        "vocabulary": step.model.vocabulary,
        "optimizer": step.optimizer.state_dict(),
        "dropout_generator": step.dropout_generator.get_state(),
        "sampler": sampler.state_dict() if sampler is not None else None,
        "time_range": [low, high],
        # The epochs the kept weights are the result of, the parent's included (what a retrain continues).
        "epochs": epochs_kept + (initial.epochs if initial is not None else 0),
        "epochs_run": epochs_run,
        "epochs_kept": epochs_kept,
    }
    with atomic_output(path) as temporary:
        torch.save(payload, temporary)


def load_warm_start(model_path: str | Path) -> WarmStart:
    """The model ``model_path`` and its training state as a :class:`WarmStart`; clear errors, naming the file, for
    a model without one, a file that is not one, one of a format this code does not read, one that belongs to
    another model, and optimizer values no training writes."""
    model = load_model(model_path)
    state_path = training_state_path(model_path)
    if not state_path.exists():
        raise DataFormatError(
            model_path,
            f"no {TRAINING_STATE_FILE} beside it: the model was written by a version that does not keep its "
            "optimizer's state, which a retrain continues; train it again with this version",
        )
    payload = _read_training_state(state_path)
    continues, weights = payload["weights_sha256"], weights_digest(model.state_dict())
    if continues != weights or payload["vocabulary"] != model.vocabulary:
        raise DataFormatError(
            state_path,
            f"this training state belongs to another model than {model_path}: it continues the weights with "
            f"SHA-256 {continues[:12]}, and {model_path} holds {weights[:12]} (a state copied from another "
            "training's folder, of another loss or seed?); retrain from the model.pt it was written with",
        )
    config = TrainConfig.from_dict(payload["config"])
    for name, tensor in payload["optimizer"].items():
        _check_optimizer_state(state_path, name, tensor, config.learning_rate, config.momentum)
    return WarmStart(
        weights={name: tensor.detach().clone() for name, tensor in model.state_dict().items()},
        optimizer=payload["optimizer"],
        dropout_generator=payload["dropout_generator"],
        sampler=payload["sampler"],
        config=payload["config"],
        time_range=(float(payload["time_range"][0]), float(payload["time_range"][1])),
        epochs=int(payload["epochs"]),
        source=str(state_path),
    )


STATE_KEYS = ("weights_sha256", "config", "vocabulary", "optimizer", "dropout_generator", "sampler", "time_range")


def _read_training_state(path: Path) -> dict:
    """The payload of the training state ``path``, of this version's format, with the keys a retrain reads."""
    if path.stat().st_size == 0:
        raise DataFormatError(
            path,
            "the training state file is empty (0 bytes): a copy or write that failed; copy it again or train the "
            "parent again",
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's own text would advise unpickling the file, which is no answer here
        raise DataFormatError(
            path,
            f"not a training state (torch reads no tensors and plain values from it: {type(exc).__name__})",
        ) from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise DataFormatError(path, f"not a training state (a {type(payload).__name__} without a format field)")
    if payload["format"] != TRAINING_STATE_FORMAT:
        raise DataFormatError(
            path,
            f"training state of format {payload['format']!r}; this version retrains from format "
            f"{TRAINING_STATE_FORMAT!r} only: train the parent model again with this version",
        )
    missing = [key for key in (*STATE_KEYS, "epochs") if key not in payload]
    if missing or not isinstance(payload["optimizer"], dict):
        raise DataFormatError(path, f"not a complete training state (missing {', '.join(missing) or 'optimizer'})")
    return payload


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
            path, f"{where}: its accumulators go down to {lowest:.3g}, but they are sums of squared gradients "
            "(never negative): the file is damaged; train the parent model again",
        )  # fmt: skip
    largest = float(momenta.abs().max()) if momenta.numel() else 0.0
    bound = learning_rate / (1 - momentum) if momentum < 1 else math.inf
    if largest > bound * MOMENTUM_SLACK:
        raise DataFormatError(
            path, f"{where}: its momentum reaches {largest:.3g}, beyond the {bound:.3g} (learning_rate / (1 - "
            "momentum) of its settings) no training reaches: the file is damaged; train the parent model again",
        )  # fmt: skip
