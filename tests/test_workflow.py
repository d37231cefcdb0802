"""The workflow end to end on the tiny preset: lint, formatting, outputs, no-op reruns, targeted rebuilds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import LOSSES, REPO, REPORT_RULES, planned_jobs, rules_of

BASELINES = ["pop", "spop", "itemknn", "oracle"]


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
def test_second_run_does_nothing(tiny_run: Path):
    assert planned_jobs(tiny_run) == Counter()


@pytest.mark.slow
def test_deleting_an_artifact_rebuilds_only_it_and_its_dependents(tiny_run: Path, tmp_path: Path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)

    (workdir / "results" / "recall_pop.txt").unlink()
    jobs = rules_of(planned_jobs(workdir))
    assert jobs["evaluate_baseline"] == 1
    assert set(jobs) <= {"evaluate_baseline", "all"} | REPORT_RULES, jobs

    (workdir / "results" / "models" / "bpr" / "model.pt").unlink()
    jobs = rules_of(planned_jobs(workdir))
    assert jobs["train_model"] == 1 and jobs["evaluate_model"] == 1, jobs
    assert set(jobs) <= {"train_model", "evaluate_model", "all"} | REPORT_RULES, jobs
