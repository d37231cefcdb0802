"""V-SKNN's ``ties: session_rec`` against a statement of session-rec's vsknn.py steps with real Python sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.test_knn import N_ITEMS, distance_decay, position_weight, random_split, sessions_of

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.evaluation.knn import SessionKNN

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = {"k": 3, "sample_size": 6, "weighting": "same", "weighting_score": "quadratic"}


def with_ids(train: SessionArrays, seed: int, colliding: bool) -> SessionArrays:
    """The same sessions under other distinct ids: when ``colliding``, many share their low bits (hash slots)."""
    rng = np.random.default_rng(seed)
    if colliding:
        ids = rng.choice(200, train.n_sessions, replace=False) * 64 + rng.integers(0, 2)
    else:
        ids = rng.choice(10 * train.n_sessions, train.n_sessions, replace=False)
    return SessionArrays(train.offsets, train.items, train.times, ids.astype(np.int64))


def session_rec_scores(train: SessionArrays, items: list[int], settings: dict) -> np.ndarray:
    """vsknn.py's steps: sets of session ids built by add() in row order, unions at every click, Python's
    stable sorted() by time and by similarity over the sets' iteration order."""
    item_sessions: dict[int, set] = {}
    session_items, session_time = {}, {}
    for session_id, (clicks, times) in zip(train.session_ids.tolist(), sessions_of(train)):
        session_items[session_id], session_time[session_id] = set(clicks), times[-1]
        for item in clicks:
            item_sessions.setdefault(item, set()).add(session_id)
    relevant: set = set()
    current: list[int] = []
    rows = []
    for item in items[:-1]:
        current.append(item)
        relevant = relevant | item_sessions.get(item, set())
        if len(relevant) > settings["sample_size"]:
            latest = sorted(((s, session_time[s]) for s in relevant), key=lambda pair: pair[1], reverse=True)
            sample = set()
            for session_id, _ in latest[: settings["sample_size"]]:
                sample.add(session_id)
        else:
            sample = relevant
        weights = {i: position_weight(settings["weighting"], p, len(current)) for p, i in enumerate(current, 1)}
        neighbours = []
        for session_id in sample:
            similarity = sum(weights[i] for i in set(current) & session_items[session_id]) / len(weights)
            if similarity > 0:
                neighbours.append((session_id, similarity))
        neighbours = sorted(neighbours, key=lambda pair: pair[1], reverse=True)[: settings["k"]]
        row = np.zeros(N_ITEMS)
        for session_id, similarity in neighbours:
            step = next(m for m, i in enumerate(reversed(current), 1) if i in session_items[session_id])
            for i in session_items[session_id]:
                row[i] += similarity * distance_decay(settings["weighting_score"], step)
        rows.append(row)
    return np.array(rows).reshape(len(rows), N_ITEMS)


@pytest.mark.parametrize("colliding", [False, True])
@pytest.mark.parametrize("tied_times", [False, True])
def test_ties_are_broken_in_session_recs_set_order(colliding, tied_times):
    differs = False
    for seed in range(4):
        train = with_ids(random_split(seed, 60, tied_times=tied_times), seed, colliding)
        test = random_split(100 + seed, 12)
        ours = SessionKNN.fit("vsknn", train, N_ITEMS, **SETTINGS, ties="session_rec")
        by_recency = SessionKNN.fit("vsknn", train, N_ITEMS, **SETTINGS)
        for items, times in sessions_of(test):
            if len(items) < 2:
                continue
            expected = session_rec_scores(train, items, SETTINGS)
            got = ours.session_scores(np.array(items), np.array(times))
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
            recency = by_recency.session_scores(np.array(items), np.array(times))
            differs |= not np.allclose(recency, expected)
    assert differs, "the case has no tie that the rule decides"


def test_an_unknown_tie_rule_names_the_key():
    with pytest.raises(ConfigError, match="baselines.vsknn.ties"):
        SessionKNN.fit("vsknn", random_split(0, 10), N_ITEMS, ties="random")


def test_the_baseline_command_passes_the_tie_rule(tmp_path):
    train, test = random_split(5, 40), random_split(6, 10)
    train.save(tmp_path / "train.npz")
    test.save(tmp_path / "eval.npz")
    Vocabulary(np.arange(N_ITEMS) + 100, np.bincount(train.items, minlength=N_ITEMS)).save(tmp_path / "vocab.parquet")
    files = [f"--{kind}={tmp_path / name}" for kind, name in (("train", "train.npz"), ("eval", "eval.npz"))]
    files += [f"--vocab={tmp_path / 'vocab.parquet'}", f"--recall={tmp_path / 'r.txt'}"]
    assert main(["baseline", "vsknn", *files, f"--metrics={tmp_path / 'm.json'}", "--ties", "session_rec"]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["hyperparameters"] == {"ties": "session_rec"}
