"""What a GRU4Rec training computes: the ``Hyperparameters`` dataclass and the default setting of each loss.

The math only: the loss, the network's sizes, the optimizer's rates, dropout, sampling and the epochs. How a
training runs (seed, device, threads, engine, processes) is the training job's (``training/job.py``).

``DEFAULT_HYPERPARAMETERS`` is the one place these defaults are defined; ``config/config.yaml`` repeats
them (every setting visible where it is changed) and ``tests/test_names.py`` checks that it does, except
for ``epochs``, which the config sets for its synthetic default dataset. Where the values come from
(RSC15 / yoochoose, 100 units, constrained ("shared") embedding, batch 32, 10 epochs):

- published by the GRU4Rec authors:
  - ``ce_sampled``: GRU4Rec_PyTorch_Official ``paramfiles/rsc15_xe_shared_100_best.py`` (lr 0.2,
    momentum 0.2, dropout 0 / 0.4, 2048 samples, sample_alpha 0.5, logq 1.0);
  - ``bpr_max``: GRU4Rec ``param_samples/rsc15_bpr-max_constrained.py`` and ``examples/rsc15/run_rsc15.py``
    (lr 0.2, momentum 0.1, no dropout, 2048 samples, sample_alpha 0, bpreg 0.5, ELU 0.5 on the scores);
- derived, no published setting exists for them with shared samples:
  - ``ce_full``: the ``ce_sampled`` setting scoring all items (no samples, so no logQ correction);
  - ``top1_max``: the ``bpr_max`` setting without its score regularisation (bpreg belongs to BPR-max);
  - ``bpr``, ``top1``: dropout 0.2, lr 0.05, momentum 0.2, the RSC15 BPR setting of the original paper
    (Hidasi et al. 2016, which trained with minibatch 50 and no extra samples), with 2048 samples drawn
    with sample_alpha 0.5 and no ELU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.names import EMBEDDING_MODES, LOSSES

_COMMON = {
    "layers": [100],
    "batch_size": 32,
    "embedding": "shared",
    "embedding_dim": 0,
    "epochs": 10,
    "sample_store_size": 10_000_000,
}

DEFAULT_HYPERPARAMETERS: dict[str, dict] = {
    "ce_sampled": {
        **_COMMON,
        "loss": "ce_sampled",
        "learning_rate": 0.2,
        "momentum": 0.2,
        "dropout_embed": 0.0,
        "dropout_hidden": 0.4,
        "n_sample": 2048,
        "sample_alpha": 0.5,
        "logq": 1.0,
        "bpreg": 0.0,
        "elu_param": 0.0,
    },
    "ce_full": {
        **_COMMON,
        "loss": "ce_full",
        "learning_rate": 0.2,
        "momentum": 0.2,
        "dropout_embed": 0.0,
        "dropout_hidden": 0.4,
        "n_sample": 0,
        "sample_alpha": 0.0,
        "logq": 0.0,
        "bpreg": 0.0,
        "elu_param": 0.0,
    },
    "bpr_max": {
        **_COMMON,
        "loss": "bpr_max",
        "learning_rate": 0.2,
        "momentum": 0.1,
        "dropout_embed": 0.0,
        "dropout_hidden": 0.0,
        "n_sample": 2048,
        "sample_alpha": 0.0,
        "logq": 0.0,
        "bpreg": 0.5,
        "elu_param": 0.5,
    },
}
DEFAULT_HYPERPARAMETERS["top1_max"] = {**DEFAULT_HYPERPARAMETERS["bpr_max"], "loss": "top1_max", "bpreg": 0.0}
for _loss in ("bpr", "top1"):
    DEFAULT_HYPERPARAMETERS[_loss] = {
        **_COMMON,
        "loss": _loss,
        "learning_rate": 0.05,
        "momentum": 0.2,
        "dropout_embed": 0.0,
        "dropout_hidden": 0.2,
        "n_sample": 2048,
        "sample_alpha": 0.5,
        "logq": 0.0,
        "bpreg": 0.0,
        "elu_param": 0.0,
    }


@dataclass(frozen=True)
class Hyperparameters:
    """Every hyperparameter of one training (defaults: the published ``ce_sampled`` setting)."""

    loss: str = "ce_sampled"
    layers: list[int] = field(default_factory=lambda: [100])
    batch_size: int = 32
    learning_rate: float = 0.2
    momentum: float = 0.2
    dropout_embed: float = 0.0
    dropout_hidden: float = 0.4
    embedding: str = "shared"  # shared | separate | none
    embedding_dim: int = 0  # size of a separate embedding; 0: the first layer's size
    n_sample: int = 2048
    sample_alpha: float = 0.5
    logq: float = 1.0
    bpreg: float = 0.0
    elu_param: float = 0.0
    epochs: int = 10
    sample_store_size: int = 10_000_000

    @classmethod
    def from_dict(cls, values: dict) -> "Hyperparameters":
        """Build from a mapping: missing keys come from ``DEFAULT_HYPERPARAMETERS[loss]``.

        Raises ConfigError naming the key for an unknown key or a value of the wrong type or range.
        """
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key in RUN_SETTINGS:
                raise ConfigError(key, RUN_SETTINGS[key])
            if key not in known:
                raise ConfigError(key, f"unknown training key; expected one of {sorted(known)}")
        loss = values.get("loss", cls.loss)
        if loss not in LOSSES:
            raise ConfigError("loss", f"got {loss!r}, expected one of {list(LOSSES)}")
        merged = {**DEFAULT_HYPERPARAMETERS[loss], **values}
        config = cls(**{key: _coerce(key, value) for key, value in merged.items()})
        config.validate()
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        def require(key: str, ok: bool, expected: str) -> None:
            if not ok:
                raise ConfigError(key, f"got {getattr(self, key)!r}, expected {expected}")

        require("loss", self.loss in LOSSES, f"one of {list(LOSSES)}")
        require("layers", len(self.layers) > 0 and all(size > 0 for size in self.layers), "a list of positive sizes")
        require("batch_size", self.batch_size >= 1, "a positive integer")
        require("learning_rate", self.learning_rate > 0, "a positive number")
        require("momentum", 0 <= self.momentum < 1, "a number in [0, 1)")
        require("dropout_embed", 0 <= self.dropout_embed < 1, "a probability in [0, 1)")
        require("dropout_hidden", 0 <= self.dropout_hidden < 1, "a probability in [0, 1)")
        require("embedding", self.embedding in EMBEDDING_MODES, f"one of {list(EMBEDDING_MODES)}")
        require("embedding_dim", self.embedding_dim >= 0, "a non-negative integer")
        require("n_sample", self.n_sample >= 0, "a non-negative integer")
        require("sample_alpha", self.sample_alpha >= 0, "a non-negative number")
        require("logq", self.logq >= 0, "a non-negative number")
        require("bpreg", self.bpreg >= 0, "a non-negative number")
        require("elu_param", self.elu_param >= 0, "a non-negative number (0: no ELU)")
        require("epochs", self.epochs >= 1, "a positive integer")
        require("sample_store_size", self.sample_store_size >= max(1, self.n_sample), "at least n_sample")


# Settings of how a training runs, not of what it computes: refused among the hyperparameters, with where they go.
RUN_SETTINGS = {
    "seed": "not a hyperparameter: the run's seed (config key seed, --seed)",
    "device": "not a hyperparameter: the run's device (config key device, --device)",
    "threads": "not a hyperparameter: the run's threads (config key training.threads, --threads)",
    "engine": "not a hyperparameter: how the epochs run (config key training.engine, --engine)",
    "fast_path": "renamed: how the epochs run is the run option engine (config key training.engine, --engine: "
    "auto, loop, eager or graphs; fast_path off is engine loop, on is eager on a CPU and graphs on a GPU)",
}

_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Hyperparameters)}


def _coerce(key: str, value):
    """Turn config and command-line values into the field's type, or raise ConfigError."""
    kind = _FIELD_TYPES[key]
    try:
        if kind == "list[int]":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [value]
            if isinstance(value, str):
                value = [part for part in value.replace("/", ",").strip("[] ").split(",") if part.strip()]
            result = [int(v) for v in value]
            if any(float(v) != r for v, r in zip(value, result)):
                raise ValueError
            return result
        if kind == "int":
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        raise ConfigError(key, f"got {value!r}, expected a value of type {kind}") from None
    return value
