"""The workflow on a real (single-node) SLURM cluster through profiles/slurm: one SLURM job per stage.

The cluster comes from tests/slurm_cluster.py (skipped, with the reason, where SLURM cannot run;
`.ci/install-slurm.sh` installs it). Which rule each job ran is read back from SLURM's own job
records (`scontrol show job`: the executor tags every job with a `rule_<name>` comment) and checked
against the SLURM job ids Snakemake reported when it submitted them.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage

from conftest import REPO, TUNING_OVERLAY, copy_workflow, snakemake_command, with_overlays
from slurm_cluster import SlurmCluster, slurm_cluster_fixture  # noqa: F401 (the `slurm_cluster` fixture)

TINY = ("--configfile", "config/tiny.yaml")
# Every stage behind results/recall_bpr.txt on the synthetic tiny preset; each must be its own SLURM job.
STAGES_FOR_BPR = [
    "synthesize_archive",
    "record_data_source",
    "extract_clicks",
    "clicks_to_parquet",
    "split_sessions",
    "build_sessions",
    "train_model",
    "evaluate_model",
]
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def write_test_profile(directory: Path, cluster: SlurmCluster) -> Path:
    """profiles/slurm with the site settings of the local test cluster and quicker status checks."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"]["slurm_partition"] = cluster.partition
    profile.update(
        {
            # No accounting database here: job states come from squeue (kept by MinJobAge).
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 4,
            "slurm-keep-successful-logs": True,
            "latency-wait": 5,
            "retries": 0,
        }
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def slurm_job_record(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """SLURM's record of one job (`scontrol show job -o`), as key -> value."""
    result = cluster.run("scontrol", "show", "job", "-o", job_id)
    assert result.returncode == 0, f"scontrol knows no job {job_id}: {result.stderr}"
    return dict(field.split("=", 1) for field in result.stdout.split() if "=" in field)


def rule_of(record: dict[str, str]) -> str:
    """The rule a job ran, from the comment the Snakemake executor gives it: rule_<name>[_wildcards_<...>]."""
    comment = record.get("Comment", "")
    assert comment.startswith("rule_"), f"job {record.get('JobId')} has no rule comment: {comment!r}"
    return comment.removeprefix("rule_").split("_wildcards_", 1)[0]


def cluster_logs(cluster: SlurmCluster) -> str:
    parts = []
    for path in [cluster.controller_log, cluster.node_log]:
        if path.exists():
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)


@pytest.mark.slurm
def test_tiny_pipeline_runs_each_stage_as_its_own_slurm_job(slurm_cluster: SlurmCluster, tmp_path: Path):
    workdir = copy_workflow(tmp_path / "workflow-copy")
    profile = write_test_profile(tmp_path / "profile", slurm_cluster)
    # One epoch is enough to see where training runs.
    (workdir / "config" / "one_epoch.yaml").write_text("training: {losses: {bpr: {epochs: 1}}}\n")

    result = subprocess.run(
        snakemake_command("results/recall_bpr.txt", *TINY, "config/one_epoch.yaml", "--workflow-profile", str(profile)),
        cwd=workdir,
        env=slurm_cluster.env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{output[-8000:]}\n{cluster_logs(slurm_cluster)}"
    assert (workdir / "results" / "recall_bpr.txt").exists()

    submitted = {slurm_id: Path(log) for _, slurm_id, log in SUBMITTED.findall(output)}
    records = {slurm_id: slurm_job_record(slurm_cluster, slurm_id) for slurm_id in submitted}
    rules = Counter(rule_of(record) for record in records.values())
    assert rules == Counter(STAGES_FOR_BPR), f"SLURM jobs per rule: {dict(rules)}"

    finished = slurm_cluster.job_records()
    for slurm_id, record in records.items():
        assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", record
        assert Path(record["WorkDir"]).resolve() == workdir.resolve(), record
        assert finished[slurm_id]["JobState"] == "COMPLETED", finished.get(slurm_id)
        # The job's own log shows Snakemake running exactly that rule inside the SLURM allocation.
        job_log = submitted[slurm_id].read_text(errors="replace")
        assert re.search(rf"^rule {rule_of(record)}:", job_log, re.M), job_log[-2000:]

    # Training ran with the threads the rule asked for, as SLURM CPUs of that job.
    training = next(record for record in records.values() if rule_of(record) == "train_model")
    assert training["CPUs/Task"] == str(
        yaml.safe_load((REPO / "config" / "config.yaml").read_text())["training"]["threads"]
    )


@pytest.mark.slurm
def test_a_data_parallel_training_runs_as_one_slurm_job_of_two_tasks(slurm_cluster: SlurmCluster, tmp_path: Path):
    """training.processes: 2 on one node: the job asks SLURM for two tasks of one CPU, and starts the two
    processes with srun; the rendezvous comes from SLURM's environment."""
    workdir = copy_workflow(tmp_path / "workflow-copy")
    profile = write_test_profile(tmp_path / "profile", slurm_cluster)
    overlay = "training: {threads: 1, processes: 2, losses: {bpr: {epochs: 1}}}\n"
    (workdir / "config" / "two_tasks.yaml").write_text(overlay)
    # The data stages run here first (each of them on SLURM is the test above): SLURM runs the training alone.
    sessions = "results/sessions/final/train.npz"
    local = subprocess.run(
        snakemake_command(sessions, "--cores", "1", *TINY, "config/two_tasks.yaml"),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert local.returncode == 0, (local.stdout + local.stderr)[-4000:]
    model = "results/models/final/bpr/model.pt"
    result = subprocess.run(
        snakemake_command(model, *TINY, "config/two_tasks.yaml", "--workflow-profile", str(profile)),
        cwd=workdir,
        env=slurm_cluster.env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{output[-8000:]}\n{cluster_logs(slurm_cluster)}"
    submitted = {slurm_id: Path(log) for _, slurm_id, log in SUBMITTED.findall(output)}
    records = {slurm_id: slurm_job_record(slurm_cluster, slurm_id) for slurm_id in submitted}
    (slurm_id,) = [slurm_id for slurm_id, record in records.items() if rule_of(record) == "train_model"]
    training = records[slurm_id]
    assert training["JobState"] == "COMPLETED" and training["NumTasks"] == "2", training
    assert training["CPUs/Task"] == "1", training
    job_log = submitted[slurm_id].read_text(errors="replace")
    training_log = (workdir / "logs" / "train_model" / "final" / "bpr.log").read_text(errors="replace")
    assert "launching 1 x 2 training processes: srun" in training_log, training_log[-3000:]
    assert "rank 1: epoch 1" in training_log and "process 1 of 2 (gloo" in training_log, training_log[-3000:]
    summary = (workdir / "results" / "models" / "final" / "bpr" / "training.json").read_text()
    assert '"processes": 2' in summary, (summary, job_log[-2000:])
    assert '"exchange": "shared_memory"' in summary, summary  # both tasks on the one node


@pytest.mark.slurm
def test_study_workers_run_as_slurm_jobs_side_by_side(slurm_cluster: SlurmCluster, tuned_run: Path, tmp_path: Path):
    """A new study (another sampler seed) in a copy of the finished tiny study: its data are there, so the two
    workers are the only jobs to submit; one CPU each, they fit the node together."""
    workdir = tmp_path / "copy"
    shutil.copytree(tuned_run, workdir, symlinks=True)
    profile = write_test_profile(tmp_path / "profile", slurm_cluster)
    config = with_overlays(workdir, tuning_test=TUNING_OVERLAY, new_study="tuning: {seed: 7}\n")
    before = set((workdir / "results" / "tuning" / "bpr_max").glob("*.journal"))

    command = ["results/tuning/bpr_max/best.yaml", *config, "--set-threads", "tune_worker=1"]
    result = subprocess.run(
        snakemake_command(*command, "--workflow-profile", str(profile)),
        cwd=workdir,
        env=slurm_cluster.env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{output[-8000:]}\n{cluster_logs(slurm_cluster)}"

    submitted = {slurm_id: Path(log) for _, slurm_id, log in SUBMITTED.findall(output)}
    records = {slurm_id: slurm_job_record(slurm_cluster, slurm_id) for slurm_id in submitted}
    assert Counter(rule_of(record) for record in records.values()) == Counter({"tune_worker": 2}), records
    assert sorted(record["Comment"].rsplit("_", 1)[1] for record in records.values()) == ["0", "1"]
    spans = []
    for slurm_id, record in records.items():
        assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", record
        assert record["CPUs/Task"] == "1", record
        job_log = submitted[slurm_id].read_text(errors="replace")
        assert re.search(r"^rule tune_worker:", job_log, re.M), job_log[-2000:]
        spans.append([dt.datetime.fromisoformat(record[key]) for key in ("StartTime", "EndTime")])
    (first, second) = spans
    assert first[0] < second[1] and second[0] < first[1], f"the workers' jobs did not overlap: {spans}"

    (journal,) = set((workdir / "results" / "tuning" / "bpr_max").glob("*.journal")) - before
    study = optuna.load_study(study_name=journal.stem, storage=JournalStorage(JournalFileBackend(str(journal))))
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))) == 4
    assert {trial.user_attrs["worker"] for trial in study.trials} == {0, 1}
    assert (workdir / "results" / "tuning" / "bpr_max" / "best.yaml").exists()


def test_training_asks_slurm_for_a_gpu_only_when_the_config_says_cuda(workflow_copy: Path):
    """The rule's `gpu` resource is what the SLURM executor turns into `sbatch --gpus=N`."""

    def training_resources(*config: str) -> str:
        result = subprocess.run(
            snakemake_command(
                "results/recall_bpr.txt",
                *TINY,
                *config,
                "--dry-run",
                "--forceall",
                "--workflow-profile",
                "none",
                "--cores",
                "2",
            ),
            cwd=workflow_copy,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        block = result.stdout.split("rule train_model:", 1)[1]
        return re.search(r"^\s+resources: (.*)$", block, re.M).group(1)

    assert re.search(r"\bgpu=1\b", training_resources("--config", "device=cuda"))
    assert not re.search(r"\bgpu=[1-9]", training_resources("--config", "device=cpu"))
