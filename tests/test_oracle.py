"""The oracle: exact forward filtering of the synthetic process, checked against brute force."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from gru4rec_pipeline.errors import DataFormatError, PipelineError
from gru4rec_pipeline.synthetic.archive import PRESETS, generate
from gru4rec_pipeline.synthetic.oracle import Oracle
from gru4rec_pipeline.synthetic.process import SyntheticProcess

START = 1_396_310_400.0  # 2014-04-01T00:00:00Z


def hand_made_process() -> SyntheticProcess:
    """3 intents, 5 items; item 44 appears on day 1, item 22 is boosted on day 1."""
    weight = np.array(
        [
            [5.0, 1.0, 0.0, 2.0, 0.5],
            [0.5, 4.0, 3.0, 0.0, 1.0],
            [1.0, 0.0, 0.5, 3.0, 4.0],
        ]
    )
    return SyntheticProcess(
        item_ids=np.array([11, 22, 33, 44, 55], dtype=np.int64),
        intent_prior=np.array([0.5, 0.3, 0.2]),
        intent_item_weight=weight,
        switch_prob=0.2,
        repeat_prob=0.25,
        start_epoch=START,
        n_days=2,
        item_first_day=np.array([0, 0, 0, 1, 0]),
        boost_first_day=np.array([-1, 1, -1, -1, -1]),
        boost_last_day=np.array([-1, 1, -1, -1, -1]),
        boost_factor=np.array([1.0, 3.0, 1.0, 1.0, 1.0]),
    )


def brute_force_next_item(process: SyntheticProcess, columns: list[int], day: int) -> np.ndarray:
    """P(next item | all of ``columns``) by summing the joint over every hidden intent path."""
    multiplier = (process.item_first_day <= day) * np.where(
        (process.boost_first_day <= day) & (day <= process.boost_last_day), process.boost_factor, 1.0
    )
    weight = process.intent_item_weight * multiplier
    emission = weight / weight.sum(axis=1, keepdims=True)
    n_intents, n_items = emission.shape
    prior, switch, repeat = process.intent_prior, process.switch_prob, process.repeat_prob

    def transition(a: int, b: int) -> float:
        return (1 - switch) * (a == b) + switch * prior[b]

    def joint(sequence: list[int]) -> float:
        total = 0.0
        for path in itertools.product(range(n_intents), repeat=len(sequence)):
            p = prior[path[0]] * emission[path[0], sequence[0]]
            for t in range(1, len(sequence)):
                same = repeat if sequence[t] == sequence[t - 1] else 0.0
                p *= transition(path[t - 1], path[t]) * (same + (1 - repeat) * emission[path[t], sequence[t]])
            total += p
        return total

    return np.array([joint(columns + [item]) for item in range(n_items)]) / joint(columns)


@pytest.mark.parametrize("day", [0, 1])
def test_next_item_probs_match_brute_force_over_hidden_paths(day):
    process = hand_made_process()
    oracle = Oracle(process)
    columns = [0, 0, 1, 4, 2] if day == 0 else [3, 1, 1, 4, 0]
    item_ids = process.item_ids[columns]
    times = START + day * 86400.0 + 3600.0 + 60.0 * np.arange(len(columns))
    probs = oracle.next_item_probs(item_ids, times)
    assert probs.shape == (len(columns), process.n_items)
    for j in range(len(columns)):
        np.testing.assert_allclose(probs[j], brute_force_next_item(process, columns[: j + 1], day), rtol=1e-10)


def test_items_not_yet_available_get_no_probability():
    process = hand_made_process()
    probs = Oracle(process).next_item_probs(np.array([11, 22]), START + np.array([10.0, 20.0]))
    assert np.all(probs[:, 3] == 0.0)  # item 44 only appears on day 1


def test_impossible_sequence_and_unknown_items_raise():
    oracle = Oracle(hand_made_process())
    with pytest.raises(PipelineError, match="impossible"):
        oracle.next_item_probs(np.array([11, 44]), START + np.array([10.0, 20.0]))
    with pytest.raises(PipelineError, match="does not know"):
        oracle.next_item_probs(np.array([11, 99]), START + np.array([10.0, 20.0]))
    with pytest.raises(PipelineError, match="outside"):
        oracle.next_item_probs(np.array([11]), np.array([START + 5 * 86400.0]))


def test_process_file_round_trips_without_pickles(tmp_path):
    process = hand_made_process()
    path = tmp_path / "process.npz"
    process.save(path)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)
    loaded = Oracle.load(path)
    times = START + 86400.0 + np.array([0.0, 30.0, 90.0])
    items = np.array([44, 22, 55])
    np.testing.assert_array_equal(loaded.next_item_probs(items, times), Oracle(process).next_item_probs(items, times))


def test_load_rejects_files_that_are_not_process_files(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, something=np.arange(3))
    with pytest.raises(DataFormatError, match="missing arrays"):
        Oracle.load(path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(DataFormatError, match="garbage.npz"):
        Oracle.load(garbage)


@pytest.fixture(scope="module")
def tiny_sessions():
    spec = dataclasses.replace(PRESETS["tiny"], n_sessions=2000)
    data = generate(spec, seed=3)
    sessions = data.sessions
    return data.process, sessions.offsets, data.process.item_ids[sessions.item_index], sessions.time_ms / 1000.0


def test_batched_rows_equal_single_session_rows_and_sum_to_one(tiny_sessions):
    process, offsets, item_ids, times = tiny_sessions
    oracle = Oracle(process)
    batched = list(oracle.predict_sessions(offsets[:301], item_ids, times, batch_events=64))
    assert len(batched) == 300
    for session, rows in enumerate(batched):
        start, stop = offsets[session], offsets[session + 1]
        np.testing.assert_allclose(rows, oracle.next_item_probs(item_ids[start:stop], times[start:stop]), rtol=1e-12)
        np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-12)


def test_empty_sessions_get_empty_rows(tiny_sessions):
    process, offsets, item_ids, times = tiny_sessions
    stop = offsets[3]
    sparse_offsets = np.array([0, offsets[1], offsets[1], offsets[2], stop, stop])
    rows = list(Oracle(process).predict_sessions(sparse_offsets, item_ids[:stop], times[:stop]))
    assert [r.shape[0] for r in rows] == [offsets[1], 0, offsets[2] - offsets[1], stop - offsets[2], 0]


def mean_next_item_log_likelihood(oracle: Oracle, offsets, item_ids, times, last_item_only: bool = False) -> float:
    columns = oracle.columns_of(item_ids)
    total, count = 0.0, 0
    for start, stop in zip(offsets[:-1], offsets[1:]):
        if stop - start < 2:
            continue
        if last_item_only:
            rows = np.stack(
                [
                    oracle.next_item_probs(item_ids[j : j + 1], times[start : start + 1])[0]
                    for j in range(start, stop - 1)
                ]
            )
        else:
            rows = oracle.next_item_probs(item_ids[start:stop], times[start:stop])[:-1]
        total += np.log(rows[np.arange(rows.shape[0]), columns[start + 1 : stop]]).sum()
        count += stop - start - 1
    return total / count


def test_oracle_beats_the_last_item_alone_and_wrong_parameters(tiny_sessions):
    """The session's history carries information, and the sampler agrees with the filter."""
    process, offsets, item_ids, times = tiny_sessions
    offsets = offsets[:801]
    oracle = Oracle(process)
    exact = mean_next_item_log_likelihood(oracle, offsets, item_ids, times)
    last_item = mean_next_item_log_likelihood(oracle, offsets, item_ids, times, last_item_only=True)
    assert exact > last_item + 0.05
    for wrong in ({"switch_prob": 0.5}, {"repeat_prob": 0.05}, {"repeat_prob": 0.4}):
        mismatched = Oracle(dataclasses.replace(process, **wrong))
        assert exact > mean_next_item_log_likelihood(mismatched, offsets, item_ids, times)


def test_repeat_rate_matches_predicted_repeat_probability(tiny_sessions):
    process, offsets, item_ids, times = tiny_sessions
    oracle = Oracle(process)
    columns = oracle.columns_of(item_ids)
    predicted, observed = [], []
    for rows, start, stop in zip(oracle.predict_sessions(offsets, item_ids, times), offsets[:-1], offsets[1:]):
        predicted.append(rows[np.arange(stop - start - 1), columns[start : stop - 1]])
        observed.append(columns[start + 1 : stop] == columns[start : stop - 1])
    predicted, observed = np.concatenate(predicted), np.concatenate(observed)
    standard_error = np.sqrt(predicted.mean() * (1 - predicted.mean()) / predicted.size)
    assert abs(observed.mean() - predicted.mean()) < 4 * standard_error
