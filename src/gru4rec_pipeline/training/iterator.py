"""Session-parallel mini-batches, the heart of GRU4Rec training.

``batch_size`` slots each walk one session, one event per step: the input is the slot's
current item, the target the next one. The rules, exactly:

1. Sessions are taken in the order of the arrays (start time); sessions with fewer than two
   events have no (input, target) pair and are skipped.
2. Slots 0..B-1 start with the first B sessions.
3. All slots advance in lockstep. After a step, every slot whose session has no further target
   is *finished*; finished slots take the next sessions in order, lowest slot index first,
   and their hidden state is reset to zero before their first step on the new session.
4. The epoch ends at the first moment a finished slot cannot be given a new session (the rule of
   the original GRU4Rec training loop): the events still left in the other slots' sessions
   (fewer than ``batch_size`` sessions) are not used in that epoch.

There is no backpropagation through time: each step is one GRU update per slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class StepBlock:
    """Consecutive steps: ``positions[t, b]`` is the index (into the event arrays) of slot ``b``'s
    input at step ``t``; its target is at ``positions + 1``. ``new_session[t, b]`` marks the first
    step of a session in slot ``b`` (reset the state before that step)."""

    positions: np.ndarray  # int64 [T, B]
    new_session: np.ndarray  # bool [T, B]

    @property
    def n_steps(self) -> int:
        return self.positions.shape[0]


class SessionParallelIterator:
    """Yields the steps of one epoch in blocks of about ``block_steps`` steps."""

    def __init__(self, offsets: np.ndarray, batch_size: int):
        offsets = np.asarray(offsets, dtype=np.int64)
        lengths = np.diff(offsets)
        usable = lengths >= 2
        self.session_starts = offsets[:-1][usable]
        self.session_ends = offsets[1:][usable]
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if len(self.session_starts) < self.batch_size:
            raise ValueError(
                f"only {len(self.session_starts)} sessions with two or more events, fewer than batch_size={batch_size}"
            )

    @property
    def n_sessions(self) -> int:
        return len(self.session_starts)

    def upper_bound_events(self) -> int:
        """Number of (input, target) pairs in all usable sessions; an epoch trains on at most this many."""
        return int((self.session_ends - self.session_starts - 1).sum())

    def blocks(self, block_steps: int = 1024) -> Iterator[StepBlock]:
        batch = self.batch_size
        start = self.session_starts[:batch].copy()  # position of each slot's current input
        end = self.session_ends[:batch].copy()
        next_session = batch
        new_session = np.ones(batch, dtype=bool)
        pending_positions: list[np.ndarray] = []
        pending_new: list[np.ndarray] = []
        pending_steps = 0
        while True:
            # Every slot has at least one more target: run until the shortest session is used up.
            steps = int((end - start).min()) - 1
            positions = start[None, :] + np.arange(steps, dtype=np.int64)[:, None]
            flags = np.zeros((steps, batch), dtype=bool)
            flags[0] = new_session
            pending_positions.append(positions)
            pending_new.append(flags)
            pending_steps += steps
            if pending_steps >= block_steps:
                yield StepBlock(np.concatenate(pending_positions), np.concatenate(pending_new))
                pending_positions, pending_new, pending_steps = [], [], 0
            start += steps
            finished = end - start <= 1
            n_finished = int(finished.sum())
            if next_session + n_finished > self.n_sessions:
                break
            slots = np.flatnonzero(finished)
            start[slots] = self.session_starts[next_session : next_session + n_finished]
            end[slots] = self.session_ends[next_session : next_session + n_finished]
            next_session += n_finished
            new_session = finished
        if pending_steps:
            yield StepBlock(np.concatenate(pending_positions), np.concatenate(pending_new))
