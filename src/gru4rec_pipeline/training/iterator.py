"""Session-parallel mini-batches, the heart of GRU4Rec training.

``batch_size`` slots each walk one session, one event per step: the input is the slot's
current item, the target the next one. The rules, exactly (those of the official GRU4Rec):

1. Sessions are taken in the order of the arrays (start time); sessions with fewer than two
   events have no (input, target) pair and are skipped.
2. Slots 0..B-1 start with the first B sessions.
3. All active slots advance in lockstep. After a step, every slot whose session has no further target
   is *finished*; finished slots take the next sessions in order, lowest slot index first,
   and their hidden state is reset to zero before their first step on the new session.
4. When no session is left for a finished slot, the slot is retired for the rest of the epoch and the
   others go on: the minibatch shrinks until every session is used up, so an epoch trains on every
   (input, target) pair once. With ``min_slots`` 2 (a loss whose only negatives are the other slots'
   targets) the epoch ends instead when fewer than two slots are left, as the official code does then.

A retired slot still fills its place in the arrays (fixed shapes for the step, the fixed-shape engines and
the processes of a data-parallel training): ``active[t, b]`` is False for it, and it repeats the position of
the step's first active slot, so it touches no item row the active slots do not (the training step leaves
it out of the loss and of the candidates).

There is no backpropagation through time: each step is one GRU update per slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


def min_active_slots(shared_negatives: bool) -> int:
    """The fewest active slots a step trains with: one, or two where a slot's only negatives are the other slots'
    targets (no shared samples, and not ``ce_full``)."""
    return 1 if shared_negatives else 2


@dataclass(frozen=True)
class StepBlock:
    """Consecutive steps: ``positions[t, b]`` is the index (into the event arrays) of slot ``b``'s
    input at step ``t``; its target is at ``positions + 1``. ``new_session[t, b]`` marks the first
    step of a session in slot ``b`` (reset the state before that step). ``active[t, b]`` is False for a slot
    retired at the end of the epoch; None: every slot is active in the whole block."""

    positions: np.ndarray  # int64 [T, B]
    new_session: np.ndarray  # bool [T, B]
    active: np.ndarray | None = None  # bool [T, B]

    @property
    def n_steps(self) -> int:
        return self.positions.shape[0]

    @property
    def n_events(self) -> int:
        """The (input, target) pairs the block trains on: its active slots' steps."""
        return self.positions.size if self.active is None else int(np.count_nonzero(self.active))


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
        """Number of (input, target) pairs in all usable sessions; an epoch trains on exactly these (with
        ``min_slots`` 2, on all but those left when fewer than two slots remain)."""
        return int((self.session_ends - self.session_starts - 1).sum())

    def blocks(self, block_steps: int = 1024, min_slots: int = 1) -> Iterator[StepBlock]:
        """The epoch's steps; it ends when every session is used up or fewer than ``min_slots`` slots are left."""
        batch = self.batch_size
        start = self.session_starts[:batch].copy()  # position of each slot's current input
        end = self.session_ends[:batch].copy()
        active = np.ones(batch, dtype=bool)
        next_session = batch
        new_session = np.ones(batch, dtype=bool)
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        pending_steps = 0
        while True:
            # Every active slot has at least one more target: run until the shortest session is used up.
            retiring = not active.all()
            steps = int((end - start)[active].min()) - 1
            if retiring:  # retired slots repeat the first active slot's position
                first = int(np.argmax(active))
                start[~active] = start[first]
            positions = start[None, :] + np.arange(steps, dtype=np.int64)[:, None]
            flags = np.zeros((steps, batch), dtype=bool)
            flags[0] = new_session
            if pending and (pending[-1][2] is not None) != retiring:  # a block holds steps of one kind
                yield _block(pending)
                pending, pending_steps = [], 0
            pending.append((positions, flags, np.repeat(active[None, :], steps, axis=0) if retiring else None))
            pending_steps += steps
            if pending_steps >= block_steps:
                yield _block(pending)
                pending, pending_steps = [], 0
            start += steps
            finished = active & (end - start <= 1)
            slots = np.flatnonzero(finished)
            refilled = slots[: self.n_sessions - next_session]
            active[slots[len(refilled) :]] = False
            if np.count_nonzero(active) < max(min_slots, 1):
                break
            start[refilled] = self.session_starts[next_session : next_session + len(refilled)]
            end[refilled] = self.session_ends[next_session : next_session + len(refilled)]
            next_session += len(refilled)
            new_session = np.zeros(batch, dtype=bool)
            new_session[refilled] = True
        if pending:
            yield _block(pending)


def _block(pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> StepBlock:
    positions, flags, active = zip(*pending)
    return StepBlock(
        np.concatenate(positions), np.concatenate(flags), None if active[0] is None else np.concatenate(active)
    )
