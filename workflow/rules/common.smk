# Shared helpers: config validation, wildcard constraints, input functions and targets.

import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../../config/schema.yaml")

# The workflow's own package (also in a copy of the workflow): its names of losses, splits and settings.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from gru4rec_pipeline import names

LOSSES = list(config["training"]["losses"])
BASELINES = list(names.BASELINES)
SPLITS = list(names.SPLITS)
SETTING = config["setting"]
PACKAGE = "src/gru4rec_pipeline"


wildcard_constraints:
    loss="|".join(LOSSES),
    baseline="|".join(BASELINES),
    setting="|".join(names.SETTINGS),
    split="|".join(SPLITS),


def package_sources(*modules):
    """Package files a rule's results depend on: declared as inputs, so editing them reruns the rule."""
    shared = ["__init__", "errors", "progress", "data.arrays"]
    return [
        f"{PACKAGE}/{name.replace('.', '/')}.py"
        for name in dict.fromkeys(shared + list(modules))
    ]


def using_synthetic_data():
    return (
        not config["own_data"]["path"]
        and not config["clicks"]
        and not config["archive"]
        and config["source"] == "synthetic"
    )


def get_archive():
    """The yoochoose-data.7z the clicks are extracted from."""
    if config["archive"]:
        return config["archive"]
    if config["source"] == "download":
        return "results/raw/download/yoochoose-data.7z"
    return "results/raw/synthetic/yoochoose-data.7z"


def get_click_log():
    """The raw click log turned into results/data/clicks.parquet."""
    if config["own_data"]["path"]:
        return config["own_data"]["path"]
    if config["clicks"]:
        return config["clicks"]
    return "results/raw/yoochoose-clicks.dat"


def get_click_log_format():
    return "own" if config["own_data"]["path"] else "yoochoose"


def get_synthetic_process(wildcards):
    if not using_synthetic_data():
        raise WorkflowError(
            "the oracle baseline needs the synthetic dataset's process: set source: synthetic "
            "and leave archive, clicks and own_data.path empty"
        )
    return "results/raw/synthetic/process.npz"


def sessions_file(name):
    """A file of the session arrays for the configured setting (final or tuning)."""
    return f"results/sessions/{SETTING}/{name}"


def get_hyperparameters(wildcards):
    return config["training"]["losses"][wildcards.loss]


def get_training_resources(wildcards):
    """Resources of a training job: a GPU when the config asks for CUDA."""
    return 1 if config["device"] == "cuda" else 0


def get_baselines():
    chosen = config["baselines"]["run"]
    if not using_synthetic_data():
        chosen = [name for name in chosen if name != "oracle"]
    return chosen


def get_report_targets():
    """Summary table and figures, made by the rules in report.smk."""
    return [
        "results/summary.tsv",
        "results/summary.md",
        "results/summary.html",
        "results/plots/metrics_by_cutoff.png",
        "results/plots/training_speed.png",
        "results/plots/training_loss.png",
        "results/plots/dataset_statistics.png",
    ]


def get_final_output():
    models = LOSSES + get_baselines()
    return (
        ["results/data/stats.json"]
        + [f"results/recall_{name}.txt" for name in models]
        + get_report_targets()
    )


def get_setting_split(role):
    """The split a setting trains on (role train) or evaluates on (role eval)."""

    def input_function(wildcards):
        return f"results/data/{names.SETTING_SPLITS[wildcards.setting][role]}.parquet"

    return input_function
