"""Negative samples drawn ahead of time into a store, as the official GRU4Rec does.

Items are drawn with probability proportional to ``support ** alpha`` (alpha 0: uniform,
alpha 1: popularity) by inverse-CDF search on uniform numbers. The store holds
``store_size // n_sample`` rows of ``n_sample`` items and lives on the training device;
each minibatch takes the next row (shared by the whole minibatch); when every row has been
used the store is refilled.

Drawing is the cost of a refill (10M draws): a plain binary search over ~37k items takes about a second on
one CPU core. On the CPU a guide table first maps each of ``2**k`` equal slices of [0, 1) to the items
whose cumulative probability can fall in it, and a compiled loop scans those few (``kernels``). Both give
exactly ``searchsorted(cdf, u, right=True)``, so the stream does not depend on the method.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import torch
from torch import Tensor

from gru4rec_pipeline.errors import PipelineError
from gru4rec_pipeline.model import kernels

log = logging.getLogger("gru4rec_pipeline")


def set_generator_state(generator: torch.Generator, state: Tensor, what: str = "random stream") -> bool:
    """Restore ``state`` into ``generator``; True if the stream continues exactly.

    A CPU and a CUDA generator have different algorithms and states, so a checkpoint written on one device
    type cannot continue its stream on the other: the generator is then seeded from the saved state, which
    keeps a resumed run repeatable (the same checkpoint always gives the same continuation).
    """
    if state.numel() == generator.get_state().numel():
        generator.set_state(state)
        return True
    digest = hashlib.blake2b(state.cpu().numpy().tobytes(), digest_size=8).digest()
    generator.manual_seed(int.from_bytes(digest, "little") >> 1)
    log.warning("%s: saved on another device type; continuing with a stream seeded from the saved state", what)
    return False


def sampling_cdf(item_support: np.ndarray, alpha: float) -> np.ndarray:
    """Cumulative distribution of ``support ** alpha`` over items (float64, last entry exactly 1)."""
    support = np.asarray(item_support, dtype=np.float64)
    weights = np.power(support, alpha) if alpha != 0 else np.ones_like(support)
    total = weights.sum()
    if not np.isfinite(total) or total <= 0:
        raise PipelineError("the vocabulary's item support gives no item a positive sampling weight")
    cdf = np.cumsum(weights) / total
    cdf[-1] = 1.0
    return cdf


class GuidedSearch:
    """``searchsorted(cdf, u, right=True)`` for many ``u`` in [0, 1), through a guide table (CPU).

    Slice ``k`` covers [k / K, (k + 1) / K) with K a power of two (so ``u * K`` and ``k / K`` are exact);
    ``guide[k]`` counts the cdf entries <= k / K. For u in slice k the answer lies between ``guide[k]``
    and ``guide[k + 1]``. Four slices per item measured fastest: finer tables miss the cache more often
    than coarser slices need extra comparisons.
    """

    def __init__(self, cdf: Tensor, slices_per_item: int = 4, max_slices: int = 1 << 24):
        self.cdf = cdf.contiguous()
        self.slices = min(max_slices, 1 << max(1, int(np.ceil(np.log2(slices_per_item * max(len(cdf), 1))))))
        edges = torch.arange(self.slices + 1, dtype=torch.float64, device=cdf.device) / self.slices
        self.guide = torch.searchsorted(self.cdf, edges, right=True)

    def __call__(self, uniform: Tensor, out: Tensor | None = None) -> Tensor:
        found = torch.empty(uniform.shape, dtype=torch.int64) if out is None else out
        kernels.guided_search(self.cdf.numpy(), self.guide.numpy(), uniform.contiguous().numpy(), found.numpy())
        return found


class NegativeSampler:
    """Store of pre-drawn negative samples, one row of ``n_sample`` items per minibatch."""

    def __init__(
        self,
        item_support: np.ndarray,
        n_sample: int,
        alpha: float,
        store_size: int = 10_000_000,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ):
        self.n_sample = int(n_sample)
        self.n_items = len(item_support)
        if self.n_sample > self.n_items:
            # More negatives than items only repeats items, at a cost that grows with n_sample (120x slower seen).
            log.warning(
                "n_sample %d is more than the %d items of the vocabulary: drawing %d negatives a minibatch instead",
                self.n_sample, self.n_items, self.n_items,
            )  # fmt: skip
            self.n_sample = self.n_items
        self.device = torch.device(device)
        self.rows = max(1, int(store_size) // self.n_sample) if self.n_sample > 0 else 0
        self.cdf = torch.as_tensor(sampling_cdf(item_support, alpha), device=self.device)
        self.search = GuidedSearch(self.cdf) if self.device.type == "cpu" and kernels.AVAILABLE else None
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.store: Tensor | None = None
        self.pointer = 0
        # The buffers of a refill, allocated (and, on the CPU, written: every page mapped) once here. A fresh
        # buffer per refill cost up to 0.2 s of page faults each time (10M draws, 80 MB, measured on the CPU).
        self.uniform = torch.zeros(self.rows * self.n_sample, dtype=torch.float64, device=self.device)
        self.found = torch.zeros(self.rows * self.n_sample, dtype=torch.int64) if self.search is not None else None
        self.fill_state: Tensor | None = None  # generator state just before the current store was drawn
        # (sampler, uniform) -> the store, for a data-parallel exchange whose processes share one (fill_through).
        self.shared_fill = None

    def _fill(self) -> None:
        self.fill_state = self.generator.get_state()
        uniform = self.uniform.uniform_(generator=self.generator)  # the stream of torch.rand(n, generator)
        if self.shared_fill is not None:
            self.store = self.shared_fill(self, uniform)
        else:
            if self.search is not None:
                samples = self.search(uniform, out=self.found)
            else:
                samples = torch.searchsorted(self.cdf, uniform, right=True)
            self.store = samples.clamp_(max=self.n_items - 1).view(self.rows, self.n_sample)
        self.pointer = 0

    def fill_through(self, shared_fill) -> None:
        """Let ``shared_fill(sampler, uniform) -> store`` make every later store (a data-parallel exchange whose
        processes share one store); this sampler's own search buffer is then not needed."""
        self.shared_fill, self.found = shared_fill, None

    def next(self) -> Tensor:
        """The next row of the store: int64 [n_sample] on the device."""
        if self.store is None or self.pointer >= self.rows:
            self._fill()
        row = self.store[self.pointer]
        self.pointer += 1
        return row

    def refill_if_used_up(self) -> bool:
        """Draw a new store when every row has been used, as ``next`` would before taking a row (callers
        that read the store themselves then ``skip`` the rows they read); True if it did."""
        if self.store is None or self.pointer >= self.rows:
            self._fill()
            return True
        return False

    @property
    def rows_left(self) -> int:
        """Rows of the current store not used yet."""
        return self.rows - self.pointer

    def skip(self, rows: int) -> None:
        """Count ``rows`` rows of the store as used (read by the caller from the store itself)."""
        self.pointer += rows

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "fill_state": self.fill_state,
            "pointer": self.pointer,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the exact stream: redraw the current store from its saved generator state."""
        if state["fill_state"] is None:
            set_generator_state(self.generator, state["generator"], "negative samples")
            self.store, self.fill_state, self.pointer = None, None, 0
            return
        exact = set_generator_state(self.generator, state["fill_state"], "negative samples")
        self._fill()
        self.pointer = int(state["pointer"])
        if exact:
            self.generator.set_state(state["generator"])
