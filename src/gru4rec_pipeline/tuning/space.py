"""A study's search space: which hyperparameters it varies, over which values, starting from which setting.

The config writes a space per loss (``tuning.spaces.{loss}``), one hyperparameter per line:

- a range ``{low: 0.01, high: 0.25, step: 0.005}``: integers for integer hyperparameters, numbers for the others;
  ``step`` is optional, and ``log: true`` samples on a log scale instead (Optuna allows no step with it);
- a list of choices, ``elu_param: [0.0, 0.5, 1.0]``; one choice fixes the value for the study.

In a space ``layers`` sizes a single GRU layer (``layers: {low: 64, high: 512, step: 32}``), as in the published
spaces. Hyperparameters a space leaves out keep the loss's configured value (``training.losses.{loss}``), as
``n_sample`` (2048) does in the published spaces. A list replaces a range wholesale in a ``--configfile`` overlay,
while a mapping only updates the keys it names.

``DEFAULT_SPACES`` are the spaces the GRU4Rec authors published with their code for tuning on a new dataset
(GRU4Rec_PyTorch_Official, ``paramspaces/``): the same ranges and steps for every loss, plus ``bpreg`` for
BPR-max, the ELU of the ranking losses and the logQ correction of sampled cross-entropy. ``config/config.yaml``
repeats them (tests/test_tuning_space.py checks that it does).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.model.hyperparameters import DEFAULT_HYPERPARAMETERS, Hyperparameters
from gru4rec_pipeline.names import LOSSES, RANKING_LOSSES, SAMPLED_LOSSES, TUNABLE_HYPERPARAMETERS

_PUBLISHED_COMMON = {
    "layers": {"low": 64, "high": 512, "step": 32},
    "batch_size": {"low": 32, "high": 256, "step": 16},
    "learning_rate": {"low": 0.01, "high": 0.25, "step": 0.005},
    "dropout_embed": {"low": 0.0, "high": 0.5, "step": 0.05},
    "dropout_hidden": {"low": 0.0, "high": 0.7, "step": 0.05},
    "momentum": {"low": 0.0, "high": 0.9, "step": 0.05},
}


def _published_space(loss: str) -> dict:
    space = {name: dict(spec) for name, spec in _PUBLISHED_COMMON.items()}
    if loss in SAMPLED_LOSSES:  # ce_full draws no samples, so their distribution means nothing to it
        space["sample_alpha"] = {"low": 0.0, "high": 1.0, "step": 0.1}
    if loss == "bpr_max":
        space["bpreg"] = {"low": 0.0, "high": 2.0, "step": 0.05}
    if loss in RANKING_LOSSES:
        space["elu_param"] = [0.0, 0.5, 1.0]
    if loss == "ce_sampled":
        space["logq"] = [0.0, 1.0]
    return space


DEFAULT_SPACES: dict[str, dict] = {loss: _published_space(loss) for loss in LOSSES}

RANGE_KEYS = ("low", "high", "step", "log")
# What a training.losses entry holds (embedding_dim only where it is set): missing ones take the loss's defaults.
ENTRY_KEYS = (*(name for name in TUNABLE_HYPERPARAMETERS if name != "embedding_dim"), "epochs")
# Float steps such as 0.005 leave representation noise (0.19500000000000003) in sampled values.
DECIMALS = 10
_FIELD_TYPES = {field.name: field.type for field in dataclasses.fields(Hyperparameters)}


def _kind(name: str) -> str:
    """int, float or str: how the hyperparameter is sampled (``layers``: the integer size of one layer)."""
    return "int" if name == "layers" else _FIELD_TYPES[name]


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter of a space: a range (``low``, ``high``, ``step``, ``log``) or a list of ``choices``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple | None = None

    def distribution(self) -> BaseDistribution:
        if self.choices is not None:
            return CategoricalDistribution(self.choices)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def holds(self, value) -> bool:
        """Whether ``value`` lies in the space (on a range's grid or not: a configured default may lie between)."""
        if self.choices is not None:
            return value in self.choices
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def to_hyperparameter(self, value):
        """A sampled value as the config writes it."""
        if self.name == "layers":
            return [int(value)]
        if self.kind == "float":
            return round(float(value), DECIMALS)
        return int(value) if self.kind == "int" else value

    def spec(self):
        """The normalised config entry (what a study's fingerprint covers)."""
        if self.choices is not None:
            return list(self.choices)
        spec = {"low": self.low, "high": self.high, "step": self.step, "log": self.log}
        return {key: value for key, value in spec.items() if value not in (None, False)}

    def extremes(self) -> list:
        return list(self.choices) if self.choices is not None else [self.low, self.high]


@dataclass(frozen=True)
class SearchSpace:
    """The hyperparameters a study of ``loss`` varies, around the loss's configured setting ``base``."""

    loss: str
    dimensions: tuple[Dimension, ...]
    base: dict

    @classmethod
    def from_config(cls, loss: str, spec: dict | None, base: dict) -> "SearchSpace":
        """``spec``: the config's ``tuning.spaces.{loss}`` (None: the published space); ``base``: the loss's
        configured hyperparameters (``training.losses.{loss}``). Raises ConfigError naming the space's key."""
        if loss not in LOSSES:
            raise ConfigError("loss", f"got {loss!r}, expected one of {list(LOSSES)}")
        key = f"tuning.spaces.{loss}"
        spec = DEFAULT_SPACES[loss] if spec is None else spec
        if not isinstance(spec, dict) or not spec:
            raise ConfigError(key, f"expected a mapping of hyperparameters to ranges or lists, got {spec!r}")
        base = {**{name: DEFAULT_HYPERPARAMETERS[loss][name] for name in ENTRY_KEYS}, **base}
        Hyperparameters.from_dict({**base, "loss": loss})
        dimensions = tuple(_parse_dimension(f"{key}.{name}", name, value) for name, value in spec.items())
        space = cls(loss, dimensions, dict(base))
        for dimension in dimensions:
            for value in dimension.extremes():
                try:
                    Hyperparameters.from_dict(
                        {**base, "loss": loss, dimension.name: dimension.to_hyperparameter(value)}
                    )
                except ConfigError as exc:
                    raise ConfigError(f"{key}.{dimension.name}", f"{value!r} is not a usable value: {exc}") from None
        return space

    @property
    def names(self) -> list[str]:
        return [dimension.name for dimension in self.dimensions]

    def distributions(self) -> dict[str, BaseDistribution]:
        return {dimension.name: dimension.distribution() for dimension in self.dimensions}

    def hyperparameters(self, params: dict) -> dict:
        """The loss's configured setting with the sampled ``params`` in place: a ``training.losses`` entry."""
        values = dict(self.base)
        for dimension in self.dimensions:
            if dimension.name in params:
                values[dimension.name] = dimension.to_hyperparameter(params[dimension.name])
        return values

    def default_params(self) -> dict:
        """The configured value of each hyperparameter the space can hold: the parameters of the study's first
        trial, so that the study measures the configured setting and its best is at least as good."""
        params = {}
        for dimension in self.dimensions:
            value = self.base[dimension.name]
            if dimension.name == "layers":
                if len(value) != 1:
                    continue  # a space sizes one layer; a deeper configured network is not in it
                value = value[0]
            if dimension.holds(value):
                params[dimension.name] = value
        return params

    def identity(self) -> dict:
        return {dimension.name: dimension.spec() for dimension in self.dimensions}


def _number(key: str, value, kind: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"expected a number, got {value!r}")
    if kind == "int" and float(value) != int(value):
        raise ConfigError(key, f"expected an integer, got {value!r}")
    return int(value) if kind == "int" else float(value)


def _parse_dimension(key: str, name: str, value) -> Dimension:
    if name not in TUNABLE_HYPERPARAMETERS:
        raise ConfigError(key, f"not a hyperparameter a study varies; expected one of {list(TUNABLE_HYPERPARAMETERS)}")
    kind = _kind(name)
    if isinstance(value, list):
        if not value:
            raise ConfigError(key, "an empty list of choices")
        if kind == "str":
            if not all(isinstance(choice, str) for choice in value):
                raise ConfigError(key, f"expected strings, got {value!r}")
            return Dimension(name, kind, choices=tuple(value))
        return Dimension(name, kind, choices=tuple(_number(key, choice, kind) for choice in value))
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a range {{low, high, step}} or a list of choices, got {value!r}")
    unknown = sorted(set(value) - set(RANGE_KEYS))
    if unknown or "low" not in value or "high" not in value:
        raise ConfigError(key, f"a range has keys low, high and optionally step or log; got {sorted(value)}")
    if kind == "str":
        raise ConfigError(key, f"{name} takes a list of choices, not a range")
    low, high = _number(f"{key}.low", value["low"], kind), _number(f"{key}.high", value["high"], kind)
    step = value.get("step")
    step = None if step is None else _number(f"{key}.step", step, kind)
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{key}.log", f"expected true or false, got {log!r}")
    if low > high:
        raise ConfigError(key, f"low {low} is above high {high}")
    if step is not None and step <= 0:
        raise ConfigError(f"{key}.step", f"expected a positive step, got {step}")
    if log and (step is not None or low <= 0):
        raise ConfigError(f"{key}.log", "a log scale needs low > 0 and no step")
    if step is not None and abs((high - low) / step - round((high - low) / step)) > 1e-9:
        raise ConfigError(f"{key}.step", f"high - low ({high - low:g}) is not a multiple of the step {step:g}")
    return Dimension(name, kind, low=low, high=high, step=step, log=log)
