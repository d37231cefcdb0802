"""The workflow end to end on the tiny preset: lint, formatting, outputs, no-op reruns, targeted rebuilds."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import LOSSES, REPO, REPORT_RULES, TINY, planned_jobs, rules_of, run_snakemake
from gru4rec_pipeline import names

BASELINES = [*names.BASELINES, names.ORACLE]


def test_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_rules_are_formatted():
    snakefmt = Path(sys.executable).with_name("snakefmt")
    files = ["Snakefile", *sorted(str(path) for path in (REPO / "workflow" / "rules").glob("*.smk"))]
    result = subprocess.run([str(snakefmt), "--check", *files], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_run_uses_every_core_of_the_machine():
    result = subprocess.run(["make", "--dry-run", "run"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"snakemake --cores {len(os.sched_getaffinity(0))} results/recall_bpr.txt" in result.stdout, result.stdout


def test_make_test_fast_leaves_out_every_test_that_runs_the_workflow():
    """make test-fast's selection, as the Makefile states it, collects no test that needs a whole run of the workflow
    (tiny_run, tuned_run, or a fixture built on them), whether the test is marked slow or not."""
    make = subprocess.run(["make", "--dry-run", "test-fast"], cwd=REPO, capture_output=True, text=True, timeout=60)
    command = next(line for line in make.stdout.splitlines() if " -m pytest " in line)
    selection = shlex.split(command.split(" -m pytest ", 1)[1])
    files = [
        "tests/test_entry_points.py",
        "tests/test_reruns.py",
        "tests/test_training_guards.py",
        "tests/test_docs.py",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *selection, "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected and result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not [test for test in collected if "test_reruns.py" in test], collected
    assert "tests/test_entry_points.py::test_train_through_the_command_line_is_the_rules_training" not in collected
    # The documented commands that run in a copy of a finished run ask for it inside the test.
    assert not [test for test in collected if "-run-tiny-run]" in test or "-run-tuned-run]" in test], collected
    assert [test for test in collected if "test_docs.py::test_documented_commands_run" in test], collected


@pytest.mark.slow
def test_tiny_run_builds_every_result(tiny_run: Path):
    results = tiny_run / "results"
    assert (results / "data" / "stats.json").exists()
    for split in ["train_full", "test", "train_tr", "valid"]:
        assert (results / "data" / f"{split}.parquet").exists()
    for name in LOSSES + BASELINES:
        text = (results / f"recall_{name}.txt").read_text()
        recall = float(re.search(r"^Recall@20: (\d\.\d+)$", text, re.M).group(1))
        mrr = float(re.search(r"^MRR@20: (\d\.\d+)$", text, re.M).group(1))
        assert 0.0 <= mrr <= recall <= 1.0, (name, text)
    for rule_logs in ["synthesize_archive", "extract_clicks", "split_sessions", "train_model", "evaluate_model"]:
        assert any((tiny_run / "logs" / rule_logs).iterdir()), f"no log for {rule_logs}"


@pytest.mark.slow
def test_every_result_names_the_data_set(tiny_run: Path):
    """The recall files, the metrics files and the summary say which data they were measured on: the synthetic
    preset and seed, and the start of the SHA-256 of the archive the clicks came from."""
    synthetic = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["synthetic"]
    archive = tiny_run / "results" / "raw" / "synthetic" / "yoochoose-data.7z"
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    named = f"synthetic yoochoose-format data (preset tiny, seed {synthetic['seed']}), sha256 {sha256[:12]}"
    for name in LOSSES + BASELINES:
        assert f"# data: {named}\n" in (tiny_run / "results" / f"recall_{name}.txt").read_text(), name
        data = json.loads((tiny_run / "results" / "metrics" / "final" / f"{name}.json").read_text())["data"]
        assert data["sha256"] == sha256 and data["description"] == named, (name, data)
        assert data["kind"] == "synthetic" and data["preset"] == "tiny", data
    summary_md = (tiny_run / "results" / "summary.md").read_text()
    assert f"Dataset: {named}; trained on train_full, evaluated on test." in summary_md
    summary = pd.read_csv(tiny_run / "results" / "summary.tsv", sep="\t", dtype={"data": str})
    models = summary[summary["kind"] != "published_rsc15"]
    assert (models["data"] == sha256[:12]).all(), models[["model", "data"]]


@pytest.mark.slow
def test_second_run_does_nothing(tiny_run: Path):
    assert planned_jobs(tiny_run) == Counter()


@pytest.mark.slow
def test_a_run_of_rule_all_ends_with_the_summary_table_on_the_terminal(tiny_run: Path, tmp_path: Path):
    """The headline figures of every model, as results/summary.tsv holds them, after a successful `rule all`; a run
    of another target prints no table."""
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    result = run_snakemake(workdir, "--cores", "1", *TINY, "--forcerun", "summarize_results")
    printed = result.stdout.split("Results (results/summary.tsv; more in ")
    assert len(printed) == 2 and printed[1].startswith("results/summary.md):"), result.stdout[-3000:]
    lines = [line.split() for line in printed[1].splitlines()[1:] if line.strip()]
    assert lines[0] == ["Model", "Kind", "Recall@20", "MRR@20", "NDCG@20"]
    summary = pd.read_csv(workdir / "results" / "summary.tsv", sep="\t")
    models = summary[summary["kind"] != "published_rsc15"]
    expected = [
        [row.model, row.kind, f"{row['recall@20']:.4f}", f"{row['mrr@20']:.4f}", f"{row['ndcg@20']:.4f}"]
        for _, row in models.iterrows()
    ]
    assert lines[1 : 1 + len(expected)] == expected and {row[0] for row in expected} >= {*LOSSES, *BASELINES}

    other = run_snakemake(workdir, "results/summary.md", "--cores", "1", *TINY, "--forcerun", "summarize_results")
    assert "summarize_results" in other.stderr and "Results (" not in other.stdout + other.stderr


@pytest.mark.slow
def test_deleting_an_artifact_rebuilds_only_it_and_its_dependents(tiny_run: Path, tmp_path: Path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)

    (workdir / "results" / "recall_pop.txt").unlink()
    jobs = rules_of(planned_jobs(workdir))
    assert jobs["evaluate_baseline"] == 1
    assert set(jobs) <= {"evaluate_baseline", "all"} | REPORT_RULES, jobs

    # An intermediate file is rebuilt when asked for (Snakemake leaves it missing while everything
    # downstream is up to date); then what depends on it reruns too, and nothing upstream.
    workdir = tmp_path / "second-copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    (workdir / "results" / "models" / "final" / "bpr" / "model.pt").unlink()
    jobs = rules_of(planned_jobs(workdir, "results/models/final/bpr/model.pt", "all"))
    assert jobs["train_model"] == 1 and jobs["evaluate_model"] == 1, jobs
    assert set(jobs) <= {"train_model", "evaluate_model", "all"} | REPORT_RULES, jobs


def test_local_archive_skips_generation(workflow_copy: Path, tmp_path: Path):
    archive = tmp_path / "yoochoose-data.7z"
    archive.write_bytes(b"7z")
    jobs = rules_of(planned_jobs(workflow_copy, "results/data/stats.json", config=("--config", f"archive={archive}")))
    assert "synthesize_archive" not in jobs and "download_archive" not in jobs, jobs
    assert jobs["extract_clicks"] == 1 and jobs["split_sessions"] == 1, jobs


def test_extracted_clicks_skip_download_and_extraction(workflow_copy: Path, tmp_path: Path):
    clicks = tmp_path / "yoochoose-clicks.dat"
    clicks.write_text("1,2014-04-07T10:51:09.277Z,214536502,0\n")
    jobs = rules_of(planned_jobs(workflow_copy, "results/data/stats.json", config=("--config", f"clicks={clicks}")))
    assert not {"synthesize_archive", "download_archive", "extract_clicks"} & set(jobs), jobs
    assert jobs["clicks_to_parquet"] == 1, jobs


def test_download_source_fetches_on_the_submitting_host(workflow_copy: Path):
    jobs = rules_of(planned_jobs(workflow_copy, "results/data/stats.json", config=("--config", "source=download")))
    assert jobs["download_archive"] == 1 and "synthesize_archive" not in jobs, jobs
    data_rules = (REPO / "workflow" / "rules" / "data.smk").read_text()
    assert re.search(r"^localrules:\n\s+download_archive,", data_rules, re.M), (
        "download must run on the submitting host"
    )


@pytest.mark.parametrize("device, units", [("cuda", 1), ("cpu", 0), ("auto", 0)])
def test_a_cuda_training_asks_for_a_gpu_and_one_share_of_it(workflow_copy: Path, device: str, units: int):
    """gpu: what a cluster job requests (sbatch --gpus); gpu_share: `--resources gpu_share=N` lets N trainings
    use one GPU side by side on one machine."""
    result = run_snakemake(
        workflow_copy, "results/models/final/bpr/model.pt", "--dry-run", "--cores", "2", "--config", f"device={device}"
    )
    resources = re.search(r"rule train_model:.*?resources: ([^\n]*)", result.stdout, re.S).group(1)
    assert f"gpu={units}" in resources and f"gpu_share={units}" in resources, resources


@pytest.mark.slow
def test_gru4rec_beats_popularity_on_the_tiny_preset(tiny_run: Path):
    def recall_at_20(name: str) -> float:
        text = (tiny_run / "results" / f"recall_{name}.txt").read_text()
        return float(re.search(r"^Recall@20: (\d\.\d+)$", text, re.M).group(1))

    for loss in ["ce_sampled", "bpr_max"]:
        assert recall_at_20(loss) > recall_at_20("pop"), loss
