"""Data-parallel training of one model on several processes (``training.processes`` per node, ``training.nodes``)
through torch.distributed: gloo on CPUs, NCCL on GPUs (one process per GPU).

Semantics, chosen so that the result does not depend on how many processes compute it:
- the global minibatch has ``batch_size`` session-parallel lanes in total, assigned exactly as one process
  would (every process runs the same iterator); process r computes the lanes ``lane_share(batch, world, r)``;
- its scores are against the global candidate set (every lane's target and the shared samples, which every
  process draws identically from the same seed); dropout masks are drawn for the whole minibatch and sliced;
- the gradients of the dense weights, of the fixed-size block of touched item rows (candidates and inputs)
  and the step's loss are summed across processes with one all-reduce per step (``GradientExchange``: one
  flat bucket, not one call per tensor); every process then applies the same update, so the replicas stay
  identical, which ``check_replicas`` verifies after every epoch (the weights' digest, compared exactly). The
  other exchange, for CPU processes of one node, is ``shared_memory``. A process's lanes and exchange are its
  :class:`ProcessShare`, which its training step reads.

Launching: :func:`launch` starts the processes, with torchrun (``python -m torch.distributed.run``) on this machine,
or with ``srun`` (one task per process) inside a SLURM allocation; each process runs ``processes`` on the same
training job, and joins the group here (:func:`join_process_group`), finding its rank and the rendezvous in the
environment torchrun or SLURM gives it. Rank 0 alone writes checkpoints, the history, the model and the summary,
and holds the output folder's lock beside the launching process. A process that dies ends the others: their next
all-reduce fails (the peer's sockets are closed) or torchrun/srun stops them, and the launcher reports the failure;
the model is written only after the last epoch, so none is left behind. A launching process that dies, even
killed outright, ends torchrun and the workers with it (``processes``: the parent-death signal).
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from gru4rec_pipeline.errors import ConfigError, PipelineError
from gru4rec_pipeline.model.network import weights_digest

log = logging.getLogger("gru4rec_pipeline")

# A collective that waits longer than this for a peer fails (a peer that died without closing its sockets).
COLLECTIVE_TIMEOUT_S = 45
SLURM_PORT_BASE = 29_500  # rendezvous port on SLURM: this plus the job id modulo 10,000
LAUNCHER_GRACE_S = 20  # how long an interrupted training waits for torchrun to stop its workers
# What the processes run: a worker on the job, and the guard that starts the launcher (``processes``).
PROCESSES = "gru4rec_pipeline.training.parallel.processes"


def lane_share(batch_size: int, world_size: int, rank: int) -> slice:
    """The lanes of process ``rank``: contiguous, in rank order, sizes differing by at most one."""
    if world_size > batch_size:
        raise ConfigError("training.processes", f"{world_size} processes for a minibatch of {batch_size} lanes")
    base, extra = divmod(batch_size, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in an initialised torch.distributed group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_writer(self) -> bool:
        """Rank 0 writes the files of the training."""
        return self.rank == 0


def _slurm_rendezvous() -> dict:
    """torch.distributed's environment from an ``srun`` task's: rank, size, and the first node as the host."""
    hosts = subprocess.run(
        ["scontrol", "show", "hostnames", os.environ["SLURM_STEP_NODELIST"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    # One node: every task is local (what torchrun calls LOCAL_WORLD_SIZE; the shared-memory exchange needs it).
    local = {"LOCAL_WORLD_SIZE": os.environ["SLURM_NTASKS"]} if len(hosts) == 1 else {}
    return {
        **local,
        "RANK": os.environ["SLURM_PROCID"],
        "WORLD_SIZE": os.environ["SLURM_NTASKS"],
        "LOCAL_RANK": os.environ.get("SLURM_LOCALID", "0"),
        "MASTER_ADDR": os.environ.get("MASTER_ADDR", hosts[0]),
        "MASTER_PORT": os.environ.get("MASTER_PORT", str(SLURM_PORT_BASE + int(os.environ["SLURM_JOB_ID"]) % 10_000)),
    }


def join_process_group(world_size: int, device_kind: str) -> ProcessGroup:
    """Initialise torch.distributed from torchrun's environment (or an ``srun`` task's): gloo on the CPU,
    NCCL on CUDA devices, one device per local rank. ``world_size``: what the configuration asks for."""
    import torch.distributed as dist

    if "RANK" not in os.environ and "SLURM_PROCID" in os.environ:
        os.environ.update(_slurm_rendezvous())
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise PipelineError(f"not started by torchrun or srun: {', '.join(missing)} not in the environment")
    if int(os.environ["WORLD_SIZE"]) != world_size:
        raise ConfigError(
            "training.processes",
            f"{world_size} processes in all (processes x nodes), but the launcher started {os.environ['WORLD_SIZE']}",
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_kind == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    group = ProcessGroup(dist.get_rank(), dist.get_world_size(), local_rank, device)
    log.info("process %d of %d (%s, %s)", group.rank, group.world_size, backend, device)
    return group


def leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class GradientExchange:
    """Sums tensors across the processes in place, with one all-reduce of one flat bucket per call."""

    name = "all_reduce"
    owns_update = False  # every process applies the whole (summed) update itself

    def __init__(self, group: ProcessGroup):
        self.group = group
        self.bucket: Tensor | None = None
        self.calls = 0  # all-reduces so far
        self.seconds = 0.0  # spent in them (waiting for the slowest process included)

    def attach(self, step, sampler=None) -> "GradientExchange":
        """Nothing to set up: every process keeps its own replica (and sampler)."""
        return self

    def row_grads_like(self, touched_rows: Tensor) -> Tensor:
        """Zeros: the input entries of other processes' lanes must add nothing to the sum."""
        return torch.zeros_like(touched_rows)

    def sum_(self, tensors: list[Tensor | None]) -> None:
        import torch.distributed as dist

        present = [tensor for tensor in tensors if tensor is not None]
        sizes = [tensor.numel() for tensor in present]
        total = sum(sizes)
        if self.bucket is None or self.bucket.numel() != total:
            self.bucket = torch.empty(total, dtype=present[0].dtype, device=present[0].device)
        offset = 0
        for tensor, size in zip(present, sizes):
            self.bucket[offset : offset + size].copy_(tensor.reshape(-1))
            offset += size
        started = time.perf_counter()
        dist.all_reduce(self.bucket)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        offset = 0
        for tensor, size in zip(present, sizes):
            tensor.copy_(self.bucket[offset : offset + size].view_as(tensor))
            offset += size

    @property
    def bytes_per_step(self) -> int:
        return 0 if self.bucket is None else self.bucket.numel() * self.bucket.element_size()

    def figures(self) -> dict:
        """For the training's summary: the bucket's bytes and the mean seconds of one all-reduce."""
        return {
            "exchange": self.name,
            "bytes_per_step": self.bytes_per_step,
            "seconds_per_step": self.seconds / max(self.calls, 1),
        }


def check_replicas(group: ProcessGroup, tensors: dict[str, Tensor], epoch: int) -> None:
    """Every process holds the same ``tensors`` (weights and optimizer state, by name) bit for bit, else an error
    naming the ranks."""
    import torch.distributed as dist

    # The SHA-256 of the tensors (``network.weights_digest``), its first 60 bits as a number every process gathers.
    mine = torch.tensor([int(weights_digest(tensors)[:15], 16)], dtype=torch.int64, device=group.device)
    everyone = [torch.zeros_like(mine) for _ in range(group.world_size)]
    dist.all_gather(everyone, mine)
    digests = [int(value) for value in everyone]
    differing = [rank for rank, value in enumerate(digests) if value != digests[0]]
    if differing:
        raise PipelineError(
            f"after epoch {epoch} the weights of rank(s) {differing} differ from rank 0's: the replicas diverged"
        )


class ProcessShare:
    """This process's share of a data-parallel training, which its training step reads: its ``lanes`` of the
    minibatch and the ``exchange`` that combines the processes' gradients (``GradientExchange`` or
    ``shared_memory.SharedMemoryExchange``; :func:`shared_memory.process_share` chooses)."""

    def __init__(self, group: ProcessGroup, lanes: slice, exchange):
        self.group, self.lanes, self.exchange = group, lanes, exchange

    def attach(self, step, sampler) -> None:
        """Set the exchange up for the freshly built ``step`` and ``sampler`` (every process, together); where it
        cannot run (no shared memory to be had), the all-reduce takes its place."""
        attached = self.exchange.attach(step, sampler)
        self.exchange = attached if attached is not None else GradientExchange(self.group)

    def check_replicas(self, step, epoch: int) -> None:
        """Every process's ``step`` (a ``TrainStep``) holds the same weights and optimizer state."""
        optimizer = {f"optimizer.{name}": value for name, value in step.optimizer.state.items()}
        check_replicas(self.group, {**step.model.state_dict(), **optimizer}, epoch)

    def summary(self) -> dict:
        """What the training's summary records: the processes, and the exchange's figures."""
        return {"processes": self.group.world_size, "exchange": self.exchange.figures()}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_command(processes: int, nodes: int, spec_path: str, threads: int = 1) -> list[str]:
    """The command that starts every process of a training described by ``spec_path``: ``srun`` inside a
    SLURM allocation (one task per process, ``threads`` CPUs each), else torchrun on this machine (one node
    only). ``--overlap``: the job's own step (Snakemake's, one task) keeps running beside the training's."""
    worker = [sys.executable, "-m", PROCESSES, str(spec_path)]
    if "SLURM_JOB_ID" in os.environ and shutil.which("srun"):
        tasks = processes * nodes
        return ["srun", f"--ntasks={tasks}", f"--nodes={nodes}", f"--ntasks-per-node={processes}",
                f"--cpus-per-task={threads}", "--overlap", "--kill-on-bad-exit=1", *worker]  # fmt: skip
    if nodes > 1:
        raise ConfigError(
            "training.nodes",
            f"{nodes} nodes need a SLURM allocation (srun) here, or one torchrun launcher per node started by hand",
        )
    return [
        sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}", "--nnodes=1",
        "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--monitor-interval=1",
        "-m", PROCESSES, str(spec_path),
    ]  # fmt: skip


def launch(processes: int, nodes: int, spec_path: str, threads: int = 1) -> None:
    """Run the processes of one training to their end; an error if any of them failed.

    The launcher (torchrun or srun) gets SIGTERM when this process ends, however it ends (the parent-death signal; the
    workers in turn end with the launcher), and is stopped here first when this process is interrupted (SIGTERM
    through ``clean_up_on_sigterm``, Ctrl-C, an error): no worker outlives the training that started it."""
    command = launch_command(processes, nodes, spec_path, threads)
    log.info("launching %d x %d training processes: %s", nodes, processes, " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    # The processes' output goes where this process logs (a rule's log file: sys.stderr is that file).
    try:
        sys.stderr.fileno()
        output = sys.stderr
    except (AttributeError, OSError, ValueError):
        output = None
    merged = subprocess.STDOUT if output is not None else None
    guarded = [sys.executable, "-m", PROCESSES, str(os.getpid()), *command]
    launcher = subprocess.Popen(guarded, stdin=subprocess.DEVNULL, stdout=output, stderr=merged)
    try:
        returncode = launcher.wait()
    finally:
        stop_launcher(launcher)
    if returncode != 0:
        raise PipelineError(
            f"data-parallel training failed (launcher exit status {returncode}); the failing rank is named "
            "above in the log"
        )


def stop_launcher(launcher: subprocess.Popen, grace_s: float = LAUNCHER_GRACE_S) -> None:
    """End a launcher that is still running: SIGTERM (torchrun then stops its workers and waits for them), and
    SIGKILL after ``grace_s`` seconds (the workers then end through their parent-death signal)."""
    if launcher.poll() is not None:
        return
    launcher.terminate()
    try:
        launcher.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.wait()
