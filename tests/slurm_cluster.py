"""A throwaway single-node SLURM cluster for the workflow tests.

`SlurmCluster` writes a slurm.conf for this host into a private folder, starts its own
munged, slurmctld and slurmd on free ports, waits until `sinfo` shows the node idle, and
stops all three (and cancels leftover jobs) on exit. Nothing outside that folder is
touched: client commands (sbatch, squeue, scontrol) find the cluster through the
`SLURM_CONF` variable in `cluster.env`, which callers pass to the processes they start.
The Snakemake jobstep executor strips every `SLURM_*` variable, `SLURM_CONF` included,
before it calls `srun` inside a job, so `cluster.env` also puts a small `srun` wrapper
that restores it first on `PATH` (a real cluster has its config at the default path).

Cgroup-free settings (proctrack/linuxproc, task/none) keep it working in containers and
VMs without a cgroup hierarchy; no slurmdbd, so job completions are recorded by
jobcomp/filetxt in `cluster.completed_jobs_file` and MinJobAge keeps finished jobs
visible to `squeue` long enough for the Snakemake SLURM executor to see them end.

`slurm_cluster_fixture` wraps it for pytest and skips, with the reason, where the SLURM
or munge programs are missing or the daemons do not come up. Install them with
`.ci/install-slurm.sh`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REQUIRED_PROGRAMS = ("munged", "munge", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scontrol", "scancel")
PARTITION = "debug"
# Finished jobs stay in slurmctld (and so in squeue) this long; the Snakemake executor
# needs them there to read their final state when there is no accounting database.
MIN_JOB_AGE_SECONDS = 600
STARTUP_TIMEOUT_SECONDS = 60


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be started on this machine; the message says why."""


def missing_programs() -> list[str]:
    return [name for name in REQUIRED_PROGRAMS if shutil.which(name) is None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def detected_node_line() -> str:
    """This host's NodeName line as slurmd itself reports it (CPUs, sockets, memory)."""
    result = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30)
    for line in result.stdout.splitlines():
        if line.startswith("NodeName="):
            return line.strip()
    raise SlurmUnavailable(f"`slurmd -C` printed no NodeName line: {result.stdout!r} {result.stderr!r}")


class SlurmCluster:
    """Context manager: a running one-node SLURM cluster with its own config, state and logs."""

    def __init__(self) -> None:
        # munged refuses sockets in folders that are not searchable by everyone, so the
        # folder is made 0755 and lives directly under the system temp folder.
        self.root = Path(tempfile.mkdtemp(prefix="slurm-cluster-"))
        self.root.chmod(0o755)
        self.conf_file = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge.socket"
        self.controller_log = self.root / "slurmctld.log"
        self.node_log = self.root / "slurmd.log"
        self.completed_jobs_file = self.root / "jobs_completed.txt"
        self.node_name = ""
        self.partition = PARTITION
        self.bin_dir = self.root / "bin"
        self.env = dict(
            os.environ,
            SLURM_CONF=str(self.conf_file),
            PATH=f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        self._processes: list[tuple[str, subprocess.Popen]] = []

    # --- configuration -------------------------------------------------------------
    def write_config(self) -> None:
        node_line = detected_node_line()
        fields = dict(part.split("=", 1) for part in node_line.split())
        self.node_name = fields["NodeName"]
        fields.pop("UpTime", None)
        # Leave headroom so a slightly different memory reading never drains the node.
        fields["RealMemory"] = str(int(int(fields.get("RealMemory", "2000")) * 0.9))
        node_spec = " ".join(f"{key}={value}" for key, value in fields.items())
        state = self.root / "state"
        spool = self.root / "spool"
        state.mkdir()
        spool.mkdir()
        self.conf_file.write_text(f"""# Written by tests/slurm_cluster.py for one test run.
ClusterName=pipelinetest
SlurmctldHost={self.node_name}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={state}
SlurmdSpoolDir={spool}
SlurmctldPidFile={self.root / "slurmctld.pid"}
SlurmdPidFile={self.root / "slurmd.pid"}
SlurmctldLogFile={self.controller_log}
SlurmdLogFile={self.node_log}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.completed_jobs_file}
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge={MIN_JOB_AGE_SECONDS}
ReturnToService=2
InactiveLimit=0
KillWait=5
DefMemPerCPU=1000
{node_spec} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName={self.partition} Nodes={self.node_name} Default=YES MaxTime=INFINITE State=UP
""")

    def write_srun_wrapper(self) -> None:
        srun = shutil.which("srun")
        if srun is None:
            raise SlurmUnavailable("program not found: srun (run .ci/install-slurm.sh)")
        self.bin_dir.mkdir()
        wrapper = self.bin_dir / "srun"
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf_file}" exec "{srun}" "$@"\n')
        wrapper.chmod(0o755)

    # --- daemons -------------------------------------------------------------------
    def _start(self, name: str, command: list[str]) -> None:
        log = open(self.root / f"{name}.stderr", "w")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        self._processes.append((name, process))

    def _check_alive(self) -> None:
        for name, process in self._processes:
            if process.poll() is not None:
                output = (self.root / f"{name}.stderr").read_text(errors="replace")[-2000:]
                raise SlurmUnavailable(f"{name} exited with status {process.returncode}: {output}")

    def _wait_until(self, what: str, condition) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self._check_alive()
            if condition():
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"timed out after {STARTUP_TIMEOUT_SECONDS} s waiting for {what}; logs in {self.root}")

    def run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Runs a SLURM client command against this cluster."""
        return subprocess.run(list(command), capture_output=True, text=True, env=self.env, timeout=timeout)

    def node_state(self) -> str:
        result = self.run("sinfo", "--noheader", "--nodes", self.node_name, "--format", "%T")
        return result.stdout.strip() if result.returncode == 0 else ""

    def start(self) -> None:
        if os.geteuid() != 0:
            raise SlurmUnavailable("slurmd must run as root to start jobs as their user; not root here")
        missing = missing_programs()
        if missing:
            raise SlurmUnavailable(f"programs not found: {', '.join(missing)} (run .ci/install-slurm.sh)")
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.write_config()
        self.write_srun_wrapper()
        self._start(
            "munged",
            [
                "munged", "--foreground", "--force",
                f"--key-file={key}", f"--socket={self.munge_socket}",
                f"--pid-file={self.root / 'munged.pid'}", f"--seed-file={self.root / 'munged.seed'}",
                f"--log-file={self.root / 'munged.log'}",
            ],
        )  # fmt: skip
        self._wait_until("munged's socket", self.munge_socket.exists)
        self._start("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf_file)])
        self._wait_until("slurmctld", lambda: self.run("scontrol", "ping").returncode == 0)
        self._start("slurmd", ["slurmd", "-D", "-f", str(self.conf_file), "-N", self.node_name])
        self._wait_until(f"node {self.node_name} to be idle", lambda: self.node_state() == "idle")

    def stop(self) -> None:
        """Cancels jobs, then stops slurmd, slurmctld and munged, in that order, by their own pids."""
        if any(name == "slurmctld" and process.poll() is None for name, process in self._processes):
            try:
                self.run("scancel", "--full", "--partition", self.partition, timeout=10)
                # slurmstepd outlives slurmd: let it finish killing the jobs before slurmd goes.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    active = self.run("squeue", "--noheader", "--states", "PENDING,RUNNING,COMPLETING", timeout=10)
                    if active.returncode != 0 or not active.stdout.strip():
                        break
                    time.sleep(0.5)
            except subprocess.TimeoutExpired:
                pass
        for _name, process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        self._processes.clear()

    def job_records(self) -> dict[str, dict[str, str]]:
        """Finished jobs as jobcomp/filetxt recorded them: JobId -> fields (JobState, Name, NodeList...)."""
        records: dict[str, dict[str, str]] = {}
        if not self.completed_jobs_file.exists():
            return records
        for line in self.completed_jobs_file.read_text().splitlines():
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            if "JobId" in fields:
                records[fields["JobId"]] = fields
        return records

    def __enter__(self) -> "SlurmCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def remove_files(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", name="slurm_cluster")
def slurm_cluster_fixture():
    """A running single-node cluster for the tests of one module; skips where SLURM cannot run."""
    cluster = SlurmCluster()
    try:
        cluster.__enter__()
    except SlurmUnavailable as reason:
        cluster.remove_files()
        pytest.skip(f"no local SLURM cluster: {reason}")
    try:
        yield cluster
    finally:
        cluster.__exit__(None, None, None)
        cluster.remove_files()
