"""The session-parallel iterator on a hand-written example."""

import numpy as np
import pytest

from gru4rec_pipeline.training.iterator import SessionParallelIterator, min_active_slots

# Sessions of lengths 3, 2, 4, 1, 2, 3 (the one-event session has no target and is skipped).
OFFSETS = np.array([0, 3, 5, 9, 10, 12, 15])


def collect(iterator, block_steps, min_slots=1):
    blocks = list(iterator.blocks(block_steps, min_slots))
    active = np.concatenate([np.ones_like(b.new_session) if b.active is None else b.active for b in blocks])
    return np.concatenate([b.positions for b in blocks]), np.concatenate([b.new_session for b in blocks]), active


def test_slots_refill_in_order_reset_and_retire_when_no_session_is_left():
    positions, new_session, active = collect(SessionParallelIterator(OFFSETS, batch_size=2), block_steps=100)
    # slot 0: session 0 (events 0, 1 as inputs), then session 4 (event 10), then session 5 (events 12, 13);
    # slot 1: session 1 (event 3), then session 2 (events 5, 6, 7).
    # After step 4 slot 1 finishes and no session is left: it retires (repeating slot 0's position) and slot 0
    # goes on alone, so that event 13 -> 14 is trained too, as in the official GRU4Rec.
    np.testing.assert_array_equal(positions, [[0, 3], [1, 5], [10, 6], [12, 7], [13, 13]])
    np.testing.assert_array_equal(
        new_session, [[True, True], [False, True], [True, False], [True, False], [False, False]]
    )
    np.testing.assert_array_equal(active, [[True, True]] * 4 + [[True, False]])


def test_without_shared_negatives_the_epoch_ends_below_two_slots():
    """A lane alone would have no negative (its only candidates are the lanes' targets): the official code
    ends the epoch when fewer than two slots are left."""
    positions, _, active = collect(SessionParallelIterator(OFFSETS, batch_size=2), block_steps=100, min_slots=2)
    np.testing.assert_array_equal(positions, [[0, 3], [1, 5], [10, 6], [12, 7]])
    assert active.all()
    assert min_active_slots(shared_negatives=False) == 2 and min_active_slots(shared_negatives=True) == 1


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64])
def test_an_epoch_trains_every_pair_once(batch_size):
    rng = np.random.default_rng(batch_size)
    lengths = rng.integers(1, 9, size=300)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    iterator = SessionParallelIterator(offsets, batch_size)
    blocks = list(iterator.blocks(5))
    positions, _, active = collect(iterator, block_steps=5)
    trained = np.sort(positions[active])
    session_of_event = np.repeat(np.arange(300), lengths)
    pairs = np.flatnonzero(session_of_event[:-1] == session_of_event[1:])  # every input that has a target
    np.testing.assert_array_equal(trained, pairs)
    assert sum(block.n_events for block in blocks) == iterator.upper_bound_events() == len(pairs)
    # A retired slot repeats the position of the step's first active slot: it touches no other item.
    first_active = positions[np.arange(len(positions)), np.argmax(active, axis=1)]
    np.testing.assert_array_equal(np.where(active, positions, first_active[:, None]), positions)
    # Blocks hold steps of one kind: all slots active (no array) or some retired.
    assert all(block.active is None or not block.active.all() for block in blocks)


def test_blocks_split_the_same_sequence():
    whole = collect(SessionParallelIterator(OFFSETS, batch_size=2), block_steps=100)
    split = collect(SessionParallelIterator(OFFSETS, batch_size=2), block_steps=1)
    assert len(whole) == len(split) == 3
    for a, b in zip(whole, split):
        np.testing.assert_array_equal(a, b)


def test_targets_are_the_next_event_of_the_same_session():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 7, size=200)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    session_of_event = np.repeat(np.arange(200), lengths)
    positions, new_session, active = collect(SessionParallelIterator(offsets, batch_size=7), block_steps=16)
    assert np.all(session_of_event[positions] == session_of_event[positions + 1])
    full = active.all(axis=1)  # the steps before slots retire (the end of the epoch)
    positions, new_session = positions[full], new_session[full]
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
