# Shared helpers: config validation, wildcard constraints, input functions and targets.

import ast
import functools
import os
import sys
from pathlib import Path

import yaml
from snakemake.logging import logger
from snakemake.utils import validate

# The workflow's own package (also in a copy of the workflow): its names of losses, splits and settings.
SOURCE_ROOT = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SOURCE_ROOT))
from gru4rec_pipeline import names
from gru4rec_pipeline.config_check import (
    config_problem,
    data_parallel_problem,
    window_problem,
)
from gru4rec_pipeline.data.datasets.config import (
    apply_dataset_defaults,
    dataset_problem,
)
from gru4rec_pipeline.data.datasets.registry import dataset as dataset_spec
from gru4rec_pipeline.data.source import (
    DATASET_DOWNLOAD_FOLDER,
    DATASET_SYNTHETIC_FOLDER,
    DOWNLOADED_ARCHIVE,
    SYNTHETIC_ARCHIVE,
    configured_source,
    missing_source_problem,
    source_change_marker,
)

# Checked here first so that a bad value stops the run with one line naming key, value and expectation
# (Snakemake's own message prints the schema and the instance: for an unknown top-level key, the whole
# config); validate() then fills in the schema's defaults.
SCHEMA_PATH = Path(workflow.basedir) / "config" / "schema.yaml"
problem = config_problem(config, yaml.safe_load(SCHEMA_PATH.read_text()))
if problem:
    raise WorkflowError(problem)
validate(config, schema="../../config/schema.yaml")
# A data set other than rsc15 (config key dataset, data/datasets/): what it cannot honour stops the run here; then
# its official best setting and session-rec's kNN settings take the place of the values left as config.yaml ships
# them (data/datasets/config.py).
problem = dataset_problem(config)
if problem:
    raise WorkflowError(problem)
DATASET = config["dataset"]
SHIPPED_CONFIG = yaml.safe_load(
    (Path(workflow.basedir) / "config" / "config.yaml").read_text()
)
if apply_dataset_defaults(config, SHIPPED_CONFIG):
    logger.info(
        f"dataset {DATASET}: its official best setting and session-rec's kNN settings where the config is as shipped"
    )
# A configured file that is not there stops the run here, before any job: with the results of an earlier source
# present, Snakemake would otherwise find nothing to do and report those as up to date.
problem = missing_source_problem(config)
if problem:
    raise WorkflowError(problem)


def started_with_executor():
    """The executor this run was started with (--executor, or its profile's; local when none), as Snakemake's own
    parser reads the command line: the workflow's API does not say while the Snakefile loads. None if unknown.
    """
    from snakemake.cli import parse_args

    try:
        return parse_args(sys.argv[1:])[1].executor or "local"
    except (Exception, SystemExit):
        return None


problem = window_problem(config) or data_parallel_problem(
    config, executor=started_with_executor
)
if problem:
    raise WorkflowError(problem)

# A named run (run: NAME) keeps everything it writes in folders of its own, results/runs/NAME/ (and logs/runs/NAME/,
# benchmarks/runs/NAME/), so that another configuration never replaces, nor makes Snakemake rerun, its files; the
# default run (run: "") writes to results/, logs/ and benchmarks/.
RUN = config["run"]


def run_path(root, path="", dataset=None):
    """``root/path`` for the default run, ``root/runs/NAME/path`` for a run named NAME: every file the workflow
    writes is named through here. A data set other than rsc15 (``dataset``, default the configured one) adds its
    name first: results/retailrocket/path, results/retailrocket/runs/NAME/path."""
    dataset = DATASET if dataset is None else dataset
    folder = root if dataset == names.DEFAULT_DATASET else f"{root}/{dataset}"
    folder = f"{folder}/runs/{RUN}" if RUN else folder
    return f"{folder}/{path}" if path else folder


def result_file(path, dataset=None):
    """A result of this run: results/{path}, or results/runs/NAME/{path} (results/<dataset>/... for a data set
    other than rsc15)."""
    return run_path("results", path, dataset)


def log_file(path, dataset=None):
    return run_path("logs", path, dataset)


def benchmark_file(path):
    return run_path("benchmarks", path)


# The losses trained and evaluated: training.run, else every loss of training.losses.
LOSSES = list(config["training"]["run"] or config["training"]["losses"])
if not set(LOSSES) <= set(config["training"]["losses"]):
    raise WorkflowError(
        f"config key 'training.run': {sorted(set(LOSSES) - set(config['training']['losses']))} not in "
        "training.losses, which holds each loss's hyperparameters"
    )
BASELINES = list(names.BASELINES)
SPLITS = list(names.SPLITS)
SETTING = config["setting"]
TUNING = config["tuning"]
if not set(TUNING["run"]) <= set(LOSSES):
    raise WorkflowError(
        f"config key 'tuning.run': {sorted(set(TUNING['run']) - set(LOSSES))} not among the losses trained "
        "(training.run, else training.losses), "
        "whose setting a study varies and whose epochs the tuned model trains for"
    )
for method in names.SESSION_KNN_DEFAULTS:
    knn_settings = {
        **names.SESSION_KNN_DEFAULTS[method],
        **config["baselines"].get(method, {}),
    }
    if knn_settings["k"] > knn_settings["sample_size"]:
        raise WorkflowError(
            f"config key 'baselines.{method}.k': {knn_settings['k']} neighbours cannot be chosen among "
            f"sample_size={knn_settings['sample_size']} sessions"
        )

EARLY_STOPPING = config["training"]["early_stopping"]
if EARLY_STOPPING["patience"] and SETTING == "final" and not TUNING["run"]:
    raise WorkflowError(
        "config key 'training.early_stopping': patience is set but no training measures on a validation split: "
        "the final setting's trainings measure on test, where early stopping is refused; use setting: tuning, "
        "or tuning.run for studies whose trials stop early"
    )
if (
    EARLY_STOPPING["patience"]
    and SETTING == "tuning"
    and not config["training"]["eval_every_epoch"]
):
    raise WorkflowError(
        "config key 'training.eval_every_epoch': false, but training.early_stopping needs the metric after every epoch"
    )
if (
    EARLY_STOPPING["patience"]
    and int(EARLY_STOPPING["metric"].split("@")[1])
    not in config["training"]["curve_cutoffs"]
):
    raise WorkflowError(
        f"config key 'training.early_stopping.metric': got {EARLY_STOPPING['metric']!r}, "
        f"expected a cut-off of training.curve_cutoffs {config['training']['curve_cutoffs']}"
    )


wildcard_constraints:
    loss="|".join(LOSSES),
    baseline="|".join(BASELINES),
    setting="|".join(names.SETTINGS),
    split="|".join(SPLITS),
    worker=r"\d+",
    day=r"\d+",
    strategy="|".join(names.ROLLING_STRATEGIES),
    seed=r"\d+",
    slice=r"\d+",


def module_files(module):
    """The files Python runs to import ``module`` (dotted): each package's __init__.py on the way, then the module."""
    parts = module.split(".")
    files = [
        Path("src", *parts[:depth], "__init__.py") for depth in range(1, len(parts))
    ]
    leaf = Path("src", *parts)
    files.append(leaf / "__init__.py" if leaf.is_dir() else leaf.with_suffix(".py"))
    return [path for path in files if path.exists()]


def imported_package_modules(source):
    """Package modules named by the import statements anywhere in the file ``source`` (also inside functions),
    and those it starts as processes by name (a string constant such as ``"-m", "gru4rec_pipeline.model.x"``).
    """
    modules = set()
    for node in ast.walk(ast.parse(Path(source).read_text(), filename=str(source))):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and "." in node.value
        ):
            modules.add(node.value)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            # `from package import module` imports a module, `from module import name` does not.
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {
        name
        for name in modules
        if name.split(".")[0] == names.__name__.split(".")[0] and module_files(name)
    }


@functools.cache
def code_inputs(script):
    """Package files the stage script ``workflow/scripts/{script}.py`` runs: the import closure of its imports
    inside the package, derived from the code when the workflow loads. Declared as inputs, so editing any of
    them reruns the rule and what depends on it."""
    pending = [Path(workflow.basedir, "workflow", "scripts", f"{script}.py")]
    files = set()
    while pending:
        for module in imported_package_modules(pending.pop()):
            for path in module_files(module):
                if path not in files:
                    files.add(path)
                    pending.append(path)
    return sorted(os.path.relpath(path) for path in files)


SOURCE = configured_source(config, results=run_path("results"))
# The record of the data the clicks come from (data/source.py): every data stage depends on it, every result
# names it.
DATA_SOURCE = result_file("data/source.json")


def using_synthetic_data():
    return SOURCE["kind"] == "synthetic"


def get_source_file():
    """The file the clicks come from: the configured one, or the archive the workflow downloads or generates; a data
    set's raw files (datasets.smk)."""
    return SOURCE.get("files") or SOURCE["file"]


def get_source_marker():
    """The configured source (kind, path, URL, preset, seed) and a given file's size and mtime: a change of any
    reruns record_data_source (its params) and so every data stage."""
    return source_change_marker(config)


def get_archive():
    """The yoochoose-data.7z the clicks are extracted from (with own_data.path or clicks set, none is read)."""
    if SOURCE["kind"] in ("own_data", "clicks"):
        return configured_source(
            {**config, "own_data": {}, "clicks": ""}, results=run_path("results")
        )["file"]
    return SOURCE["file"]


def get_click_log():
    """The raw click log turned into results/data/clicks.parquet."""
    if SOURCE["kind"] in ("own_data", "clicks"):
        return SOURCE["file"]
    return result_file("raw/yoochoose-clicks.dat")


def get_test_clicks(wildcards):
    """yoochoose-test.dat's clicks, which the yoochoose protocol adds to the clicks (none without an archive)."""
    if (
        config["protocol"]["preset"] != "yoochoose"
        or config["own_data"]["path"]
        or config["clicks"]
    ):
        return []
    return result_file("data/test_clicks.parquet")


def get_click_log_format():
    return "own" if SOURCE["kind"] == "own_data" else "yoochoose"


def get_synthetic_process(wildcards):
    if not using_synthetic_data():
        raise WorkflowError(
            "the oracle baseline needs the synthetic dataset's process: set source: synthetic "
            "and leave archive, clicks and own_data.path empty"
        )
    return result_file("raw/synthetic/process.npz")


def sessions_file(setting, name):
    """A file of a setting's session arrays (final: train_full -> test, tuning: train_tr -> valid)."""
    return result_file(f"sessions/{setting}/{name}")


def setting_rule_name(name, setting):
    """Name of the final setting's rule (``name``) or of the tuning setting's (``name_on_valid``), both made from
    one definition."""
    return name if setting == "final" else f"{name}_on_valid"


def get_epoch_evaluation_split(wildcards):
    """The split a training is evaluated on after every epoch (training.eval_every_epoch): its setting's."""
    if not config["training"]["eval_every_epoch"]:
        return []
    return sessions_file(wildcards.setting, "eval.npz")


def get_tuned_epoch_evaluation_split():
    """The test split a tuned model's retraining is evaluated on after every epoch (its learning curve)."""
    return (
        sessions_file("final", "eval.npz")
        if config["training"]["eval_every_epoch"]
        else []
    )


def get_early_stopping(wildcards):
    """training.early_stopping where it is legitimate: trainings of the tuning setting, measured on valid."""
    if wildcards.setting != "tuning" or not EARLY_STOPPING["patience"]:
        return None
    return dict(EARLY_STOPPING)


def get_hyperparameters(wildcards):
    return config["training"]["losses"][wildcards.loss]


def get_model_seed(wildcards):
    """A model's training seed: a repeated run's from its files (seed{seed}), the first run's from the config."""
    return int(wildcards.get("seed", config["seed"]))


def model_file(setting, model, name):
    """A file of a trained model (model.pt, history.csv, training.json): models of the final and the tuning
    setting live apart, so that neither run replaces the other's."""
    return result_file(f"models/{setting}/{model}/{name}")


def metrics_file(setting, name):
    return result_file(f"metrics/{setting}/{name}.json")


def ranks_file(setting, name):
    """Every evaluated event's rank in split order, the paired comparisons' input (evaluation/event_ranks.py)."""
    return result_file(f"metrics/{setting}/{name}.ranks.npz")


def setting_path(setting, path):
    """``path`` for the final setting, ``tuning/path`` for the tuning one: where each setting's recall files and
    report lie, apart from the other's."""
    return path if setting == "final" else f"{setting}/{path}"


def recall_file(setting, name):
    """results/recall_{name}.txt for the final setting, results/tuning/recall_{name}.txt for the tuning one."""
    return result_file(setting_path(setting, f"recall_{name}.txt"))


def report_file(path, root="results"):
    """A file of the configured setting's report (or its log or benchmark, by ``root``): results/summary.tsv for the
    final setting, results/tuning/summary.tsv for the tuning one."""
    return run_path(root, setting_path(SETTING, path))


def get_tuned_losses():
    """Losses whose study and tuned model `rule all` builds (tuning.run); a tuned model is a final-setting result."""
    return list(TUNING["run"]) if SETTING == "final" else []


def get_trained_models():
    """The GRU4Rec models the summary lists: one per loss, and the tuned ones (tuning.run)."""
    return LOSSES + [loss + names.TUNED_SUFFIX for loss in get_tuned_losses()]


def get_evaluated_models():
    return get_trained_models() + get_baselines()


def get_replicate_seeds():
    """Seeds of the repeated runs beyond the first (replicates: N trains each loss with seed, seed+1, ...)."""
    return [config["seed"] + offset for offset in range(1, config["replicates"])]


def replicate_model_file(setting, loss, seed, name):
    """A repeated run's model files live below its loss's: results/models/{setting}/{loss}/seed{seed}/{name}."""
    return result_file(f"models/{setting}/{loss}/seed{seed}/{name}")


def replicate_metrics_file(setting, loss, seed, suffix=".json"):
    return result_file(f"metrics/{setting}/{loss}/seed{seed}{suffix}")


def replicate_recall_file(setting, loss, seed):
    return recall_file(setting, f"{loss}_seed{seed}")


def get_replicate_metrics():
    """Per loss, the metrics files of all its runs, first run first; empty with one replicate (the baselines are
    deterministic and run once)."""
    if config["replicates"] == 1:
        return {}
    return {
        loss: [metrics_file(SETTING, loss)]
        + [
            replicate_metrics_file(SETTING, loss, seed)
            for seed in get_replicate_seeds()
        ]
        for loss in LOSSES
    }


def get_replicate_metrics_files():
    return [path for paths in get_replicate_metrics().values() for path in paths]


def get_repeated_run_metrics_files():
    """The metrics files of the runs beyond each loss's first (whose file the summary already reads)."""
    return [
        replicate_metrics_file(SETTING, loss, seed)
        for loss in LOSSES
        for seed in get_replicate_seeds()
    ]


def get_study_settings():
    """The tuning settings that shape a study and its workers (not which losses `rule all` tunes)."""
    return {key: value for key, value in TUNING.items() if key not in ("run", "spaces")}


def get_search_space(wildcards):
    """tuning.spaces.{loss}; None where the config has none: the published space (tuning/space.py)."""
    return TUNING.get("spaces", {}).get(wildcards.loss)


def get_study_workers(wildcards):
    return expand(
        result_file("tuning/{loss}/workers/{worker}.json"),
        loss=wildcards.loss,
        worker=range(TUNING["workers"]),
    )


def get_evaluation_settings():
    """What decides an evaluation's numbers (not its threads): a change reruns the evaluations."""
    return {
        key: config["evaluation"][key] for key in ("cutoffs", "tie_mode", "batch_size")
    }


def get_curve_settings():
    """What decides a learning curve's numbers (history.csv after every epoch): the evaluation's, at the curve's
    own cut-offs (training.curve_cutoffs), so that another evaluation cut-off retrains nothing.
    """
    return {
        **get_evaluation_settings(),
        "cutoffs": config["training"]["curve_cutoffs"],
    }


def get_trial_evaluation_settings():
    """What decides a tuning trial's measurement besides tuning.metric: how ties rank and the sessions evaluated
    side by side (the metric's cut-off is the study's, not evaluation.cutoffs)."""
    return {key: config["evaluation"][key] for key in ("tie_mode", "batch_size")}


def get_training_gpus(wildcards):
    """GPUs a training job asks the cluster for: one when the config asks for CUDA (sbatch --gpus=1)."""
    return 1 if config["device"] == "cuda" else 0


def get_training_processes():
    """Processes per node and nodes of one training (data-parallel when more than one in all)."""
    return config["training"].get("processes", 1), config["training"].get("nodes", 1)


def get_training_job_threads():
    """A training job's threads on one node: each of its processes has training.threads."""
    processes, _ = get_training_processes()
    return config["training"]["threads"] * processes


def get_training_tasks(wildcards):
    """Tasks a training job asks SLURM for: one per process (the job starts them with srun)."""
    processes, nodes = get_training_processes()
    return processes * nodes


def get_training_nodes(wildcards):
    return get_training_processes()[1]


def get_training_job_gpus(wildcards):
    """GPUs per node a training job asks for: one per process with CUDA."""
    return get_training_processes()[0] if config["device"] == "cuda" else 0


def get_training_gpu_share(wildcards):
    """A training's share of a GPU: one unit. `--resources gpu_share=N` lets N trainings use one GPU at once."""
    return 1 if config["device"] == "cuda" else 0


def get_baseline_options(wildcards):
    """A baseline's settings (config baselines.<name>; none for pop and spop)."""
    return config["baselines"].get(wildcards.baseline, {})


def get_baselines():
    chosen = config["baselines"]["run"]
    if not using_synthetic_data():
        chosen = [name for name in chosen if name != "oracle"]
    return chosen


def get_report_targets():
    """Summary table and figures, made by the rules in report.smk."""
    return [
        report_file("summary.tsv"),
        report_file("summary.md"),
        report_file("summary.html"),
        report_file("significance.tsv"),
        report_file("plots/metrics_by_cutoff.png"),
        report_file("plots/training_speed.png"),
        report_file("plots/training_loss.png"),
        report_file("plots/learning_curve.png"),
        result_file("plots/dataset_statistics.png"),
    ]


def get_summary_files():
    """The TSV of the summary the default target makes, then the markdown with the rest (the window preset's, or
    the configured setting's)."""
    if config["protocol"]["preset"] == "window":
        return result_file("window/summary.tsv"), result_file("window/summary.md")
    return report_file("summary.tsv"), report_file("summary.md")


def print_results_of_rule_all():
    """After a successful run of the default target (all), its summary table on the terminal."""
    if "all" in {target.name for target in workflow.dag.targetrules}:
        # Imported here: every job's Snakemake process reads this file, and only the main one prints.
        from gru4rec_pipeline.report.terminal import print_summary

        print_summary(*get_summary_files())


WINDOW = {**names.WINDOW_DEFAULTS, **config["protocol"].get("window", {})}
WINDOW_SLICES = [str(i) for i in range(int(WINDOW["slices"]))]


def get_window_models():
    """What each slice of the window preset trains and evaluates: every loss and baseline (not the oracle)."""
    return [*LOSSES, *(name for name in get_baselines() if name != names.ORACLE)]


def get_final_output():
    if config["protocol"]["preset"] == "window":
        return [result_file("data/window/stats.json"), result_file("window/summary.md")]
    return (
        [result_file("data/stats.json")]
        + [recall_file(SETTING, name) for name in get_evaluated_models()]
        + [
            replicate_recall_file(SETTING, loss, seed)
            for loss in LOSSES
            for seed in get_replicate_seeds()
        ]
        + [result_file(f"tuning/{loss}/best.yaml") for loss in get_tuned_losses()]
        + get_report_targets()
        # Models that keep learning (retrain.smk, rolling.smk).
        + get_retrain_targets()
        + get_rolling_targets()
        # The table across data sets (benchmark.smk).
        + get_benchmark_targets()
    )


def get_setting_split(role):
    """The split a setting trains on (role train) or evaluates on (role eval)."""

    def input_function(wildcards):
        return result_file(
            f"data/{names.SETTING_SPLITS[wildcards.setting][role]}.parquet"
        )

    return input_function


# ---------------------------------------------------------------- models that keep learning
# retrain.smk: a final model retrained on retrain.clicks; rolling.smk: the day-by-day evaluation.


def get_retrain_clicks(wildcards):
    if not config["retrain"]["clicks"]:
        raise WorkflowError(
            "config key 'retrain.clicks': empty; set the new clicks a model is retrained on"
        )
    return config["retrain"]["clicks"]


def get_retrain_targets():
    """Every final model retrained on retrain.clicks, when set."""
    if not config["retrain"]["clicks"] or SETTING != "final":
        return []
    return [result_file(f"retrained/{loss}/training.json") for loss in LOSSES]


ROLLING = config["rolling"]
ROLLING_DAYS = list(range(1, ROLLING["days"] + 1))


def rolling_model(loss, strategy, day):
    """(strategy, day) of the model a strategy tests day ``day`` with: warm and frozen start from scratch's
    day 1, and frozen never leaves it."""
    day = int(day)
    if strategy == "frozen" or (strategy == "warm" and day == 1):
        return "scratch", 1
    return strategy, day


def rolling_model_files(loss, strategy, day):
    """Folder of that model and its vocabulary (a scratch model's is its sessions' vocabulary)."""
    strategy, day = rolling_model(loss, strategy, day)
    folder = result_file(f"rolling/{loss}/{strategy}/day_{day}")
    if strategy == "scratch":
        return folder, result_file(f"rolling/sessions/day_{day}/vocab.parquet")
    return folder, f"{folder}/vocab.parquet"


def get_warm_parent(wildcards):
    """The previous day's warm model and the previous day's sessions it is retrained on."""
    previous = int(wildcards.day) - 1
    folder, vocab = rolling_model_files(wildcards.loss, "warm", previous)
    return {
        "model": f"{folder}/model.pt",
        "state": f"{folder}/{names.TRAINING_STATE_FILE}",
        "vocab": vocab,
        "clicks": result_file(f"rolling/days/day_{previous}.parquet"),
    }


def get_rolling_model(wildcards):
    """Model, vocabulary and (where this day's model was trained for this strategy) its training summary."""
    folder, vocab = rolling_model_files(
        wildcards.loss, wildcards.strategy, wildcards.day
    )
    inputs = {"model": f"{folder}/model.pt", "vocab": vocab}
    # A frozen model costs its training once, on day 1; the warm model of day 1 is scratch's.
    if not (wildcards.strategy == "frozen" and int(wildcards.day) > 1):
        inputs["training"] = f"{folder}/training.json"
    return inputs


def get_rolling_records(wildcards):
    return expand(
        result_file("rolling/{loss}/records/{strategy}_day_{day}.json"),
        loss=wildcards.loss,
        strategy=names.ROLLING_STRATEGIES,
        day=ROLLING_DAYS,
    )


def get_rolling_targets():
    """Table, figure and summary of the day-by-day evaluation of each loss in rolling.run."""
    return [
        result_file(f"rolling/{loss}.{ext}")
        for loss in ROLLING["run"]
        for ext in ("tsv", "png", "md")
    ]


# ---------------------------------------------------------------- the other data sets, and the table across them
# datasets.smk: a data set other than rsc15 (config key dataset); benchmark.smk: the table of benchmark.datasets.

DATASET_SPEC = dataset_spec(DATASET)


def dataset_raw_files(folder, files):
    """The data set's raw files ``files`` as the workflow downloads or generates them, in ``folder`` of its results."""
    return [result_file(f"{folder}/{file}") for file in files]


def get_dataset_item_map():
    """The map of a set whose items are strings (Coveo's product hashes) back from the item ids, beside the splits."""
    return (
        {"item_map": result_file("data/item_map.parquet")}
        if DATASET_SPEC.item_map
        else {}
    )


BENCHMARK_DATASETS = list(config["benchmark"]["datasets"])


def benchmark_table(extension):
    """results/benchmark/table.{extension}: one table for every data set, so in no data set's folder."""
    return run_path("results", f"benchmark/table.{extension}", names.DEFAULT_DATASET)


def benchmark_sets_not_run():
    """The listed data sets whose final results neither exist nor are built by this run."""
    return [
        name
        for name in BENCHMARK_DATASETS
        if not (name == DATASET and SETTING == "final")
        and not Path(result_file("summary.tsv", name)).exists()
    ]


def get_benchmark_inputs(wildcards):
    """Each listed data set's results table (final setting) and data source record."""
    if not BENCHMARK_DATASETS:
        raise WorkflowError(
            "config key 'benchmark.datasets': empty; list the data sets the table gathers, e.g. "
            "--config 'benchmark={datasets: [rsc15, retailrocket]}'"
        )
    missing = [
        f"{name} has no results yet ({result_file('summary.tsv', name)}): run it first with snakemake --cores N "
        f"--config dataset={name}" + (f" run={RUN}" if RUN else "")
        for name in benchmark_sets_not_run()
    ]
    if missing:
        raise WorkflowError("config key 'benchmark.datasets': " + "; ".join(missing))
    inputs = {}
    for name in BENCHMARK_DATASETS:
        inputs[f"{name}_summary"] = result_file("summary.tsv", name)
        inputs[f"{name}_source"] = result_file("data/source.json", name)
    return inputs


def get_benchmark_targets():
    """The table, for rule all, once every listed data set has its results (or gets them in this run)."""
    if not BENCHMARK_DATASETS:
        return []
    missing = benchmark_sets_not_run()
    if missing:
        logger.info(
            f"{benchmark_table('md')} waits for the results of {', '.join(missing)} (config key benchmark.datasets)"
        )
        return []
    return [benchmark_table(extension) for extension in ("tsv", "md", "html")]
