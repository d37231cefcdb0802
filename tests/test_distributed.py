"""Data-parallel training through torch.distributed (gloo processes on 127.0.0.1): the weights of one process,
whatever the process count, launcher or node split; a killed process ends the training; a resume continues."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gru4rec_pipeline.errors import ConfigError, PipelineError
from gru4rec_pipeline.model.folder import load_model
from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.training import loop
from gru4rec_pipeline.training.iterator import SessionParallelIterator
from gru4rec_pipeline.training.job import ParallelOptions, RunOptions, TrainingJob
from gru4rec_pipeline.training.parallel import group as distributed
from gru4rec_pipeline.training.parallel import shared_memory as shared_exchange
from gru4rec_pipeline.training.parallel.group import free_port, lane_share
from gru4rec_pipeline.training.parallel.shared_memory import SharedMemoryExchange, process_share
from gru4rec_pipeline.training.run import load_inputs, run_training
from test_training import N_ITEMS, tiny_config, tiny_job, tiny_sessions

ROOT = Path(__file__).resolve().parents[1]
# 32 lanes, dropout on both sides, a sample store refilled every 10 steps.
SETTINGS = {
    "epochs": 2,
    "batch_size": 32,
    "layers": [12],
    "n_sample": 8,
    "sample_store_size": 80,
    "dropout_embed": 0.1,
    "dropout_hidden": 0.3,
}


def write_inputs(folder: Path) -> None:
    train, support = tiny_sessions(n_sessions=400)
    folder.mkdir(parents=True, exist_ok=True)
    train.save(folder / "train.npz")
    vocabulary = pd.DataFrame({"ItemId": np.arange(N_ITEMS) + 100, "ItemIdx": np.arange(N_ITEMS), "Support": support})
    vocabulary.to_parquet(folder / "vocab.parquet")


def train(folder: Path, name: str, loss: str, processes: int = 1, settings=None, exchange="auto", **run) -> dict:
    """``run_training`` of ``loss`` with ``SETTINGS`` (and ``settings``) on ``processes`` processes into ``name``;
    ``run``: its RunOptions (no checkpoints unless asked)."""
    if not (folder / "train.npz").exists():
        write_inputs(folder)
    hyperparameters = Hyperparameters.from_dict({**SETTINGS, **(settings or {}), "loss": loss})
    options = RunOptions(**{"device": "cpu", "progress": False, "checkpoints": False, **run})
    job = TrainingJob(
        folder / "train.npz",
        folder / "vocab.parquet",
        folder / name,
        hyperparameters,
        options,
        ParallelOptions(processes, 1, exchange),
    )
    return run_training(job)


def assert_same_weights(folder: Path, one: str, other: str, atol=1e-5, rtol=1e-5) -> None:
    x, y = load_model(folder / one / "model.pt").state_dict(), load_model(folder / other / "model.pt").state_dict()
    for name, value in x.items():
        torch.testing.assert_close(y[name], value, atol=atol, rtol=rtol, msg=name)


def test_lanes_are_shared_out_contiguously_in_rank_order():
    assert [lane_share(32, 2, rank) for rank in range(2)] == [slice(0, 16), slice(16, 32)]
    assert [lane_share(10, 4, rank) for rank in range(4)] == [slice(0, 3), slice(3, 6), slice(6, 8), slice(8, 10)]
    with pytest.raises(ConfigError, match="training.processes"):
        lane_share(4, 8, 0)


@pytest.mark.slow  # several training processes
@pytest.mark.parametrize("loss", ["ce_sampled", "bpr_max"])
def test_two_processes_train_the_weights_of_one(tmp_path, loss):
    one = train(tmp_path, "one", loss)
    two = train(tmp_path, "two", loss, processes=2)
    assert two["processes"] == 2 and "processes" not in one
    assert two["exchange"]["exchange"] == "shared_memory"  # auto, CPU processes on one node
    assert two["events"] == one["events"] and two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-5)
    assert_same_weights(tmp_path, "one", "two")
    # Rank 0 alone wrote the files; the run description is gone.
    written = sorted(path.name for path in (tmp_path / "two").iterdir() if path.name != ".training.lock")
    assert written == ["history.csv", "model.pt", "training.json", "training_state.pt", "vocab.parquet"]


@pytest.mark.slow  # several training processes
@pytest.mark.parametrize("loss", ["ce_sampled", "bpr_max"])
def test_four_processes_train_the_weights_of_one(tmp_path, loss):
    train(tmp_path, "one", loss, settings={"epochs": 1})
    train(tmp_path, "four", loss, processes=4, settings={"epochs": 1})
    assert_same_weights(tmp_path, "one", "four")


@pytest.mark.slow  # several training processes
def test_two_processes_exchanging_by_all_reduce_train_the_weights_of_one(tmp_path):
    """The replicated path (what nodes and GPUs use) on one node: every process updates a replica of its own."""
    train(tmp_path, "one", "ce_sampled", settings={"epochs": 1})
    two = train(tmp_path, "two", "ce_sampled", processes=2, settings={"epochs": 1}, exchange="all_reduce")
    assert two["exchange"]["exchange"] == "all_reduce"
    assert_same_weights(tmp_path, "one", "two")


def test_the_shared_memory_exchange_is_refused_where_it_cannot_run(monkeypatch):
    group = distributed.ProcessGroup(0, 2, 0, torch.device("cpu"))
    setting = tiny_config(n_sample=16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    exchange = lambda choice, compiled: process_share(group, ParallelOptions(2, 1, choice), compiled, setting).exchange  # noqa: E731
    assert isinstance(exchange("auto", True), SharedMemoryExchange)
    assert isinstance(exchange("auto", False), distributed.GradientExchange)
    with pytest.raises(ConfigError, match="training.exchange.*compiled CPU kernels"):
        exchange("shared_memory", False)  # the fixed-shape step (engine eager)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # one process a node: two nodes
    with pytest.raises(ConfigError, match="training.exchange.*not all on one node"):
        exchange("shared_memory", True)


def test_shared_memory_that_cannot_be_reserved_is_an_error_leaving_no_file(monkeypatch, tmp_path):
    def full(descriptor, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    monkeypatch.setattr(shared_exchange, "SHARED_MEMORY_FOLDER", tmp_path)
    exchange = SharedMemoryExchange(distributed.ProcessGroup(0, 2, 0, torch.device("cpu")), 16)
    with pytest.raises(PipelineError, match=r"cannot reserve 1\.0 MB of shared memory.*training.exchange: all_reduce"):
        exchange._create(1_000_000)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # several training processes
def test_two_processes_on_the_fixed_shape_path_train_the_weights_of_one(tmp_path):
    """The strategy a GPU runs (torch operations, fixed-size scatter merge), eagerly, on two gloo processes."""
    fixed = {"epochs": 1}
    one = train(tmp_path, "one", "bpr_max", settings=fixed, engine="eager")
    two = train(tmp_path, "two", "bpr_max", processes=2, settings=fixed, engine="eager")
    assert one["engine"] == two["engine"] == "eager"
    assert_same_weights(tmp_path, "one", "two")


def test_a_step_sums_across_processes_with_one_all_reduce(tmp_path, monkeypatch, one_thread):
    """In a process group of one (gloo, in this process): one all-reduce a step, and the weights of no group."""
    import torch.distributed as dist

    calls = []

    class CountingExchange(distributed.GradientExchange):
        def __init__(self, group):
            super().__init__(group)
            calls.append(self)

    monkeypatch.setattr(shared_exchange, "GradientExchange", CountingExchange)
    data, support = tiny_sessions()
    config = tiny_config("bpr_max", dropout_hidden=0.3, epochs=1)
    plain = tiny_job(tmp_path / "plain", data, support, config)
    plain = loop.train(plain, load_inputs(plain))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        group = distributed.ProcessGroup(0, 1, 0, torch.device("cpu"))
        job = tiny_job(tmp_path / "group", data, support, config)
        grouped = loop.train(job, load_inputs(job), group)
    finally:
        dist.destroy_process_group()
    steps = sum(block.n_steps for block in SessionParallelIterator(data.offsets, config.batch_size).blocks())
    assert len(calls) == 1 and calls[0].calls == steps and grouped["events"] == plain["events"]
    # One bucket: dense weights, candidate and input rows (shared embedding), candidate biases, the loss.
    model = load_model(tmp_path / "group" / "model.pt")
    dense = sum(p.numel() for name, p in model.state_dict().items() if name.startswith("gru_"))
    rows = config.batch_size + config.n_sample + config.batch_size
    assert calls[0].bytes_per_step == 4 * (dense + rows * 12 + (rows - config.batch_size) + 1)
    for name, value in load_model(tmp_path / "plain" / "model.pt").state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, atol=1e-6, rtol=1e-6, msg=name)


@pytest.mark.slow  # several training processes
def test_two_nodes_of_torchrun_launchers_train_the_weights_of_one(tmp_path):
    """Two launchers with --nnodes 2 and one c10d rendezvous on 127.0.0.1, as on two machines."""
    train(tmp_path, "one", "ce_sampled")
    out = tmp_path / "nodes"
    out.mkdir()
    hyperparameters = Hyperparameters.from_dict({**SETTINGS, "loss": "ce_sampled"})
    job = TrainingJob(
        tmp_path / "train.npz",
        tmp_path / "vocab.parquet",
        out,
        hyperparameters,
        RunOptions(device="cpu", progress=False, checkpoints=False),
        ParallelOptions(1, 2),
    )
    spec = tmp_path / "run.json"
    spec.write_text(json.dumps(job.to_dict()))
    endpoint = f"127.0.0.1:{free_port()}"
    launchers = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
             "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", "--rdzv-id=two-nodes",
             "-m", "gru4rec_pipeline.training.parallel.processes", str(spec)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]  # fmt: skip
    outputs = [launcher.communicate(timeout=300)[0] for launcher in launchers]
    assert [launcher.returncode for launcher in launchers] == [0, 0], outputs
    assert json.loads((out / "training.json").read_text())["processes"] == 2
    assert_same_weights(tmp_path, "one", "nodes")


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            direct = [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in direct:
            found += [child, *children(child)]
    return found


def worker_ranks(pid: int) -> dict[int, int]:
    """rank -> process id of the training workers under ``pid``."""
    ranks = {}
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            environment = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gru4rec_pipeline.training.parallel.processes" in command:
            for entry in environment:
                if entry.startswith(b"RANK="):
                    ranks[int(entry[5:])] = child
    return ranks


LONG = {"epochs": 40}
LAUNCH = """
import sys
sys.path.insert(0, "tests")
from pathlib import Path
from test_distributed import LONG, train
train(Path(sys.argv[1]), "killed", "bpr_max", processes=2, settings=LONG, checkpoints=True)
"""


@pytest.mark.slow  # several training processes
def test_a_killed_process_stops_the_others_and_a_rerun_resumes(tmp_path):
    write_inputs(tmp_path)
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 240
        while not list((tmp_path / "killed" / "checkpoints").glob("*/checkpoint.pt")):  # the training is under way
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.stdout.read().decode()[-3000:]
            time.sleep(0.2)
        ranks = worker_ranks(launcher.pid)
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGKILL)
        killed = time.monotonic()
        output = launcher.communicate(timeout=60)[0].decode()
        assert time.monotonic() - killed < 60
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert "data-parallel training failed" in output, output[-3000:]
    assert re.search(r"rank\s*:\s*1 \(local_rank", output), output[-3000:]  # torchrun names the dead rank
    assert not (tmp_path / "killed" / "model.pt").exists()
    # The rerun resumes from the last checkpoint and ends with the weights of an uninterrupted run.
    summary = train(tmp_path, "killed", "bpr_max", processes=2, settings=LONG, checkpoints=True)
    assert summary["epochs"] == LONG["epochs"]
    history = pd.read_csv(tmp_path / "killed" / "history.csv")
    assert history["epoch"].tolist() == list(range(1, LONG["epochs"] + 1))
    train(tmp_path, "whole", "bpr_max", processes=2, settings=LONG)
    assert_same_weights(tmp_path, "whole", "killed", atol=0, rtol=0)


def test_the_training_rule_asks_for_every_process(workflow_copy: Path):
    """Two processes per node on two nodes: the job's threads on a node, SLURM tasks and nodes, a GPU each (planned
    for the SLURM executor: several nodes are refused outside SLURM)."""
    from conftest import run_snakemake

    (workflow_copy / "two.yaml").write_text("device: cuda\ntraining: {threads: 1, processes: 2, nodes: 2}\n")
    result = run_snakemake(
        workflow_copy,
        "results/models/final/bpr/model.pt",
        "--dry-run",
        "--executor",
        "slurm",
        "--jobs",
        "4",
        "--configfile",
        "config/config.yaml",
        "two.yaml",
    )
    block = result.stdout.split("rule train_model:", 1)[1]
    resources = re.search(r"^\s+resources: (.*)$", block, re.M).group(1)
    threads = re.search(r"^\s+threads: (\d+)$", block, re.M).group(1)
    assert threads == "2", block[:2000]
    for expected in ("tasks=4", "nodes=2", "gpu=2", "cpus_per_task=1", "tasks_per_gpu=1"):
        assert re.search(rf"\b{expected}\b", resources), resources


def replica_check(rank: int, port: int, folder: str) -> None:
    """One of two processes holding different weights (rank 1 moved one value): the check must refuse."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    weights = torch.zeros(5)
    weights[3] = 1e-7 * rank
    group = distributed.ProcessGroup(rank, 2, rank, torch.device("cpu"))
    try:
        distributed.check_replicas(group, {"weights": weights}, epoch=4)
    except distributed.PipelineError as exc:
        Path(folder, f"rank{rank}.txt").write_text(str(exc))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # several training processes
def test_replicas_that_differ_are_an_error_on_every_process(tmp_path):
    torch.multiprocessing.spawn(replica_check, args=(free_port(), str(tmp_path)), nprocs=2)
    for rank in range(2):
        message = (tmp_path / f"rank{rank}.txt").read_text()
        assert "after epoch 4 the weights of rank(s) [1] differ from rank 0's" in message


def processes_naming(text: str) -> list[int]:
    """Process ids whose command line names ``text`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow  # several training processes
@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL])
def test_the_workers_die_with_a_killed_launcher_and_leave_no_model(tmp_path, kill):
    """The launcher (``gru4rec-pipeline train --processes 2``) killed as docs/cluster.md's recovery step says, by the
    process id in the lock: its workers (children of torchrun, not of the launcher) end with it, write no model,
    and the folder is free for the next training."""
    write_inputs(tmp_path)
    out = tmp_path / "killed"
    settings = [f"--set={key}={json.dumps(value)}" for key, value in {**SETTINGS, "epochs": 100_000}.items()]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "gru4rec_pipeline", "train", "--train", str(tmp_path / "train.npz"),
         "--vocab", str(tmp_path / "vocab.parquet"), "--loss", "bpr_max", *settings, "--out", str(out),
         "--device", "cpu", "--threads", "1", "--quiet", "--processes", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = []
    try:
        for line in launcher.stdout:  # rank 0's first epoch: the workers are training
            lines.append(line)
            if line.startswith("rank 0: epoch 1:"):
                break
        ranks = worker_ranks(launcher.pid)
        assert sorted(ranks) == [0, 1], "".join(lines[-30:])
        # The lock names its holders: the launcher and rank 0, which would keep the folder locked on its own.
        holders = [int(pid) for pid in (out / ".training.lock").read_text().split()]
        assert holders == [launcher.pid, ranks[0]]
        os.kill(holders[0], kill)
        launcher.wait(timeout=30)
        deadline = time.monotonic() + 10
        while processes_naming(str(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_naming(str(tmp_path)) == []
    finally:
        for pid in processes_naming(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)
    assert not (out / "model.pt").exists() and not (out / "training.json").exists()
    # The next training of the folder starts (here: one epoch on one process) instead of meeting a lock.
    train(tmp_path, "killed", "bpr_max", settings={"epochs": 1})
    assert (out / "model.pt").exists()
