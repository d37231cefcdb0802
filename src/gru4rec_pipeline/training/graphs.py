"""The engines ``eager`` and ``graphs``: epochs of the one training step (``step``) with fixed shapes and no host
work inside an epoch; with ``graphs``, replayed from CUDA graphs.

At GRU4Rec's published sizes (batch 32, 100 units, 2048 shared negatives) a step is some 60 to 100 small
kernels; launched one by one from Python, the GPU waits for the host most of the time, and Python's time per
step exceeds the GPU's several times over. Here a chunk of ``GRAPH_STEPS`` steps is captured once in a CUDA
graph (and one single step in a second graph, for the ends of pieces and the steps before a sampler refill)
and replayed over the epoch. Per replay the host does nothing but decide which graph comes next, from counts
it knows in advance:

- session-parallel blocks are uploaded in pieces (targets, inputs, keep flags) through pinned buffers, one
  asynchronous copy per piece; a pinned buffer is reused only after its previous copy finished (an event);
- a step uses exactly one row of the negative-sample store, so the steps at which the store runs out are
  known: the store is refilled and copied to the graph's buffer between replays, at those steps;
- dropout masks are drawn inside the graph from the training's dropout generator, registered with each
  graph: a replay draws what the same steps run eagerly would draw, and advances the generator as they do.

The step is ``TrainStep`` itself, built with its fixed-shape strategy (``StepSetup.use_kernels`` False: torch
operations, duplicate item rows merged by a fixed-size scatter); ``FixedShapeSteps`` only holds the device
buffers it reads (``block``, ``store``, ``cursor``: each chunk advances the cursor, so a replayed graph reads
new data on every replay). Nothing inside an epoch reads device values on the host: the loss sum stays on
the device until the caller reads it after the epoch. The last steps of an epoch, where slots retire as the
sessions run out (``iterator``), run eagerly one by one after the chunks, their shapes known on the host.

The engine ``eager`` runs the same chunks without graphs (on a CPU, or on a GPU across processes). Where capture
is not possible ``engines.build_engine`` falls back to the loop with a log line, or, where graphs was asked for by
name, stops with an error.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

from gru4rec_pipeline.training.iterator import SessionParallelIterator, min_active_slots
from gru4rec_pipeline.training.sampler import NegativeSampler
from gru4rec_pipeline.training.step import TrainStep

log = logging.getLogger("gru4rec_pipeline")

GRAPH_STEPS = 16  # steps per replay of the main graph
PIECE_STEPS = 1024  # steps asked of the iterator at once; a block longer than twice this is split
PINNED_BUFFERS = 2


class GraphCaptureError(RuntimeError):
    """The step could not be captured in a CUDA graph."""


class FixedShapeSteps:
    """Chunks of ``step`` (its fixed-shape strategy) reading device buffers: ``n_sample`` extra negatives a
    step (0 for none), ``store_rows`` rows in the sampler's store, chunks of at most ``max_chunk`` steps and
    pieces of at most ``capacity`` steps."""

    def __init__(self, step: TrainStep, n_sample: int, store_rows: int, max_chunk: int, capacity: int):
        if step.use_kernels and step.device.type == "cpu":
            raise ValueError("the fixed-shape engines need a step built without the compiled kernels")
        self.step, self.model, self.device, self.batch = step, step.model, step.device, step.batch_size
        self.n_sample = 0 if step.full else int(n_sample)

        def zeros(*shape, dtype=torch.float32):
            return torch.zeros(*shape, dtype=dtype, device=self.device)

        # Per step: the targets, the inputs and the keep flags (0 where a lane starts a new session).
        self.block = zeros(capacity, 3 * self.batch, dtype=torch.int64)
        self.store = zeros(store_rows, self.n_sample, dtype=torch.int64) if self.n_sample else None
        self.cursor = zeros(2, dtype=torch.int64)  # the step within ``block``, the row of ``store``
        self.chunk_offsets = torch.arange(max_chunk, device=self.device)
        self.state = step.init_state()
        self.loss_sum = zeros(())

    def mutable_tensors(self) -> list[Tensor]:
        """Everything a step changes that outlives it (what a trial run must restore)."""
        params = list(self.model.parameters())
        return params + list(self.step.optimizer.state.values()) + self.state + [self.loss_sum, self.cursor]

    def run_chunk(self, steps: int) -> None:
        batch = self.batch
        where = self.cursor.unsqueeze(1) + self.chunk_offsets[:steps]
        block = self.block.index_select(0, where[0])
        targets, inputs = block[:, :batch], block[:, batch : 2 * batch]
        keep = block[:, 2 * batch :].to(torch.float32).unsqueeze(2)
        keep = self.step.local(keep)
        samples = self.store.index_select(0, where[1]) if self.store is not None else None
        state = list(self.state)
        for j in range(steps):
            for layer_state in state:
                layer_state.mul_(keep[j])
            loss = self.step(inputs[j], targets[j], None if samples is None else samples[j], state)
            self.loss_sum.add_(loss)
        for h, h_new in zip(self.state, state):
            h.copy_(h_new)
        self.cursor.add_(steps)


class FixedShapeEngine:
    """Runs epochs of ``step`` over ``iterator``'s blocks of ``items`` (the training events' item indices),
    with negatives from ``sampler`` (None: no extra samples). ``graphs``: capture CUDA graphs (default: on
    a CUDA device)."""

    def __init__(
        self,
        step: TrainStep,
        sampler: NegativeSampler | None,
        items: np.ndarray,
        iterator: SessionParallelIterator,
        graph_steps: int = GRAPH_STEPS,
        piece_steps: int = PIECE_STEPS,
        graphs: bool | None = None,
    ):
        self.step, self.iterator = step, iterator
        self.sampler = sampler if sampler is not None and not step.full and sampler.n_sample > 0 else None
        self.items = np.asarray(items, dtype=np.int64)
        self.batch = step.batch_size
        self.device = step.device
        self.min_slots = min_active_slots(step.full or self.sampler is not None)
        self.events = 0
        self.graph_steps = max(1, int(graph_steps))
        self.piece_steps = max(1, int(piece_steps))
        n_sample = self.sampler.n_sample if self.sampler is not None else 0
        store_rows = self.sampler.rows if self.sampler is not None else 0
        # Blocks come in runs until they reach piece_steps: with room for twice that, most fit whole.
        self.capacity = 2 * self.piece_steps
        self.static = FixedShapeSteps(step, n_sample, store_rows, self.graph_steps, self.capacity)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._pinned: list[torch.Tensor] = []
        self._copied: list[torch.cuda.Event] = []
        self._next_pinned = 0
        if self.device.type == "cuda":
            self._pinned = [
                torch.empty(self.capacity, 3 * self.batch, dtype=torch.int64, pin_memory=True)
                for _ in range(PINNED_BUFFERS)
            ]
            self._copied = [torch.cuda.Event() for _ in range(PINNED_BUFFERS)]
        if self.device.type == "cuda" if graphs is None else graphs:
            self._check_store_rows(store_rows, n_sample)
            self._capture()

    @property
    def name(self) -> str:
        """The engine's word (the summary's ``engine``): ``graphs`` or ``eager``."""
        return "graphs" if self.graphs else "eager"

    @property
    def chunk_sizes(self) -> list[int]:
        return sorted({self.graph_steps, 1}, reverse=True)

    # -- capture --------------------------------------------------------------------------------
    def _check_store_rows(self, store_rows: int, n_sample: int) -> None:
        """The trial run before capture reads one store row per step of every chunk size, ahead of any refill:
        a smaller store would index past its end, a device-side assert that stays set on the device (so even
        the per-step loop could not run afterwards). Refuse it before anything runs."""
        needed = sum(self.chunk_sizes)
        if n_sample and store_rows < needed:
            raise GraphCaptureError(
                f"the negative-sample store holds {store_rows} rows of {n_sample} samples, fewer than the {needed} "
                f"a capture reads ahead: sample_store_size must be at least {needed * n_sample}"
            )

    def _capture(self) -> None:
        """Run each chunk size once (CUDA initialises libraries and per-stream workspaces lazily, which must
        not happen during capture: the trial runs on the stream the capture then uses), undo those trial
        steps, then capture one graph per chunk size."""
        static, generator = self.static, self.step.dropout_generator
        saved = [tensor.clone() for tensor in static.mutable_tensors()]
        saved_generator = generator.get_state()
        try:
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for size in self.chunk_sizes:
                    static.run_chunk(size)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self._restore(saved, saved_generator)
            for size in self.chunk_sizes:
                graph = torch.cuda.CUDAGraph()
                graph.register_generator_state(generator)
                with torch.cuda.graph(graph, stream=side):
                    static.run_chunk(size)
                self.graphs[size] = graph
        except (RuntimeError, AttributeError, TypeError) as exc:
            self.graphs.clear()
            self._restore(saved, saved_generator)
            raise GraphCaptureError(f"{type(exc).__name__}: {exc}") from exc

    def _restore(self, saved: list[torch.Tensor], generator_state: torch.Tensor) -> None:
        for tensor, value in zip(self.static.mutable_tensors(), saved):
            tensor.copy_(value)
        self.step.dropout_generator.set_state(generator_state)

    # -- an epoch -------------------------------------------------------------------------------
    def run_epoch(self, progress=None) -> tuple[torch.Tensor, int]:
        """One epoch from zero hidden states; returns (sum of the steps' mean losses, a 0-dim tensor on the
        device, and the number of steps). ``progress``: a ``Progress`` updated after every piece (from
        counts known on the host: it shows steps queued, which run ahead of the device by a few pieces)."""
        static = self.static
        for h in static.state:
            h.zero_()
        static.loss_sum.zero_()
        if self.sampler is not None and self.sampler.store is not None:
            static.store.copy_(self.sampler.store)
            static.cursor[1].fill_(self.sampler.pointer)
        steps = self.events = 0
        for block in self.iterator.blocks(self.piece_steps, self.min_slots):
            steps += block.n_steps
            self.events += block.n_events
            if block.active is not None:
                self._run_retiring(block)
                if progress is not None:
                    progress.update(block.n_events)
                continue
            for start in range(0, block.n_steps, self.capacity):
                stop = min(start + self.capacity, block.n_steps)
                self._upload(block.positions[start:stop], block.new_session[start:stop])
                done = start
                while done < stop:
                    size = self._next_chunk(stop - done)
                    graph = self.graphs.get(size)
                    if graph is not None:
                        graph.replay()
                    else:
                        static.run_chunk(size)
                    done += size
                if progress is not None:
                    progress.update((stop - start) * self.batch)
        return static.loss_sum, steps

    def _run_retiring(self, block) -> None:
        """The last steps of an epoch, where slots retire: one eager step each (which slots train changes the
        shape of the loss's work), reading and advancing the same state, loss sum and sample stream as the chunks
        (a later epoch copies the sampler's store and position into the chunks' buffers anew)."""
        static, step, device = self.static, self.step, self.device

        def upload(values: np.ndarray) -> Tensor:  # asynchronous: nothing here waits for the device
            return torch.from_numpy(np.ascontiguousarray(values)).to(device, non_blocking=True)

        inputs, targets = upload(self.items[block.positions]), upload(self.items[block.positions + 1])
        keep = upload((~step.local(block.new_session)).astype(np.float32)).unsqueeze(2)
        state = list(static.state)
        for t in range(block.n_steps):
            for layer_state in state:
                layer_state.mul_(keep[t])
            samples = self.sampler.next() if self.sampler is not None else None
            static.loss_sum.add_(step(inputs[t], targets[t], samples, state, block.active[t]))
        for h, h_new in zip(static.state, state):
            h.copy_(h_new)

    def _next_chunk(self, remaining: int) -> int:
        """The length of the next chunk; refills the sample store first where the reference loop would."""
        sampler = self.sampler
        size = self.graph_steps if remaining >= self.graph_steps else 1
        if sampler is not None:
            if sampler.refill_if_used_up():
                self.static.store.copy_(sampler.store)
                self.static.cursor[1].fill_(0)
            if sampler.rows_left < size:
                size = 1
            sampler.skip(size)
        return size

    def _upload(self, positions: np.ndarray, new_session: np.ndarray) -> None:
        """Targets, inputs and keep flags of a piece into the step's block buffer; the cursor to its start."""
        count, batch = positions.shape[0], self.batch
        if self._pinned:
            slot = self._next_pinned
            self._next_pinned = (slot + 1) % len(self._pinned)
            # Wait until the copy that last read this buffer has run: the host, far ahead of the device, is
            # held back here at most once a piece. No device value is read.
            self._copied[slot].synchronize()
            host = self._pinned[slot][:count]
        else:
            host = torch.empty(count, 3 * batch, dtype=torch.int64)
        rows = host.numpy()
        rows[:, :batch] = self.items[positions + 1]
        rows[:, batch : 2 * batch] = self.items[positions]
        rows[:, 2 * batch :] = ~new_session
        self.static.block[:count].copy_(host, non_blocking=bool(self._pinned))
        if self._pinned:
            self._copied[slot].record()
        self.static.cursor[0].fill_(0)
