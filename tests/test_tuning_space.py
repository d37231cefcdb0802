"""Search spaces and study settings: the published defaults the config repeats, checks that name the key,
the configured setting as the first trial, and the fingerprint that separates studies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from conftest import REPO, run_snakemake
from gru4rec_pipeline import names
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.tuning.settings import TuningSettings, parse_metric, study_fingerprint, study_name
from gru4rec_pipeline.tuning.space import DEFAULT_SPACES, SearchSpace

CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
TUNING_SCHEMA = SCHEMA["properties"]["tuning"]


def configured(loss: str) -> dict:
    return CONFIG["training"]["losses"][loss]


def test_config_repeats_the_published_spaces():
    assert CONFIG["tuning"]["spaces"] == DEFAULT_SPACES


def test_schema_names_what_the_package_names():
    space = SCHEMA["$defs"]["search_space"]
    assert tuple(space["propertyNames"]["enum"]) == names.TUNABLE_HYPERPARAMETERS
    assert tuple(TUNING_SCHEMA["properties"]["spaces"]["propertyNames"]["enum"]) == names.LOSSES
    assert tuple(TUNING_SCHEMA["properties"]["run"]["items"]["enum"]) == names.LOSSES
    assert TUNING_SCHEMA["properties"]["metric"]["pattern"] == f"^({'|'.join(names.TUNING_METRICS)})@[1-9][0-9]*$"


def test_published_spaces():
    bpr_max = DEFAULT_SPACES["bpr_max"]
    assert bpr_max["layers"] == {"low": 64, "high": 512, "step": 32}
    assert bpr_max["learning_rate"] == {"low": 0.01, "high": 0.25, "step": 0.005}
    assert bpr_max["bpreg"] == {"low": 0.0, "high": 2.0, "step": 0.05}
    assert bpr_max["elu_param"] == [0.0, 0.5, 1.0]
    assert "n_sample" not in bpr_max  # fixed at the configured 2048
    assert DEFAULT_SPACES["ce_sampled"]["logq"] == [0.0, 1.0]
    assert "sample_alpha" not in DEFAULT_SPACES["ce_full"] and "elu_param" not in DEFAULT_SPACES["ce_sampled"]
    assert all("bpreg" not in space for loss, space in DEFAULT_SPACES.items() if loss != "bpr_max")


@pytest.mark.parametrize("loss", names.LOSSES)
def test_every_published_space_is_usable(loss):
    space = SearchSpace.from_config(loss, None, configured(loss))
    distributions = space.distributions()
    assert isinstance(distributions["layers"], IntDistribution) and distributions["layers"].step == 32
    assert isinstance(distributions["learning_rate"], FloatDistribution)
    for name, distribution in distributions.items():
        if isinstance(distribution, CategoricalDistribution):
            assert name in ("elu_param", "logq")


def test_a_sampled_point_becomes_a_config_entry():
    space = SearchSpace.from_config("bpr_max", None, configured("bpr_max"))
    params = {"layers": 224, "learning_rate": 0.01 + 37 * 0.005, "elu_param": 1.0}
    hyperparameters = space.hyperparameters(params)
    assert hyperparameters["layers"] == [224]
    assert hyperparameters["learning_rate"] == 0.195  # without the float steps' representation noise
    assert hyperparameters["n_sample"] == 2048 and hyperparameters["epochs"] == configured("bpr_max")["epochs"]
    assert set(hyperparameters) == set(configured("bpr_max"))


def test_the_first_trial_is_the_configured_setting():
    space = SearchSpace.from_config("bpr_max", None, configured("bpr_max"))
    assert space.default_params() == {
        "layers": 100,  # between two grid points of step 32, still in the range: measured as configured
        "batch_size": 32,
        "learning_rate": 0.2,
        "dropout_embed": 0.0,
        "dropout_hidden": 0.0,
        "momentum": 0.1,
        "sample_alpha": 0.0,
        "bpreg": 0.5,
        "elu_param": 0.5,
    }
    narrow = SearchSpace.from_config(
        "bpr_max", {"layers": {"low": 32, "high": 64}, "elu_param": [0.0, 1.0]}, configured("bpr_max")
    )
    assert narrow.default_params() == {}  # neither configured value lies in this space


@pytest.mark.parametrize(
    "spec, key",
    [
        ({"learning_rat": [0.1]}, "tuning.spaces.bpr_max.learning_rat"),
        ({"learning_rate": {"low": 0.3, "high": 0.1}}, "tuning.spaces.bpr_max.learning_rate"),
        ({"learning_rate": {"low": 0.01, "high": 0.1, "step": 0.04}}, "tuning.spaces.bpr_max.learning_rate.step"),
        ({"learning_rate": {"low": 0.01, "high": 0.1, "step": 0.01, "log": True}}, "learning_rate.log"),
        ({"learning_rate": {"low": 0.01}}, "tuning.spaces.bpr_max.learning_rate"),
        ({"batch_size": {"low": 16.5, "high": 64}}, "tuning.spaces.bpr_max.batch_size.low"),
        ({"dropout_hidden": {"low": 0.0, "high": 1.0}}, "tuning.spaces.bpr_max.dropout_hidden"),
        ({"embedding": {"low": 0, "high": 1}}, "tuning.spaces.bpr_max.embedding"),
        ({"elu_param": []}, "tuning.spaces.bpr_max.elu_param"),
        ({"embedding": ["shared", "stacked"]}, "tuning.spaces.bpr_max.embedding"),
        ({}, "tuning.spaces.bpr_max"),
    ],
)
def test_a_bad_space_names_its_key(spec, key):
    with pytest.raises(ConfigError) as error:
        SearchSpace.from_config("bpr_max", spec, configured("bpr_max"))
    assert key in str(error.value)


@pytest.mark.parametrize(
    "values, key",
    [
        ({"trials": 0}, "tuning.trials"),
        ({"workers": "2"}, "tuning.workers"),
        ({"metric": "ndcg@20"}, "tuning.metric"),
        ({"metric": "mrr@0"}, "tuning.metric"),
        ({"pruning": "yes"}, "tuning.pruning"),
        ({"sampler": "tpe"}, "tuning.sampler"),
    ],
)
def test_bad_tuning_settings_name_their_key(values, key):
    with pytest.raises(ConfigError) as error:
        TuningSettings.from_dict(values)
    assert key in str(error.value)


def test_settings_defaults_and_metric():
    settings = TuningSettings.from_dict({"run": ["bpr_max"], "spaces": {}, "metric": "recall@10"})
    assert (settings.metric_name, settings.cutoff) == ("recall", 10)
    assert settings.trials == names.TUNING_DEFAULTS["trials"]
    assert parse_metric("mrr@20") == ("mrr", 20)


def arrays(seed: int) -> SessionArrays:
    rng = np.random.default_rng(seed)
    offsets = np.arange(0, 41, 4, dtype=np.int64)
    return SessionArrays(offsets, rng.integers(0, 20, 40), np.zeros(40), np.arange(10), vocabulary="v")


def test_the_study_name_follows_space_data_and_settings_not_trials_or_workers():
    base = configured("bpr_max")
    train, valid = arrays(0), arrays(1)

    def name(space=None, settings=None, hyperparameters=base, train=train, valid=valid, seed=42) -> str:
        search_space = SearchSpace.from_config("bpr_max", space, hyperparameters)
        fingerprint = study_fingerprint(search_space, settings or TuningSettings(), seed, "standard", train, valid)
        return study_name("bpr_max", fingerprint)

    reference = name()
    assert reference.startswith("bpr_max-") and len(reference) == len("bpr_max-") + 12
    # The same study: more trials or workers extend it; the retraining's epochs are not the trials'.
    assert name(settings=TuningSettings(trials=200, workers=8)) == reference
    assert name(hyperparameters={**base, "epochs": 10}) == reference
    rebuilt = SessionArrays(train.offsets.copy(), train.items.copy(), train.times + 1, train.session_ids, "v")
    assert name(train=rebuilt) == reference  # the same sessions written again
    # Another study: space, data, trial settings, the setting around the space, seeds.
    narrower = {**DEFAULT_SPACES["bpr_max"], "learning_rate": {"low": 0.05, "high": 0.1, "step": 0.005}}
    others = [
        name(space=narrower),
        name(valid=arrays(2)),
        name(settings=TuningSettings(epochs=3)),
        name(settings=TuningSettings(metric="recall@20")),
        name(settings=TuningSettings(seed=7)),
        name(settings=TuningSettings(pruning=False)),
        name(hyperparameters={**base, "n_sample": 64}),
        name(seed=1),
    ]
    assert len({reference, *others}) == len(others) + 1


@pytest.mark.parametrize(
    "overlay, expected",
    [
        ("tuning: {metric: ndcg@20}\n", "metric"),
        ("tuning: {spaces: {bpr_max: {learning_rat: [0.1]}}}\n", "learning_rat"),
        ("tuning: {run: [bpr_max, hinge]}\n", "hinge"),
    ],
)
def test_the_workflow_refuses_a_bad_tuning_section(workflow_copy: Path, overlay, expected):
    (workflow_copy / "bad.yaml").write_text(overlay)
    result = run_snakemake(workflow_copy, "--dry-run", "--configfile", "config/config.yaml", "bad.yaml", check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
