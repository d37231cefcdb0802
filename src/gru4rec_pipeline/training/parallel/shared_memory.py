"""The processes of one node train on one copy of the weights in shared memory (``training.exchange:
shared_memory``), each updating the part it owns: a ZeRO-style sharded update without a network in between.

Why: on a CPU node the gloo all-reduce of a step's gradients (about 1.1 MB at 64 lanes) goes through the
loopback's sockets and costs as much as the step's arithmetic, and then every process repeats the whole update.
Here every process writes its gradients into its own slot of a shared-memory file, and after a barrier each
process sums the slots for what it owns and updates it in place:
- the item rows (item matrix and biases, a separate input embedding, a one-hot first layer): process r owns the
  rows with ``row % world == r``, with their Adagrad-momentum state (``shared_kernels.adagrad_momentum_owned_rows``);
- the dense weights (GRU, and the item matrix of ce_full), one flat buffer: process r owns a contiguous slice.
A second barrier ends the step, so that no process reads a row before its owner has written it. The weights and
the optimizer state exist once on the node, so the replicas cannot diverge; the losses are summed from the slots
in rank order. The arithmetic is the one process's: the same sums, in another order (float rounding only).

The barrier is a counter per process on a cache line of its own, written by that process only and read by the
others; an x86-64 CPU keeps a process's stores in order, which the barrier relies on (elsewhere ``auto`` takes
the all-reduce). A process that does not arrive within ``COLLECTIVE_TIMEOUT_S`` is an error naming its rank.
The file lives in /dev/shm (else the temporary folder), is preallocated (a full tmpfs is an error at once, not a
crash later) and is unlinked as soon as every process has mapped it: nothing is left behind.

:func:`process_share` gives each process its lanes and the exchange ``training.exchange`` asks for (auto: this one
where it can run, else the all-reduce of ``group``).
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gru4rec_pipeline.errors import ConfigError, PipelineError
from gru4rec_pipeline.model import kernels
from gru4rec_pipeline.training.parallel import shared_kernels
from gru4rec_pipeline.training.parallel.group import (
    COLLECTIVE_TIMEOUT_S,
    GradientExchange,
    ProcessGroup,
    ProcessShare,
    lane_share,
)

log = logging.getLogger("gru4rec_pipeline")

ALIGN = 64  # bytes: every array of the file starts on a cache line of its own
SHARED_MEMORY_FOLDER = Path("/dev/shm")  # a RAM file system on Linux; elsewhere the temporary folder
SPINS_BEFORE_YIELD = 200  # barrier checks (about 1 us each) before the waiting process yields its core


def shared_memory_supported(group: ProcessGroup, use_kernels: bool) -> str | None:
    """None where the shared-memory exchange can run for ``group``, else why not."""
    if group.device.type != "cpu":
        return f"the processes train on {group.device.type}"
    if not use_kernels or not kernels.AVAILABLE:
        return "it needs the compiled CPU kernels (numba, and the engine loop)"
    if int(os.environ.get("LOCAL_WORLD_SIZE", "0")) != group.world_size:
        return "the processes are not all on one node"
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"its barrier relies on x86-64's store order, this is {platform.machine()}"
    return None


class SharedLayout:
    """Offsets of named float32 and int64 arrays in one file, each aligned to a cache line."""

    def __init__(self):
        self.arrays: dict[str, tuple[int, tuple[int, ...], np.dtype]] = {}
        self.size = 0

    def add(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> None:
        dtype = np.dtype(dtype)
        self.arrays[name] = (self.size, tuple(int(n) for n in shape), dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self.size += -(-max(nbytes, 1) // ALIGN) * ALIGN

    def views(self, buffer: np.memmap) -> dict[str, np.ndarray]:
        return {
            name: np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset)
            for name, (offset, shape, dtype) in self.arrays.items()
        }


class SharedMemoryExchange:
    """Sums a step's gradients across the processes of one node and updates the weights, sharded (module doc).

    ``attach(step)`` (every process, once, right after the step is built) moves the step's weights and optimizer
    state into the shared file; ``update`` replaces the step's own update."""

    name = "shared_memory"
    owns_update = True

    def __init__(self, group: ProcessGroup, n_sample: int, choice: str = "auto"):
        self.group, self.choice = group, choice
        self.rank, self.world = group.rank, group.world_size
        self.n_sample = int(n_sample)
        self.generation = 0  # barriers passed
        self.steps = 0
        self.wait_seconds = 0.0  # in the barriers (waiting for the slowest process)
        self.update_seconds = 0.0  # in this process's share of the update
        self.slot_bytes = 0  # what one process writes into its slot a step

    # -- set-up -------------------------------------------------------------------------------
    def attach(self, step, sampler=None):
        """Move ``step``'s dense buffer, item rows and optimizer state into shared memory, and ``sampler``'s store
        (its refills shared out too: each process searches a share of the rows). Collective. Returns this exchange,
        or None where (``auto``) no shared memory is to be had, with a warning: the all-reduce then takes over."""
        import torch.distributed as dist

        world, batch = self.world, step.batch_size
        layout = SharedLayout()
        layout.add("flags", (world, ALIGN // 8), np.int64)
        dense_size = step.dense_flat.numel()
        layout.add("dense", (dense_size,))
        layout.add("dense_state", (2, dense_size))
        layout.add("dense_grad", (world, dense_size))
        self.row_names = list(step.row_params)
        for name in self.row_names:
            param = step.row_params[name]
            layout.add(name, (param.shape[0], param[0].numel() if param.dim() > 1 else 1))
            layout.add(f"{name}/state", tuple(step.optimizer.state[name].shape))
        self.entries = batch + self.n_sample + (batch if step.mode == "shared" else 0)
        self.candidates = batch + self.n_sample
        if "item_weight" in step.row_params:
            width = step.row_params["item_weight"].shape[1]
            layout.add("item_weight/grad", (world, self.entries, width))
            layout.add("item_bias/grad", (world, self.candidates))
        input_name = next(
            (name for name in ("input_embedding", "gru_input_weights.0") if name in step.row_params), None
        )
        self.input_name = input_name
        if input_name is not None:
            layout.add(f"{input_name}/grad", (world, batch, step.row_params[input_name].shape[1]))
        layout.add("loss", (world, ALIGN // 4))
        shares_samples = sampler is not None and sampler.search is not None and sampler.rows > 0
        if shares_samples:
            layout.add("samples", (sampler.rows, sampler.n_sample), np.int64)

        shared = [None, None]  # the file's path, or why there is none
        if self.rank == 0:
            try:
                shared[0] = str(self._create(layout.size))
            except PipelineError as exc:
                shared[1] = str(exc)
        dist.broadcast_object_list(shared, src=0)
        if shared[0] is None:
            if self.choice == "shared_memory":
                raise PipelineError(shared[1])
            log.warning("%s; exchanging gradients by all-reduce instead", shared[1])
            return None
        buffer = np.memmap(shared[0], dtype=np.uint8, mode="r+", shape=(layout.size,))
        views = layout.views(buffer)
        dist.barrier()  # every process has mapped the file: its name can go
        if self.rank == 0:
            Path(shared[0]).unlink(missing_ok=True)
        self.buffer, self.views = buffer, views
        self.flags = views["flags"][:, 0]

        # Every process holds the same freshly built weights: rank 0's go into the file, all bind to it.
        tensors = {name: torch.from_numpy(view) for name, view in views.items() if name != "flags"}
        if self.rank == 0:
            tensors["dense"].copy_(step.dense_flat)
            tensors["dense_state"].copy_(step.optimizer.state["dense"].view(2, -1))
            for name in self.row_names:
                tensors[name].copy_(step.row_params[name].detach().reshape(tensors[name].shape))
                tensors[f"{name}/state"].copy_(step.optimizer.state[name])
        dist.barrier()
        step.bind_dense(tensors["dense"], tensors["dense_grad"][self.rank])
        step.optimizer.state["dense"] = tensors["dense_state"].view(step.optimizer.state["dense"].shape)
        for name in self.row_names:
            step.row_params[name].data = tensors[name].view(step.row_params[name].shape)
            step.optimizer.state[name] = tensors[f"{name}/state"]
        self.tensors = tensors
        # Scratch of the update kernel per row parameter: each entry's next entry of the same row.
        self.next_entry = {
            name: np.empty(self.entries if name == "item_weight" else batch, np.int64) for name in self.row_names
        }
        self.first_entry = {
            name: np.full(step.row_params[name].shape[0], -1, dtype=np.int64) for name in self.row_names
        }
        share = -(-dense_size // world)
        self.dense_slice = (min(self.rank * share, dense_size), min((self.rank + 1) * share, dense_size))
        self.slot_bytes = sum(
            tensors[name][self.rank].numel() * 4 for name in tensors if name.endswith("grad") or name == "loss"
        )
        shared_kernels.warm_up()
        # What each step's update passes to the kernels, bound once.
        scalars = step.optimizer._scalars(step.dense_flat)
        self.dense_arguments = (views["dense"], views["dense_state"], views["dense_grad"], *self.dense_slice, *scalars)
        self.owner_arguments = (self.rank, world, *scalars)
        self.item_arguments = self.input_arguments = None
        if "item_weight" in self.row_names:
            self.item_arguments = (
                views["item_weight"], views["item_weight/state"], views["item_weight/grad"], views["item_bias"],
                views["item_bias/state"], views["item_bias/grad"], self.first_entry["item_weight"],
                self.next_entry["item_weight"],
            )  # fmt: skip
            self.bias_slot = tensors["item_bias/grad"][self.rank]
        if input_name is not None:
            self.input_arguments = (
                views[input_name], views[f"{input_name}/state"], views[f"{input_name}/grad"],
                np.empty((0, 1), np.float32), np.empty((0, 2), np.float32), np.empty((world, 0), np.float32),
                self.first_entry[input_name], self.next_entry[input_name],
            )  # fmt: skip
            self.input_slot = tensors[f"{input_name}/grad"][self.rank]
        self.losses = views["loss"][:, 0]
        if shares_samples:
            self.samples = views["samples"]
            sampler.fill_through(self._fill_samples)
            # Map every page of the store now (this process's share written, the rest read), not at the first
            # refill: page faults on a fresh 80 MB mapping cost each process about 0.1 s there (measured).
            start, stop = self._sample_share()
            self.samples[start:stop] = 0
            self.samples.max()
        log.info(
            "shared-memory exchange: %.1f MB on the node, %.2f MB a process a step at most",
            layout.size / 1e6,
            self.slot_bytes / 1e6,
        )
        return self

    def _create(self, size: int) -> Path:
        folder = SHARED_MEMORY_FOLDER if SHARED_MEMORY_FOLDER.is_dir() else Path(tempfile.gettempdir())
        path = folder / f"gru4rec-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(descriptor, 0, size)
        except OSError as exc:
            os.close(descriptor)
            path.unlink(missing_ok=True)
            raise PipelineError(
                f"{path}: cannot reserve {size / 1e6:.1f} MB of shared memory for the training's processes ({exc}); "
                "free space there, or set training.exchange: all_reduce"
            ) from None
        os.close(descriptor)
        return path

    # -- the step -----------------------------------------------------------------------------
    def row_grads_like(self, touched_rows: Tensor) -> Tensor:
        """Where this process's item-row gradients of a step go: its slot (the entries of other processes'
        lanes stay zero: nothing writes them)."""
        return self.tensors["item_weight/grad"][self.rank, : touched_rows.shape[0]]

    def update(self, step, rows, inputs: Tensor, grads: tuple, loss: Tensor) -> Tensor:
        """This process's gradients (``grads``: of the item rows, the candidate biases, the input rows) are in its
        slot (the dense and item-row ones already): publish the rest, wait for every process, update what this
        process owns, wait again. Returns the minibatch's loss."""
        _, bias_grads, input_grads = grads
        if bias_grads is not None:
            self.bias_slot[: bias_grads.shape[0]].copy_(bias_grads)
        if input_grads is not None:
            self.input_slot.copy_(input_grads)
        self.losses[self.rank] = loss.item()
        self._barrier()
        started = time.perf_counter()
        shared_kernels.adagrad_momentum_dense_slice(*self.dense_arguments)
        if rows.touched is not None:
            table, state, grads, bias, bias_state, bias_grads_slots, first_entry, next_entry = self.item_arguments
            shared_kernels.adagrad_momentum_owned_rows(
                table, state, rows.touched.numpy(), grads, bias, bias_state, bias_grads_slots, bias_grads.shape[0],
                first_entry, next_entry, *self.owner_arguments,
            )  # fmt: skip
        if self.input_arguments is not None:
            table, state, grads, bias, bias_state, bias_grads_slots, first_entry, next_entry = self.input_arguments
            shared_kernels.adagrad_momentum_owned_rows(
                table, state, inputs.numpy(), grads, bias, bias_state, bias_grads_slots, 0, first_entry, next_entry,
                *self.owner_arguments,
            )  # fmt: skip
        total = sum(self.losses.tolist())  # in rank order: the same sum on every process
        self.update_seconds += time.perf_counter() - started
        self._barrier()
        self.steps += 1
        return loss.fill_(total)

    def _fill_samples(self, sampler, uniform: Tensor) -> Tensor:
        """A refill of ``sampler``'s store (every process drew the same ``uniform``): this process searches its
        share of the rows into the shared store; after a barrier the whole store is there for everyone. No
        process reads the store then: a refill happens between steps, after the step's last barrier."""
        width = self.samples.shape[1]
        start, stop = self._sample_share()
        mine = self.samples[start:stop].reshape(-1)
        kernels.guided_search(
            sampler.search.cdf.numpy(), sampler.search.guide.numpy(), uniform[start * width : stop * width].numpy(),
            mine,
        )  # fmt: skip
        np.minimum(mine, sampler.n_items - 1, out=mine)
        self._barrier()
        return torch.from_numpy(self.samples)

    def _sample_share(self) -> tuple[int, int]:
        """The rows of the shared store this process searches at a refill."""
        rows = self.samples.shape[0]
        share = -(-rows // self.world)
        return min(self.rank * share, rows), min((self.rank + 1) * share, rows)

    def _barrier(self) -> None:
        """Wait until every process has arrived here as often as this one (see the module's doc)."""
        self.generation += 1
        generation, flags = self.generation, self.flags
        flags[self.rank] = generation
        if flags.min() >= generation:
            return
        started = time.perf_counter()
        spins = 0
        while flags.min() < generation:
            spins += 1
            if spins > SPINS_BEFORE_YIELD:
                os.sched_yield()
                if spins % 1024 == 0 and time.perf_counter() - started > COLLECTIVE_TIMEOUT_S:
                    late = [int(r) for r in np.flatnonzero(flags < generation)]
                    raise PipelineError(
                        f"rank {self.rank}: rank(s) {late} did not reach step {self.steps + 1}'s exchange within "
                        f"{COLLECTIVE_TIMEOUT_S} s: a process of the training died or hangs"
                    )
        self.wait_seconds += time.perf_counter() - started

    def figures(self) -> dict:
        """For the training's summary: the bytes a process writes a step and the seconds of the exchange."""
        steps = max(self.steps, 1)
        return {
            "exchange": self.name,
            "bytes_per_step": self.slot_bytes,
            "seconds_per_step": (self.wait_seconds + self.update_seconds) / steps,
            "wait_seconds_per_step": self.wait_seconds / steps,
            "update_seconds_per_step": self.update_seconds / steps,
        }


def process_share(group: ProcessGroup, parallel, compiled: bool, hyperparameters) -> ProcessShare:
    """This process's lanes and exchange: the one of ``parallel.exchange`` (``training.exchange``; auto: shared
    memory where it can run, else the all-reduce). ``compiled``: the step runs the CPU's compiled kernels (engine
    ``loop``), which the shared-memory update needs."""
    lanes = lane_share(hyperparameters.batch_size, group.world_size, group.rank)
    reason = shared_memory_supported(group, compiled)
    if parallel.exchange == "shared_memory" and reason is not None:
        raise ConfigError("training.exchange", f"shared_memory cannot run here: {reason}")
    if parallel.exchange == "all_reduce" or reason is not None:
        return ProcessShare(group, lanes, GradientExchange(group))
    return ProcessShare(group, lanes, SharedMemoryExchange(group, hyperparameters.n_sample, parallel.exchange))
