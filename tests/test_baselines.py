"""Baselines on hand-made sessions: popularity order, S-POP, item-kNN similarities, the oracle adapter."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.evaluation.baselines import (
    ItemKNN,
    OracleScorer,
    SessionPopular,
    build_baseline,
    cooccurrence_counts,
)
from gru4rec_pipeline.evaluation.scorer_evaluation import evaluate_scorer

# Tiny tensors: a second torch thread only adds synchronisation (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def session_arrays(sessions: list[list[int]]) -> SessionArrays:
    lengths = [len(s) for s in sessions]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.array([i for s in sessions for i in s], dtype=np.int64)
    return SessionArrays(
        offsets, items, np.arange(len(items), dtype=np.float64) * 10.0, np.arange(len(sessions), dtype=np.int64)
    )


# item 0: 4 events, item 1: 3, item 2: 2, item 3: 1
TRAIN = session_arrays([[0, 1, 0], [1, 2], [0, 0, 1], [2, 3]])
VOCAB = Vocabulary(np.array([100, 101, 102, 103]), np.array([4, 3, 2, 1]))


def test_most_popular_ranks_by_training_events():
    scorer, n_items = build_baseline("pop", TRAIN, VOCAB.n_items)
    assert n_items == 4
    rows = scorer.session_scores(np.array([3, 2, 1]), np.zeros(3))
    assert rows.shape == (2, 4)
    assert list(np.argsort(-rows[0], kind="stable")) == [0, 1, 2, 3]
    metrics = evaluate_scorer(scorer, session_arrays([[3, 0], [3, 2]]), 4, cutoffs=[1, 3], progress=False)
    assert metrics["recall"] == pytest.approx({"1": 0.5, "3": 1.0})
    assert metrics["mrr"] == pytest.approx({"1": 0.5, "3": (1 + 1 / 3) / 2})


def test_session_popularity_puts_session_items_first_by_count_then_popularity():
    scorer = SessionPopular(np.array([4, 3, 2, 1]))
    rows = scorer.session_scores(np.array([3, 2, 3, 1]), np.zeros(4))
    # after [3]: item 3 first, then by popularity
    assert list(np.argsort(-rows[0], kind="stable")) == [3, 0, 1, 2]
    # after [3, 2]: both once, the more popular (2) first
    assert list(np.argsort(-rows[1], kind="stable")) == [2, 3, 0, 1]
    # after [3, 2, 3]: item 3 twice beats item 2 once
    assert list(np.argsort(-rows[2], kind="stable")) == [3, 2, 0, 1]
    assert rows[2, 3] == pytest.approx(2 + 1 / 2)


def test_cooccurrence_counts_every_pair_of_events_in_a_session():
    keys, counts = cooccurrence_counts(session_arrays([[0, 1, 0], [1, 2], [2]]), 3)
    table = dict(zip((keys // 3 * 10 + keys % 3).tolist(), counts.tolist()))
    assert table == {0: 4, 1: 2, 10: 2, 11: 2, 12: 1, 21: 1, 22: 2}


def test_cooccurrence_counts_are_the_same_in_small_chunks(monkeypatch):
    import gru4rec_pipeline.evaluation.baselines as baselines

    sessions = session_arrays([[0, 1, 0], [1, 2], [2], [0, 2, 2, 1]])
    expected = cooccurrence_counts(sessions, 3)
    monkeypatch.setattr(baselines, "PAIR_CHUNK", 5)
    chunked = cooccurrence_counts(sessions, 3)
    assert np.array_equal(expected[0], chunked[0]) and np.array_equal(expected[1], chunked[1])


def test_item_knn_similarities_by_hand():
    knn = ItemKNN.fit(TRAIN, 4, neighbors=2, shrink=1.0)
    # pairs of events in the same session: c01 = 2*1 + 1*1 (sessions 0, 2: 2 zeros with 1 one) ... by hand:
    # session [0,1,0]: c01 = 2, session [0,0,1]: c01 = 2 -> c01 = 4; c12 = 1; c23 = 1; c02 = c03 = c13 = 0
    support = np.array([4, 3, 2, 1]) + 1.0
    expected = {
        (0, 1): 4 / math.sqrt(support[0] * support[1]),
        (1, 0): 4 / math.sqrt(support[0] * support[1]),
        (1, 2): 1 / math.sqrt(support[1] * support[2]),
        (2, 1): 1 / math.sqrt(support[1] * support[2]),
        (2, 3): 1 / math.sqrt(support[2] * support[3]),
        (3, 2): 1 / math.sqrt(support[2] * support[3]),
    }
    found = {}
    for item in range(4):
        for entry in range(knn.indptr[item], knn.indptr[item + 1]):
            found[(item, int(knn.neighbours[entry]))] = knn.similarities[entry]
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert found[key] == pytest.approx(value)
    # neighbours of item 2, strongest first: 3 (1/sqrt(6)) before 1 (1/sqrt(12))
    assert list(knn.neighbours[knn.indptr[2] : knn.indptr[3]]) == [3, 1]
    rows = knn.session_scores(np.array([2, 0, 3]), np.zeros(3))
    assert rows[0].tolist() == pytest.approx([0, expected[(2, 1)], 0, expected[(2, 3)]])
    assert rows[1].tolist() == pytest.approx([0, expected[(0, 1)], 0, 0])


def test_item_knn_keeps_only_the_strongest_neighbours():
    knn = ItemKNN.fit(TRAIN, 4, neighbors=1, shrink=1.0)
    assert list(knn.neighbours[knn.indptr[2] : knn.indptr[3]]) == [3]
    assert np.all(np.diff(knn.indptr) <= 1)


def test_build_baseline_reads_options_and_rejects_unknown_names():
    scorer, _ = build_baseline("itemknn", TRAIN, VOCAB.n_items, neighbors=1, **{"lambda": 1.0})
    assert np.all(np.diff(scorer.indptr) <= 1)
    with pytest.raises(ConfigError, match="unknown baseline"):
        build_baseline("bpr", TRAIN, VOCAB.n_items)
    with pytest.raises(ConfigError, match="neighbors"):
        build_baseline("itemknn", TRAIN, VOCAB.n_items, neighbors=0)
    with pytest.raises(ConfigError, match="unknown settings"):
        build_baseline("itemknn", TRAIN, VOCAB.n_items, neighbours=3)


class StandInOracle:
    """Process items 103, 999 (not in the vocabulary) and 100; row j depends on the last item."""

    item_ids = np.array([103, 999, 100], dtype=np.int64)

    def __init__(self):
        self.calls = []

    def next_item_probs(self, item_ids, times):
        self.calls.append((np.asarray(item_ids).copy(), np.asarray(times).copy()))
        rows = np.zeros((len(item_ids), 3))
        rows[:, 0] = 0.5
        rows[:, 1] = 0.3
        rows[:, 2] = np.where(np.asarray(item_ids) == 100, 0.1, 0.2)
        return rows


def test_oracle_scorer_maps_process_columns_to_vocabulary_indices():
    oracle = StandInOracle()
    scorer = OracleScorer(oracle, VOCAB)
    rows = scorer.session_scores(np.array([0, 2, 3]), np.array([5.0, 6.0, 7.0]))
    # the oracle sees item ids and times, not vocabulary indices
    assert oracle.calls[0][0].tolist() == [100, 102, 103] and oracle.calls[0][1].tolist() == [5.0, 6.0, 7.0]
    # columns: 103 -> index 3, 999 dropped, 100 -> index 0; items the process never emits score 0
    assert rows.tolist() == [[0.1, 0, 0, 0.5], [0.2, 0, 0, 0.5]]


def test_oracle_is_evaluated_like_any_scorer():
    scorer = OracleScorer(StandInOracle(), VOCAB)
    metrics = evaluate_scorer(
        scorer, session_arrays([[1, 3], [1, 0], [0, 2]]), 4, cutoffs=[1, 2], tie_mode="conservative", progress=False
    )
    # 1 -> 3: rank 1; 1 -> 0: rank 2; 0 -> 2: score 0 ties with item 1 (conservative) -> rank 4
    assert metrics["recall"] == pytest.approx({"1": 1 / 3, "2": 2 / 3})
    assert metrics["mrr"] == pytest.approx({"1": 1 / 3, "2": 1.5 / 3})


def test_baseline_command_writes_what_the_workflow_writes(tmp_path, capsys):
    TRAIN.save(tmp_path / "train.npz")
    session_arrays([[0, 1], [2, 3]]).save(tmp_path / "eval.npz")
    VOCAB.save(tmp_path / "vocab.parquet")
    files = ["--train", "train.npz", "--eval", "eval.npz", "--vocab", "vocab.parquet"]
    outputs = ["--recall", "recall.txt", "--metrics", "metrics.json"]
    argv = ["baseline", "itemknn", *files, *outputs, "--cutoffs", "1"]
    assert main([arg if arg.startswith("-") or "." not in arg else str(tmp_path / arg) for arg in argv]) == 0
    assert (tmp_path / "recall.txt").read_text().splitlines()[-1] == "MRR@1: 1.0000"
    assert "Recall@1: 1.0000" in capsys.readouterr().out
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["kind"] == "baseline" and record["hyperparameters"] == {"neighbors": 100, "lambda": 20.0}
    assert {"provenance", "timings"} <= set(record) and record["provenance"]["config_sha256"]
