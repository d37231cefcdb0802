"""The config is validated against its schema before any job runs."""

from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_snakemake

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())


def describe_properties(schema: dict, prefix: str = ""):
    for key, spec in schema.get("properties", {}).items():
        yield prefix + key, spec
        if spec.get("type") == "object":
            yield from describe_properties(spec, prefix + key + ".")


def test_every_schema_key_has_description_and_default():
    for key, spec in describe_properties(SCHEMA):
        assert spec.get("description"), f"{key} has no description"
        if key != "training" and not key.startswith("training.losses"):
            assert "default" in spec, f"{key} has no default"
    for key, spec in SCHEMA["$defs"]["hyperparameters"]["properties"].items():
        assert spec.get("description") and "default" in spec, f"hyperparameter {key}"


def test_every_config_key_is_commented():
    """Each setting down to the second level has a comment line above it (hyperparameters are in the schema)."""
    lines = (REPO / "config" / "config.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped or stripped.startswith("#") or indent > 2 or ":" not in stripped:
            continue
        is_section = stripped.endswith(":")
        previous = lines[number - 1].strip() if number else ""
        assert is_section or previous.startswith("#"), f"config.yaml line {number + 1} ({stripped}) has no comment"


@pytest.mark.parametrize(
    "override, key",
    [
        (["bogus_key=1"], "bogus_key"),
        (["setting=later"], "setting"),
        (["device=tpu"], "device"),
        (["sha256=nothex"], "sha256"),
        (["replicates=0"], "replicates"),
        (["replicates=1.5"], "replicates"),
        # Capped: the plan of 1000 runs per loss took minutes and most of a GB before any job started.
        (["replicates=1000"], "replicates"),
        (["baselines={vsknn: {k: 2000}}"], "baselines.vsknn.k"),
        (["protocol={preset: session-rec}"], "protocol.preset"),
    ],
)
def test_bad_config_fails_naming_the_key(workflow_copy: Path, override, key):
    result = run_snakemake(workflow_copy, "--dry-run", "--config", *override, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert key in output, output[-2000:]
    assert not (workflow_copy / "results").exists()


@pytest.mark.parametrize(
    "overlay, message",
    [
        ("training: {early_stopping: {patience: 2}}", "'training.early_stopping': patience is set but no training"),
        ("setting: tuning\ntraining: {early_stopping: {patience: 2, metric: ndcg@20}}", "early_stopping.metric"),
        ("setting: tuning\ntraining: {early_stopping: {patience: 2, metric: mrr@7}}", "early_stopping.metric"),
        # The watched metric is one of the learning curve's, not of the evaluation's cut-offs.
        (
            "setting: tuning\nevaluation: {cutoffs: [20]}\n"
            "training: {curve_cutoffs: [10], early_stopping: {patience: 2}}",
            "'training.early_stopping.metric': got 'mrr@20', expected a cut-off of training.curve_cutoffs [10]",
        ),
        ("setting: tuning\ntraining: {eval_every_epoch: false, early_stopping: {patience: 2}}", "eval_every_epoch"),
    ],
)
def test_early_stopping_without_a_validation_metric_fails_naming_the_key(workflow_copy: Path, overlay, message):
    (workflow_copy / "bad.yaml").write_text(overlay + "\n")
    result = run_snakemake(workflow_copy, "--dry-run", "--configfile", "config/config.yaml", "bad.yaml", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


def test_unknown_hyperparameter_fails_naming_it(workflow_copy: Path):
    overlay = workflow_copy / "bad.yaml"
    overlay.write_text("training:\n  losses:\n    bpr:\n      learning_rat: 0.1\n")
    result = run_snakemake(workflow_copy, "--dry-run", "--configfile", "config/config.yaml", str(overlay), check=False)
    assert result.returncode != 0
    assert "learning_rat" in result.stdout + result.stderr


def test_unknown_loss_fails_naming_it(workflow_copy: Path):
    overlay = workflow_copy / "bad.yaml"
    overlay.write_text("training:\n  losses:\n    hinge: {}\n")
    result = run_snakemake(workflow_copy, "--dry-run", "--configfile", "config/config.yaml", str(overlay), check=False)
    assert result.returncode != 0
    assert "hinge" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "overlay, expected",
    [
        ("setting: later\n", ["config key 'setting'", "'later'", "one of: final, tuning"]),
        ("bogus_key: 1\n", ["config key 'bogus_key'", "unknown key", "source, archive"]),
        (
            "training:\n  losses:\n    bpr:\n      learning_rate: -1\n",
            ["config key 'training.losses.bpr.learning_rate'", "-1", "a number > 0", "Adagrad learning rate"],
        ),
        ("own_data: {ids: strings}\n", ["config key 'own_data.ids'", "'strings'", "one of: integer, map"]),
        ("training:\n  losses:\n    hinge: {}\n", ["config key 'training.losses.hinge'", "unknown key", "ce_full"]),
        ("protocol: {min_item_support: 2.5}\n", ["config key 'protocol.min_item_support'", "2.5", "an integer"]),
        (
            "training: {losses: {bpr: {learning_rate: .nan}}}\n",
            ["config key 'training.losses.bpr.learning_rate'", "got nan, expected a finite number"],
        ),
    ],
)
def test_a_validation_error_is_short_and_names_key_value_and_expectation(workflow_copy: Path, overlay, expected):
    (workflow_copy / "bad.yaml").write_text(overlay)
    result = run_snakemake(workflow_copy, "--dry-run", "--configfile", "config/config.yaml", "bad.yaml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for text in expected:
        assert text in output, output
    assert len(output.splitlines()) < 15, output


def test_the_shipped_config_passes_the_check():
    from gru4rec_pipeline.config_check import config_problem

    assert config_problem(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), SCHEMA) is None


def test_a_nan_or_infinity_anywhere_is_refused_by_the_check():
    from gru4rec_pipeline.config_check import config_problem

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["tuning"]["spaces"] = {"bpr": {"learning_rate": {"low": 0.01, "high": float("inf")}}}
    assert (
        config_problem(config, SCHEMA)
        == "config key 'tuning.spaces.bpr.learning_rate.high': got inf, expected a finite number"
    )


def test_the_parameter_page_is_the_schema_rendered():
    """config/README.md is generated from config/schema.yaml; regenerate it when the schema changes:
    python -m gru4rec_pipeline.config_docs config/schema.yaml > config/README.md"""
    from gru4rec_pipeline.config_docs import render

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    assert (REPO / "config" / "README.md").read_text() == render(schema)


def test_the_parameter_page_lists_every_key_of_the_schema():
    from gru4rec_pipeline.config_docs import render

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    page = render(schema)
    for key, node in schema["properties"].items():
        for child in node.get("properties", {}):
            assert f"`{key}.{child}" in page, f"{key}.{child} missing from the parameter page"
        assert f"`{key}" in page


@pytest.mark.parametrize(
    "overlay, message",
    [
        # The window preset trains each model once per slice, in the final setting: these would be ignored.
        ("replicates: 3", "config key 'replicates': 3 is not supported under protocol.preset window"),
        ("setting: tuning", "config key 'setting': 'tuning' is not supported under protocol.preset window"),
        (
            "training: {early_stopping: {patience: 2}}",
            "config key 'training.early_stopping.patience': 2 is not supported under protocol.preset window",
        ),
        ("protocol: {window: {days_shift: 0}}", "config key 'protocol.window.days_shift': 0 gives 5 identical slices"),
    ],
)
def test_settings_the_window_preset_would_ignore_are_refused_naming_the_key(workflow_copy: Path, overlay, message):
    (workflow_copy / "window.yaml").write_text("protocol: {preset: window}\n")
    (workflow_copy / "bad.yaml").write_text(overlay + "\n")
    config = ("--configfile", "config/config.yaml", "window.yaml", "bad.yaml")
    result = run_snakemake(workflow_copy, "--dry-run", *config, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


@pytest.mark.parametrize(
    "overlay, options, message",
    [
        (
            "training: {processes: 2, losses: {bpr: {batch_size: 1}}}",
            ("--cores", "2"),
            "config key 'training.losses.bpr.batch_size': a minibatch of 1 cannot be shared out among the 2 x 1",
        ),
        (
            "setting: tuning\ntraining: {processes: 2, early_stopping: {patience: 2}}",
            ("--cores", "2"),
            "config key 'training.early_stopping.patience': early stopping needs the per-epoch evaluation",
        ),
        (
            "training: {processes: 2, nodes: 2}",
            ("--cores", "2"),
            "config key 'training.nodes': 2 nodes are started with srun, in a SLURM allocation; this run uses the "
            "local executor",
        ),
        # On SLURM the same training is what the cluster profile is for.
        ("training: {processes: 2, nodes: 2}", ("--executor", "slurm", "--jobs", "2"), None),
    ],
)
def test_a_data_parallel_training_that_cannot_start_is_refused_before_any_job(
    workflow_copy: Path, overlay, options, message
):
    (workflow_copy / "parallel.yaml").write_text(overlay + "\n")
    config = ("--configfile", "config/config.yaml", "parallel.yaml")
    target = "results/models/final/bpr/model.pt"
    result = run_snakemake(workflow_copy, target, "--dry-run", *options, *config, check=False)
    output = result.stdout + result.stderr
    if message is None:
        assert result.returncode == 0, output[-2000:]
        assert "rule train_model:" in output, output[-2000:]
    else:
        assert result.returncode != 0 and message in output, output[-2000:]
        assert "rule " not in output, output[-2000:]
