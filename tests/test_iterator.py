"""The session-parallel iterator on a hand-written example."""

import numpy as np
import pytest

from gru4rec_pipeline.training.iterator import SessionParallelIterator

# Sessions of lengths 3, 2, 4, 1, 2, 3 (the one-event session has no target and is skipped).
OFFSETS = np.array([0, 3, 5, 9, 10, 12, 15])


def collect(iterator, block_steps):
    blocks = list(iterator.blocks(block_steps))
    return np.concatenate([b.positions for b in blocks]), np.concatenate([b.new_session for b in blocks])


def test_slots_refill_in_order_reset_and_stop_when_no_session_is_left():
    positions, new_session = collect(SessionParallelIterator(OFFSETS, batch_size=2), block_steps=100)
    # slot 0: session 0 (events 0, 1 as inputs), then session 4 (event 10), then session 5 (event 12);
    # slot 1: session 1 (event 3), then session 2 (events 5, 6, 7).
    # After step 4 slot 1 finishes and no session is left: the epoch ends (event 13 -> 14 is not used).
    np.testing.assert_array_equal(positions, [[0, 3], [1, 5], [10, 6], [12, 7]])
    np.testing.assert_array_equal(new_session, [[True, True], [False, True], [True, False], [True, False]])


def test_blocks_split_the_same_sequence():
    whole = collect(SessionParallelIterator(OFFSETS, batch_size=2), block_steps=100)
    split = collect(SessionParallelIterator(OFFSETS, batch_size=2), block_steps=1)
    for a, b in zip(whole, split):
        np.testing.assert_array_equal(a, b)


def test_targets_are_the_next_event_of_the_same_session():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 7, size=200)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    session_of_event = np.repeat(np.arange(200), lengths)
    positions, new_session = collect(SessionParallelIterator(offsets, batch_size=7), block_steps=16)
    assert np.all(session_of_event[positions] == session_of_event[positions + 1])
    # Each slot's session changes exactly where a new session is flagged.
    changed = session_of_event[positions[1:]] != session_of_event[positions[:-1]]
    np.testing.assert_array_equal(changed, new_session[1:])
    # Sessions are used at most once, and only those with a target.
    firsts = session_of_event[positions[new_session]]
    assert len(np.unique(firsts)) == len(firsts)
    assert set(firsts) <= set(np.flatnonzero(lengths >= 2))


def test_too_few_sessions_is_an_error():
    with pytest.raises(ValueError, match="fewer than batch_size"):
        SessionParallelIterator(OFFSETS, batch_size=6)
