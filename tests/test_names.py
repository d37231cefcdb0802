"""Names and defaults are defined once in the package; the schema and the shipped config agree with them."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from conftest import REPO
from gru4rec_pipeline import names
from gru4rec_pipeline.model.hyperparameters import DEFAULT_HYPERPARAMETERS, Hyperparameters
from gru4rec_pipeline.synthetic.archive import PRESETS

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
HYPERPARAMETERS = SCHEMA["$defs"]["hyperparameters"]
# Set per dataset rather than per loss: the shipped config trains the synthetic default dataset for fewer epochs.
DATASET_KEYS = {"epochs"}


def schema_at(*path: str) -> dict:
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
    return node


@pytest.mark.parametrize(
    "path, expected",
    [
        (("setting",), names.SETTINGS),
        (("device",), names.DEVICES),
        (("training", "engine"), names.ENGINES),
        (("training", "exchange"), names.EXCHANGES),
        (("evaluation", "tie_mode"), names.TIE_MODES),
        (("own_data", "time_format"), names.TIME_FORMATS),
        (("own_data", "ids"), names.ID_MODES),
        (("synthetic", "preset"), names.SYNTHETIC_PRESETS),
        (("protocol", "preset"), names.PROTOCOL_PRESETS),
        (("baselines", "sknn", "similarity"), names.SKNN_SIMILARITIES),
        (("baselines", "vsknn", "weighting"), names.POSITION_WEIGHTS),
        (("baselines", "vsknn", "weighting_score"), names.POSITION_WEIGHTS),
    ],
)
def test_schema_enums_are_the_packages_names(path, expected):
    assert tuple(schema_at(*path)["enum"]) == tuple(expected)


def test_schema_lists_the_losses_and_baselines():
    assert tuple(schema_at("training", "losses")["propertyNames"]["enum"]) == names.LOSSES
    assert tuple(schema_at("baselines", "run")["items"]["enum"]) == (*names.BASELINES, names.ORACLE)
    assert tuple(HYPERPARAMETERS["properties"]["embedding"]["enum"]) == names.EMBEDDING_MODES


def test_schema_defaults_are_the_packages_defaults():
    assert tuple(schema_at("evaluation", "cutoffs")["default"]) == names.DEFAULT_CUTOFFS
    assert schema_at("evaluation", "tie_mode")["default"] == names.DEFAULT_TIE_MODE == CONFIG["evaluation"]["tie_mode"]
    for section, defaults in (
        (("protocol",), names.PROTOCOL_DEFAULTS),
        (("baselines", "itemknn"), names.ITEMKNN_DEFAULTS),
        *((("baselines", method), defaults) for method, defaults in names.SESSION_KNN_DEFAULTS.items()),
        (("tuning",), names.TUNING_DEFAULTS),
        (("protocol", "window"), names.WINDOW_DEFAULTS),
    ):
        assert {key: schema_at(*section, key)["default"] for key in defaults} == defaults
    assert schema_at("url")["default"] == names.RSC15_URL
    for stage, threads in names.THREAD_DEFAULTS.items():
        assert schema_at(stage, "threads")["default"] == threads
    for key, default in names.DATA_PARALLEL_DEFAULTS.items():
        assert schema_at("training", key)["default"] == default
    defaults = {field.name: field.default for field in dataclasses.fields(Hyperparameters)}
    defaults["layers"] = Hyperparameters().layers
    for key, spec in HYPERPARAMETERS["properties"].items():
        assert spec["default"] == defaults[key], f"schema default of {key}: {spec['default']} vs {defaults[key]}"


def test_synthetic_presets_are_named_once():
    assert tuple(PRESETS) == names.SYNTHETIC_PRESETS


def test_dataclass_defaults_are_the_ce_sampled_setting():
    config = Hyperparameters().to_dict()
    assert {key: config[key] for key in DEFAULT_HYPERPARAMETERS["ce_sampled"]} == DEFAULT_HYPERPARAMETERS["ce_sampled"]


@pytest.mark.parametrize("loss", names.LOSSES)
def test_shipped_config_repeats_each_losses_defaults(loss):
    shipped = CONFIG["training"]["losses"][loss]
    defaults = DEFAULT_HYPERPARAMETERS[loss]
    assert set(HYPERPARAMETERS["required"]) <= set(shipped)
    differing = {key: (value, defaults[key]) for key, value in shipped.items() if value != defaults[key]}
    assert set(differing) <= DATASET_KEYS, f"{loss}: config.yaml differs from DEFAULT_HYPERPARAMETERS in {differing}"


def leaves(config: dict, prefix: tuple = ()):
    for key, value in config.items():
        if isinstance(value, dict):
            yield from leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def test_shipped_config_uses_the_schema_defaults():
    """Outside the per-loss hyperparameters and search spaces (tests/test_tuning_space.py checks those), every
    value in config.yaml is the schema's default."""
    tuning = {k: v for k, v in CONFIG["tuning"].items() if k != "spaces"}
    for path, value in leaves({**{k: v for k, v in CONFIG.items() if k != "training"}, "tuning": tuning}):
        assert value == schema_at(*path)["default"], f"config.yaml {'.'.join(path)}: {value!r}"
    assert CONFIG["training"]["threads"] == schema_at("training", "threads")["default"]


def test_every_loss_has_defaults():
    assert set(DEFAULT_HYPERPARAMETERS) == set(names.LOSSES)
    for loss, values in DEFAULT_HYPERPARAMETERS.items():
        assert Hyperparameters.from_dict(values).loss == loss


def test_schema_defaults_of_models_that_keep_learning():
    for section, defaults in (("retrain", names.RETRAIN_DEFAULTS), ("rolling", names.ROLLING_DEFAULTS)):
        assert {key: schema_at(section, key)["default"] for key in defaults} == defaults
        assert CONFIG[section] == defaults
