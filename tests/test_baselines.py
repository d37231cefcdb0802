"""Baselines on hand-made sessions: popularity order, S-POP, item-kNN similarities, the oracle adapter."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError, PipelineError
from gru4rec_pipeline.evaluation.baselines import (
    ItemKNN,
    OracleScorer,
    SessionPopular,
    build_baseline,
    cooccurrence_counts,
)
from gru4rec_pipeline.evaluation.scorer_evaluation import evaluate_scorer
from gru4rec_pipeline.names import SESSION_KNN_DEFAULTS

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
    # 1 -> 3: rank 1; 1 -> 0: rank 2; 0 -> 2: score 0, an item the process never emits -> a miss
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
    assert (tmp_path / "recall.txt").read_text().splitlines()[-2:] == ["MRR@1: 1.0000", "NDCG@1: 1.0000"]
    assert "Recall@1: 1.0000" in capsys.readouterr().out
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["kind"] == "baseline" and record["hyperparameters"] == {"neighbors": 100, "lambda": 20.0}
    assert {"provenance", "timings"} <= set(record) and record["provenance"]["config_sha256"]


# ----------------------------------------------------------------------------- ties and unscored targets


class ScoresNothing:
    """Leaves every item at its ``no_score``: whatever ranks the ties give, it recommends nothing."""

    no_score = 0.0

    def session_scores(self, items, times):
        return np.zeros((len(items) - 1, 4))


@pytest.mark.parametrize("tie_mode", ["standard", "conservative", "median"])
def test_a_scorer_that_scores_nothing_hits_nothing(tie_mode):
    metrics = evaluate_scorer(ScoresNothing(), session_arrays([[0, 1, 2], [3, 0]]), 4, [1, 20], tie_mode, False)
    assert metrics["recall"] == {"1": 0.0, "20": 0.0} and metrics["mrr"] == {"1": 0.0, "20": 0.0}
    assert metrics["unscored_targets"] == 1.0 and metrics["tie_dependent_events"] == {"1": 0.0, "20": 0.0}


@pytest.mark.parametrize("name", ["pop", "spop", "itemknn", "sknn", "vsknn", "stan"])
def test_every_baseline_gives_an_item_it_did_not_score_its_no_score(name):
    # item 4 has no training event and no co-occurrence: no baseline has evidence for it
    scorer, _ = build_baseline(name, TRAIN, 5, **({"k": 2, "sample_size": 4} if name in SESSION_KNN_DEFAULTS else {}))
    rows = scorer.session_scores(np.array([0, 1, 2]), np.array([100.0, 110.0, 120.0]))
    assert (rows[:, 4] == scorer.no_score).all() and (rows[:, :4] != scorer.no_score).any()


def baseline_files(tmp_path, eval_sessions) -> list[str]:
    TRAIN.save(tmp_path / "train.npz")
    session_arrays(eval_sessions).save(tmp_path / "eval.npz")
    VOCAB.save(tmp_path / "vocab.parquet")
    return [
        *("--train", str(tmp_path / "train.npz"), "--eval", str(tmp_path / "eval.npz")),
        *("--vocab", str(tmp_path / "vocab.parquet"), "--recall", str(tmp_path / "recall.txt")),
        *("--metrics", str(tmp_path / "m.json")),
    ]


@pytest.mark.parametrize("tie_mode", ["standard", "conservative", "median"])
def test_one_neighbour_sknn_gets_no_hit_for_a_target_it_never_scored(tmp_path, tie_mode):
    # The one neighbour of [0] (the latest training session with item 0) is [0, 0, 1]: it scores items 0 and 1
    # alike. 0 -> 1: tied with item 0 (rank 1, 2 or 1.5 by the tie mode); 0 -> 3: never scored, a miss.
    files = baseline_files(tmp_path, [[0, 1], [0, 3]])
    argv = [
        "baseline",
        "sknn",
        *files,
        "--k",
        "1",
        "--sample-size",
        "1",
        "--cutoffs",
        "1",
        "20",
        "--tie-mode",
        tie_mode,
    ]
    assert main(argv) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["recall"]["20"] == 0.5 and record["unscored_targets"] == 0.5
    assert record["recall"]["1"] == {"standard": 0.5, "conservative": 0.0, "median": 0.0}[tie_mode]
    # the hit at 1 in the standard mode is one that the tie decided; whether 0 -> 1 is a hit at 1 depends on it
    assert record["tie_decided_hits"] == {"1": 1.0 if tie_mode == "standard" else 0.0, "20": 0.0}
    assert record["tie_dependent_events"] == {"1": 0.5, "20": 0.0}
    decided = (
        "# Decided by ties in mode standard (misses when tied items rank first): 100.0% of hits@1, 0.0% of hits@20"
    )
    assert (decided in (tmp_path / "recall.txt").read_text()) == (tie_mode == "standard")


def test_the_default_tie_mode_is_conservative(tmp_path):
    assert main(["baseline", "sknn", *baseline_files(tmp_path, [[0, 1]]), "--k", "1", "--sample-size", "1"]) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["tie_mode"] == "conservative" and record["recall"]["1"] == 0.0 and record["recall"]["5"] == 1.0


def test_nan_scores_are_refused_naming_the_scorer_and_session():
    class Diverged(ScoresNothing):
        def session_scores(self, items, times):
            return np.full((len(items) - 1, 4), np.nan)

    with pytest.raises(PipelineError, match="Diverged gave NaN scores for session 1"):
        evaluate_scorer(Diverged(), session_arrays([[0], [3, 0]]), 4, [1], progress=False)


def test_scores_of_the_wrong_shape_are_refused_naming_the_scorer_and_session():
    class Misshapen(ScoresNothing):
        def session_scores(self, items, times):
            return np.zeros((len(items) - 1, 3))  # one item short

    with pytest.raises(PipelineError, match=r"Misshapen gave scores of shape \(1, 3\) for session 1.*\(1, 4\)"):
        evaluate_scorer(Misshapen(), session_arrays([[0], [3, 0]]), 4, [1], progress=False)
