"""Shared fixtures: the repository, copies of the workflow to run in, and one tiny end-to-end run."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gru4rec_pipeline import names

REPO = Path(__file__).resolve().parents[1]
# What a copy of the workflow needs to run on its own.
WORKFLOW_FILES = ["Snakefile", "workflow", "config", "profiles", "envs", "src"]
TINY = ("--configfile", "config/tiny.yaml")
LOSSES = list(names.LOSSES)
# Rules that summarise every result; they legitimately rerun whenever any result changes.
REPORT_RULES = set(re.findall(r"^rule (\w+):", (REPO / "workflow" / "rules" / "report.smk").read_text(), re.M))
JOB_HEADER = re.compile(r"^(?:local)?rule (\w+):$")


def snakemake_command(*args: str) -> list[str]:
    """Snakemake from the interpreter running the tests, so CI's virtual environment is used."""
    return [sys.executable, "-m", "snakemake", *args]


def copy_workflow(destination: Path) -> Path:
    """Copy the workflow (not its results) into ``destination`` and return it."""
    destination.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)
    return destination


def run_snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run Snakemake in ``workdir``; on failure show its output and the failed jobs' logs."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result = subprocess.run(
        snakemake_command(*args), cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        logs = (
            "\n".join(
                f"--- {path}\n{path.read_text(errors='replace')[-3000:]}"
                for path in sorted((workdir / "logs").rglob("*.log"))
            )
            if (workdir / "logs").exists()
            else ""
        )
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode})\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}\n{logs}"
        )
    return result


def planned_jobs(workdir: Path, *args: str, config: tuple[str, ...] = ()) -> Counter:
    """Jobs a dry run would execute, as (rule, wildcards) -> count; wildcards like 'loss=bpr' or ''.

    `config`: config options (default: the tiny preset)."""
    return dry_run_jobs(run_snakemake(workdir, "--dry-run", "--cores", "2", *args, *(config or TINY)))


def dry_run_jobs(result: subprocess.CompletedProcess) -> Counter:
    """The jobs of a dry run's output, as planned_jobs counts them."""
    jobs: Counter = Counter()
    current = None
    for line in (result.stdout + result.stderr).splitlines():
        header = JOB_HEADER.match(line.strip())
        if header:
            if current is not None:
                jobs[current] += 1
            current = (header.group(1), "")
        elif current is not None and line.strip().startswith("wildcards:"):
            current = (current[0], line.split(":", 1)[1].strip())
        elif current is not None and not line.startswith((" ", "\t")):
            jobs[current] += 1
            current = None
    if current is not None:
        jobs[current] += 1
    return jobs


def rules_of(jobs: Counter) -> Counter:
    counts: Counter = Counter()
    for (rule, _), count in jobs.items():
        counts[rule] += count
    return counts


# Fixtures that run the whole workflow once: a test that uses one, directly or through another fixture, runs the
# workflow end to end and is slow, marked so or not (make test-fast leaves it out).
WORKFLOW_RUNS = {"tiny_run", "tuned_run"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if WORKFLOW_RUNS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def one_thread():
    """Torch on one thread for tests of tiny tensors, where a second thread only adds synchronisation."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def workflow_copy(tmp_path: Path) -> Path:
    """A fresh copy of the workflow to run in."""
    return copy_workflow(tmp_path / "workflow-copy")


# The tiny preset's small study (config/tiny.yaml: 4 trials, 2 workers, trials as long as its bpr_max training, 2
# epochs) in a narrow space holding the configured setting (layers [100], batch 32).
TUNING_OVERLAY = "tuning: {spaces: {bpr_max: {layers: [32, 100], batch_size: [16, 32]}}}\n"


def with_overlays(workdir: Path, **overlays: str) -> tuple[str, ...]:
    """Config options for the tiny preset plus overlay files (name -> YAML text) written into config/."""
    paths = []
    for name, text in overlays.items():
        (workdir / "config" / f"{name}.yaml").write_text(text)
        paths.append(f"config/{name}.yaml")
    return (*TINY, *paths)


@pytest.fixture(scope="session")
def tuned_run(tmp_path_factory) -> Path:
    """The bpr_max study of TUNING_OVERLAY (its two workers side by side on two cores) and the tuned model
    retrained on train_full, run once; tests read or copy it (shutil.copytree) as they do tiny_run."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tuned-run"))
    config = with_overlays(workdir, tuning_test=TUNING_OVERLAY)
    side_by_side = ("--cores", "2", "--set-threads", "tune_worker=1")
    run_snakemake(workdir, "results/recall_bpr_max_tuned.txt", *side_by_side, *config)
    return workdir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole workflow (rule all) run once on the tiny preset; tests read or copy its results.

    Tests that change files must work in a copy (shutil.copytree) of this directory.
    """
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny-run"))
    run_snakemake(workdir, "--cores", "2", "--configfile", "config/tiny.yaml")
    return workdir


@contextlib.contextmanager
def crash_after_next_checkpoint(monkeypatch):
    """The training in the block writes its next checkpoint and then dies (KeyboardInterrupt, expected here), as a
    process killed right after an epoch would; afterwards checkpoints are written as usual again."""
    from gru4rec_pipeline.training.state import TrainingState

    real_save = TrainingState.save

    def save_then_crash(state, path):
        real_save(state, path)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(TrainingState, "save", save_then_crash)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.setattr(TrainingState, "save", real_save)
