"""What a study is: its settings (the config's ``tuning`` section) and the fingerprint that names it.

A study's name carries a fingerprint of everything its trials' results depend on: the search space, the loss's
configured setting around it, the epochs per trial, the metric and its tie mode, the training and sampler seeds,
pruning, and the contents of the training and validation sessions. Changing any of them starts a new study
instead of mixing two; the number of trials and of workers are left out, so that a finished study can be
extended by raising ``trials``, and so is the retraining's epoch count (``training.losses.{loss}.epochs``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import numpy as np

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.names import TUNING_DEFAULTS, TUNING_METRICS
from gru4rec_pipeline.tuning.space import SearchSpace

METRIC = re.compile(rf"^({'|'.join(TUNING_METRICS)})@([1-9][0-9]*)$")
# Keys of the tuning section that do not shape one study (which losses `rule all` tunes, the spaces, read apart).
OTHER_KEYS = ("run", "spaces")


def parse_metric(text: str) -> tuple[str, int]:
    """``mrr@20`` -> ("mrr", 20)."""
    match = METRIC.match(str(text))
    if not match:
        expected = " or ".join(TUNING_METRICS)
        raise ConfigError("tuning.metric", f"got {text!r}, expected {expected} at a cut-off, e.g. mrr@20")
    return match.group(1), int(match.group(2))


@dataclass(frozen=True)
class TuningSettings:
    """The config's ``tuning`` section, checked (defaults: ``names.TUNING_DEFAULTS``)."""

    trials: int = TUNING_DEFAULTS["trials"]
    workers: int = TUNING_DEFAULTS["workers"]
    metric: str = TUNING_DEFAULTS["metric"]
    epochs: int = TUNING_DEFAULTS["epochs"]
    seed: int = TUNING_DEFAULTS["seed"]
    pruning: bool = TUNING_DEFAULTS["pruning"]
    storage: str = TUNING_DEFAULTS["storage"]

    @classmethod
    def from_dict(cls, values: dict) -> "TuningSettings":
        known = {key: value for key, value in values.items() if key not in OTHER_KEYS}
        for key, value in known.items():
            if key not in TUNING_DEFAULTS:
                raise ConfigError(f"tuning.{key}", f"unknown key; expected one of {sorted(TUNING_DEFAULTS)}")
            expected = type(TUNING_DEFAULTS[key])
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ConfigError(f"tuning.{key}", f"got {value!r}, expected a value of type {expected.__name__}")
        settings = cls(**known)
        for key in ("trials", "workers", "epochs"):
            if getattr(settings, key) < 1:
                raise ConfigError(f"tuning.{key}", f"got {getattr(settings, key)}, expected at least 1")
        if settings.seed < 0:
            raise ConfigError("tuning.seed", f"got {settings.seed}, expected a non-negative integer")
        parse_metric(settings.metric)
        return settings

    @property
    def metric_name(self) -> str:
        return parse_metric(self.metric)[0]

    @property
    def cutoff(self) -> int:
        return parse_metric(self.metric)[1]


def arrays_digest(arrays: SessionArrays) -> str:
    """SHA-256 of what a training or evaluation reads from session arrays: the sessions' items in order, and the
    vocabulary they index. Rewriting the same sessions (a rebuilt .npz) keeps it."""
    digest = hashlib.sha256(arrays.vocabulary.encode())
    for array in (arrays.offsets, arrays.items):
        digest.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
    return digest.hexdigest()


def study_fingerprint(
    space: SearchSpace,
    settings: TuningSettings,
    training_seed: int,
    tie_mode: str,
    train: SessionArrays,
    valid: SessionArrays,
    early_stopping: dict | None = None,
) -> str:
    """The hex SHA-256 of everything a study's results depend on (see the module docstring)."""
    identity = {
        "loss": space.loss,
        "space": space.identity(),
        "setting": {key: value for key, value in space.base.items() if key != "epochs"},
        "epochs": settings.epochs,
        "metric": settings.metric,
        "tie_mode": tie_mode,
        "training_seed": training_seed,
        "sampler_seed": settings.seed,
        "pruning": settings.pruning,
        "train": arrays_digest(train),
        "valid": arrays_digest(valid),
    }
    if early_stopping:  # only when on, so that the studies run without it keep their names
        identity["early_stopping"] = early_stopping
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def study_name(loss: str, fingerprint: str) -> str:
    return f"{loss}-{fingerprint[:12]}"
