"""The data sets through `snakemake`: what a set's run plans, refuses and writes, each tiny set end to end (all four
side by side in one folder), and the table across them."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, copy_workflow, dry_run_jobs, planned_jobs, rules_of, run_snakemake, snakemake_command
from gru4rec_pipeline import names
from gru4rec_pipeline.data.datasets.registry import dataset, training_defaults

SETS = [name for name in names.DATASETS if name != names.DEFAULT_DATASET]
# The path a user takes: the shipped config, the tiny preset, the data set.
TINY = ("--configfile", "config/config.yaml", "config/tiny.yaml")
# A cheap run of a set: its best loss (2 epochs, the tiny preset's) and two baselines.
BASELINES = ["pop", "sknn"]
RSC15_RULES = {"synthesize_archive", "extract_clicks", "clicks_to_parquet", "extract_test_clicks", "split_sessions"}


def set_options(workdir: Path, name: str, *config: str) -> tuple[str, ...]:
    """Options running data set ``name`` on the tiny preset with its best loss and two baselines (an overlay file
    in the copy's config/, as a user writes one)."""
    overlay = workdir / "config" / f"cheap_{name}.yaml"
    overlay.write_text(f"training: {{run: [{dataset(name).loss}]}}\nbaselines: {{run: [{', '.join(BASELINES)}]}}\n")
    return (*TINY, str(overlay.relative_to(workdir)), "--config", f"dataset={name}", *config)


def results(workdir: Path, name: str) -> Path:
    return workdir / "results" / name


def test_lint_is_clean_for_a_data_set():
    result = subprocess.run(
        snakemake_command("--lint", "--config", "dataset=rees46", "source=download"),
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_a_data_set_plans_its_own_stages_into_its_own_folder(workflow_copy: Path):
    """Its raw files generated, split by its own stage (which counts every set's reader among its code), nothing of
    RSC15's, every file in results/retailrocket/."""
    result = run_snakemake(workflow_copy, "--dry-run", "--cores", "2", *set_options(workflow_copy, "retailrocket"))
    jobs = rules_of(dry_run_jobs(result))
    assert jobs["synthesize_dataset_raw"] == 1 and jobs["split_dataset"] == 1 and jobs["record_data_source"] == 1
    assert not RSC15_RULES & set(jobs), jobs
    assert jobs["train_model"] == 1 and jobs["evaluate_baseline"] == len(BASELINES), jobs
    written = {path for line in re.findall(r"^\s+output: (.*)$", result.stdout, re.M) for path in line.split(", ")}
    assert written and all(path.startswith("results/retailrocket/") for path in written), sorted(written)[:5]
    assert "results/retailrocket/recall_bpr_max.txt" in written
    split_inputs = re.search(r"rule split_dataset:\n\s+input: ([^\n]*)", result.stdout).group(1).split(", ")
    for name in SETS:
        assert f"src/gru4rec_pipeline/data/datasets/{name}.py" in split_inputs, name


def test_a_raw_folder_replaces_the_synthetic_files_and_a_public_set_downloads(workflow_copy: Path, tmp_path: Path):
    (tmp_path / "events.csv").write_text("timestamp,visitorid,event,itemid,transactionid\n")
    given = rules_of(planned_jobs(workflow_copy, config=set_options(workflow_copy, "retailrocket", f"raw={tmp_path}")))
    assert "synthesize_dataset_raw" not in given and given["split_dataset"] == 1, given
    downloaded = rules_of(planned_jobs(workflow_copy, config=set_options(workflow_copy, "rees46", "source=download")))
    assert downloaded["download_dataset_raw"] == 1 and "synthesize_dataset_raw" not in downloaded, downloaded


@pytest.mark.parametrize(
    "config, expected",
    [
        (("dataset=diginetica", "raw=/nowhere"), "config key 'raw': /nowhere does not exist; expected a folder"),
        (("dataset=coveo", "source=download"), "config key 'source': download: Coveo (shopper intent"),
        (("dataset=coveo", "archive=/data/yoochoose-data.7z"), "config key 'archive': '/data/yoochoose-data.7z' is"),
        (("raw=/data/rr",), "config key 'raw': '/data/rr' is read for the other data sets"),
        (("dataset=imdb",), "config key 'dataset': got 'imdb', expected one of: rsc15, rees46, coveo,"),
        (("dataset=coveo", "training={run: [bpr_max, hinge]}"), "config key 'training.run[1]': got 'hinge'"),
    ],
)
def test_a_bad_data_set_configuration_stops_before_any_job_naming_the_key(workflow_copy, config, expected):
    result = run_snakemake(workflow_copy, "--dry-run", "--cores", "1", *TINY, "--config", *config, check=False)
    assert result.returncode != 0 and expected in result.stdout + result.stderr, result.stderr[-2000:]
    assert not (workflow_copy / "results").exists()


def test_a_missing_raw_file_is_named_with_the_key_and_the_path(workflow_copy: Path, tmp_path: Path):
    result = run_snakemake(
        workflow_copy, "--dry-run", "--cores", "1", *TINY, "--config", "dataset=retailrocket", f"raw={tmp_path}",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"config key 'raw': {tmp_path / 'events.csv'} does not exist (nor events.csv.gz)" in result.stdout


# ---------------------------------------------------------------- every set end to end, side by side


@pytest.fixture(scope="session")
def datasets_run(tmp_path_factory) -> Path:
    """The four sets' tiny versions run side by side in one copy of the workflow, each a snakemake of its own on
    one core: its best loss for 2 epochs, two baselines, the summary and the report's figures."""
    workdir = copy_workflow(tmp_path_factory.mktemp("datasets-run"))
    runs = {
        name: subprocess.Popen(
            snakemake_command("--cores", "1", *set_options(workdir, name)),
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for name in SETS
    }
    failed = {}
    for name, process in runs.items():
        output, _ = process.communicate(timeout=900)
        if process.returncode != 0:
            failed[name] = output[-4000:]
    assert not failed, "\n".join(f"--- {name}\n{output}" for name, output in failed.items())
    return workdir


def recall_file_figures(path: Path) -> tuple[float, float]:
    text = path.read_text()
    return tuple(float(re.search(rf"^{m}@20: (\d\.\d+)$", text, re.M).group(1)) for m in ("Recall", "MRR"))


@pytest.mark.slow
@pytest.mark.parametrize("name", SETS)
def test_each_tiny_set_runs_from_its_raw_files_to_the_summary(datasets_run: Path, name: str):
    spec = dataset(name)
    folder = results(datasets_run, name)
    stats = json.loads((folder / "data" / "stats.json").read_text())
    assert stats["dataset"] == name and all((folder / "data" / f"{s}.parquet").exists() for s in names.SPLITS)
    assert (folder / "data" / "item_map.parquet").exists() == spec.item_map
    raw = [folder / "raw" / "synthetic" / file for file in spec.raw_files]
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in raw]
    sha256 = digests[0] if len(raw) == 1 else hashlib.sha256(
        "".join(f"{d}  {p.name}\n" for d, p in zip(digests, raw)).encode()
    ).hexdigest()  # fmt: skip
    named = f"synthetic {spec.short_title}-format raw files {', '.join(spec.raw_files)} (preset tiny, seed 42), " \
            f"sha256 {sha256[:12]}"  # fmt: skip
    for model in [spec.loss, *BASELINES]:
        recall, mrr = recall_file_figures(folder / f"recall_{model}.txt")
        assert 0 <= mrr <= recall <= 1
        assert f"# data: {named}\n" in (folder / f"recall_{model}.txt").read_text()
    summary = (folder / "summary.md").read_text()
    assert f"Dataset: {named}; trained on train_full, evaluated on test." in summary
    published = summary.split(f"## Published figures on the real {spec.short_title} data (reference only)")[1]
    assert f"{spec.published['paper']['recall@20']:.4f}" in published and spec.parameter_file in published
    assert "synthetic raw files in the data set's format" in summary
    assert (folder / "plots" / "dataset_statistics.png").exists()
    # Nothing of rsc15's: its folders stay empty.
    assert not (datasets_run / "results" / "data").exists() and not (datasets_run / "results" / "summary.md").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", SETS)
def test_each_set_trains_with_its_official_setting_where_the_config_is_as_shipped(datasets_run: Path, name: str):
    spec = dataset(name)
    metrics = json.loads((results(datasets_run, name) / "metrics" / "final" / f"{spec.loss}.json").read_text())
    hyperparameters = metrics["hyperparameters"]
    official = training_defaults(name)
    for key in ("layers", "batch_size", "learning_rate", "momentum", "dropout_embed", "dropout_hidden", "sample_alpha",
                "bpreg", "logq", "elu_param"):  # fmt: skip
        assert hyperparameters[key] == official[key], key
    # The tiny preset's values win: 2 epochs, 64 samples.
    assert hyperparameters["epochs"] == 2 and hyperparameters["n_sample"] == 64
    sknn = json.loads((results(datasets_run, name) / "metrics" / "final" / "sknn.json").read_text())
    assert sknn["hyperparameters"] == {**names.SESSION_KNN_DEFAULTS["sknn"], **spec.knn.get("sknn", {})}


@pytest.mark.slow
def test_a_finished_set_has_nothing_left_to_do_and_another_raw_folder_reruns_it(datasets_run: Path, tmp_path: Path):
    name = "retailrocket"
    assert planned_jobs(datasets_run, config=set_options(datasets_run, name)) == {}
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(results(datasets_run, name) / "raw" / "synthetic" / "events.csv", raw / "events.csv")
    jobs = rules_of(planned_jobs(datasets_run, config=set_options(datasets_run, name, f"raw={raw}")))
    assert "synthesize_dataset_raw" not in jobs
    assert jobs["record_data_source"] == jobs["split_dataset"] == jobs["train_model"] == 1, jobs
    assert jobs["evaluate_baseline"] == len(BASELINES), jobs


@pytest.mark.slow
def test_the_table_gathers_the_sets_and_names_one_not_run(datasets_run: Path, tmp_path: Path):
    workdir = tmp_path / "copy"
    shutil.copytree(datasets_run, workdir, symlinks=True)
    listed = f"benchmark={{datasets: [{', '.join(SETS)}]}}"
    run_snakemake(workdir, "results/benchmark/table.md", "--cores", "1", *set_options(workdir, "coveo", listed))
    table = pd.read_csv(workdir / "results" / "benchmark" / "table.tsv", sep="\t")
    assert list(table["dataset"].unique()) == SETS
    for name in SETS:
        rows = table[table["dataset"] == name].set_index("model")
        recall, mrr = recall_file_figures(results(workdir, name) / f"recall_{dataset(name).loss}.txt")
        assert rows.loc[dataset(name).loss, "recall@20"] == pytest.approx(recall, abs=1e-4)
        assert rows.loc["official_paper", "recall@20"] == dataset(name).published["paper"]["recall@20"]
    text = (workdir / "results" / "benchmark" / "table.md").read_text()
    assert (
        "| Model | Kind | rees46 (synthetic) | coveo (synthetic) | retailrocket (synthetic) | diginetica (synthetic) |"
        in text
    )
    # Listed in a config file, rule all builds the table once every set has run; asked for before, it names the
    # set not run and the command that runs it.
    (workdir / "results" / "benchmark" / "table.md").unlink()
    assert planned_jobs(workdir, config=set_options(workdir, "coveo")) == {}
    (workdir / "config" / "bench.yaml").write_text(f"benchmark: {{datasets: [{', '.join(SETS)}]}}\n")
    listing = set_options(workdir, "coveo")[:-2] + ("config/bench.yaml", "--config", "dataset=coveo")
    assert rules_of(planned_jobs(workdir, config=listing)) == {"summarize_benchmark": 1, "all": 1}
    missing = run_snakemake(
        workdir, "results/benchmark/table.md", "--dry-run", "--cores", "1",
        *set_options(workdir, "coveo", "benchmark={datasets: [rsc15, coveo]}"), check=False,
    )  # fmt: skip
    assert missing.returncode != 0
    assert (
        "config key 'benchmark.datasets': rsc15 has no results yet (results/summary.tsv): run it first with "
        "snakemake --cores N --config dataset=rsc15"
    ) in missing.stdout
