"""SKNN, V-SKNN and STAN against plain-Python statements of their formulas on small random splits."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.evaluation.baselines import build_baseline
from gru4rec_pipeline.evaluation.knn import SessionKNN
from gru4rec_pipeline.evaluation.ranking import rank_dense
from gru4rec_pipeline.evaluation.scorer_evaluation import evaluate_scorer
from gru4rec_pipeline.names import SESSION_KNN_DEFAULTS

pytestmark = pytest.mark.usefixtures("one_thread")

N_ITEMS = 12


def random_split(seed: int, n_sessions: int, tied_times: bool = False) -> SessionArrays:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 7, n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = rng.integers(0, N_ITEMS, offsets[-1]).astype(np.int64)
    steps = rng.integers(0, 3, offsets[-1]) if tied_times else rng.random(offsets[-1]) * 5000.0 + 1.0
    times = np.cumsum(steps).astype(np.float64)
    return SessionArrays(offsets, items, times, np.arange(n_sessions, dtype=np.int64))


def sessions_of(arrays: SessionArrays) -> list[tuple[list[int], list[float]]]:
    return [
        (arrays.items[a:b].tolist(), arrays.times[a:b].tolist())
        for a, b in zip(arrays.offsets[:-1], arrays.offsets[1:])
    ]


def position_weight(mode: str, position: int, length: int) -> float:
    return {
        "same": 1.0,
        "div": position / length,
        "log": 1.0 / math.log10(length - position + 1.7),
        "quadratic": (position / length) ** 2,
    }[mode]


def distance_decay(mode: str, distance: int) -> float:
    return {"same": 1.0, "div": 1 / distance, "log": 1 / math.log10(distance + 1.7), "quadratic": 1 / distance**2}[mode]


def brute_force_scores(method: str, train: SessionArrays, items, times, settings) -> np.ndarray:
    """The formulas of knn.py's docstring, one training session at a time."""
    training = sessions_of(train)
    last_time = [t[-1] for _, t in training]
    # most recent last click first; ties: the later session first
    recency = sorted(range(len(training)), key=lambda s: (-last_time[s], -s))
    rows = []
    for j in range(len(items) - 1):
        current = items[: j + 1]
        length = j + 1
        current_set = list(dict.fromkeys(current))  # distinct, in order of first click
        last_pos = {item: p + 1 for p, item in enumerate(current)}
        sample = [s for s in recency if set(current_set) & set(training[s][0])][: settings["sample_size"]]
        if method == "vsknn":
            weight = {i: position_weight(settings["weighting"], last_pos[i], length) for i in current_set}
        elif method == "stan":
            weight = {i: math.exp((last_pos[i] - length) / settings["lambda_spw"]) for i in current_set}
        candidates = []
        for s in sample:
            neighbour = set(training[s][0])
            shared = [i for i in current_set if i in neighbour]  # in order of first click, as summed
            if method == "sknn":
                mode = settings["similarity"]
                if mode == "jaccard":
                    value = len(shared) / len(set(current_set) | neighbour)
                elif mode == "cosine":
                    value = len(shared) / math.sqrt(len(current_set) * len(neighbour))
                else:
                    value = len(shared) * math.sqrt(len(current_set)) / math.sqrt(len(neighbour))
            elif method == "vsknn":
                value = sum(weight[i] for i in shared) / len(current_set)
            else:
                norm = math.sqrt(sum(w * w for w in weight.values()))
                value = sum(weight[i] for i in shared) / (norm * math.sqrt(len(neighbour)))
                value *= math.exp(-(times[j] - last_time[s]) / (settings["lambda_snh"] * 86400.0))
            if method == "stan" or value > 0:
                candidates.append((s, value))
        # k largest similarities; ties: the more recent session
        neighbours = sorted(candidates, key=lambda c: -c[1])[: settings["k"]]
        # summed in recency order, as the compiled code sums, so that equal scores stay equal
        neighbours.sort(key=lambda c: recency.index(c[0]))
        row = np.zeros(N_ITEMS)
        for s, value in neighbours:
            sequence = training[s][0]
            if method == "stan":
                star = max(p for p, i in enumerate(sequence) if i in current_set)
                last_in_neighbour = {i: p for p, i in enumerate(sequence)}
                for i, p in last_in_neighbour.items():
                    row[i] += value * math.exp(-abs(p - star) / settings["lambda_inh"])
            else:
                gain = value
                if method == "vsknn":
                    distance = length - max(last_pos[i] for i in set(sequence) & set(current_set)) + 1
                    gain *= distance_decay(settings["weighting_score"], distance)
                for i in set(sequence):
                    row[i] += gain
        rows.append(row)
    return np.array(rows).reshape(len(items) - 1, N_ITEMS)


SETTINGS = [
    ("sknn", {"k": 3, "sample_size": 6, "similarity": "jaccard"}),
    ("sknn", {"k": 4, "sample_size": 4, "similarity": "cosine"}),
    ("sknn", {"k": 2, "sample_size": 50, "similarity": "cosine_session_rec"}),
    ("vsknn", {"k": 3, "sample_size": 7, "weighting": "quadratic", "weighting_score": "quadratic"}),
    ("vsknn", {"k": 5, "sample_size": 8, "weighting": "div", "weighting_score": "div"}),
    ("vsknn", {"k": 2, "sample_size": 5, "weighting": "log", "weighting_score": "same"}),
    ("stan", {"k": 3, "sample_size": 6, "lambda_spw": 1.02, "lambda_snh": 0.02, "lambda_inh": 2.05}),
    ("stan", {"k": 6, "sample_size": 9, "lambda_spw": 1e-05, "lambda_snh": 10.0, "lambda_inh": 2.0}),
]


@pytest.mark.parametrize("tied_times", [False, True])
@pytest.mark.parametrize("method, settings", SETTINGS)
def test_scores_and_ranks_match_the_brute_force_formula(method, settings, tied_times):
    train = random_split(1, 40, tied_times)
    test = random_split(2, 12, tied_times)
    scorer, _ = build_baseline(method, train, N_ITEMS, **settings)
    compared = 0
    for items, times in sessions_of(test):
        if len(items) < 2:
            continue
        expected = brute_force_scores(method, train, items, times, settings)
        got = scorer.session_scores(np.array(items), np.array(times))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
        targets = np.array(items[1:])
        assert rank_dense(got, targets).tolist() == rank_dense(expected, targets).tolist()
        compared += len(items) - 1
    assert compared > 20


def test_the_sample_keeps_only_the_most_recent_sessions():
    # three training sessions share item 0; with sample_size 2 the oldest (which alone holds item 3) is left out
    offsets = np.array([0, 2, 4, 6], dtype=np.int64)
    train = SessionArrays(
        offsets, np.array([0, 3, 0, 1, 0, 2]), np.array([1.0, 2, 3, 4, 5, 6]), np.arange(3, dtype=np.int64)
    )
    scorer = SessionKNN.fit("sknn", train, 4, k=2, sample_size=2, similarity="cosine")
    row = scorer.session_scores(np.array([0, 1]), np.array([7.0, 8.0]))[0]
    assert row[3] == 0 and row[1] > 0 and row[2] > 0


def test_evaluates_like_any_scorer():
    train = random_split(3, 60)
    test = random_split(4, 20)
    for method, defaults in SESSION_KNN_DEFAULTS.items():
        settings = {**defaults, "k": 5, "sample_size": 20}
        scorer, _ = build_baseline(method, train, N_ITEMS, **settings)
        metrics = evaluate_scorer(scorer, test, N_ITEMS, cutoffs=[1, 5], progress=False)
        assert 0 < metrics["recall"]["5"] <= 1 and metrics["events"] > 0


@pytest.mark.parametrize(
    "method, options, key",
    [
        ("sknn", {"k": 20, "sample_size": 10}, "baselines.sknn.k"),
        ("vsknn", {"sample_size": 0}, "baselines.vsknn.sample_size"),
        ("sknn", {"similarity": "dice"}, "baselines.sknn.similarity"),
        ("vsknn", {"weighting": "linear"}, "baselines.vsknn.weighting"),
        ("stan", {"lambda_inh": 0}, "baselines.stan.lambda_inh"),
        ("stan", {"neighbors": 3}, "baselines.stan"),
    ],
)
def test_bad_settings_name_the_key(method, options, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_baseline(method, random_split(1, 5), N_ITEMS, **options)


def test_baseline_command_passes_the_settings_given(tmp_path):
    train, test = random_split(5, 40), random_split(6, 10)
    train.save(tmp_path / "train.npz")
    test.save(tmp_path / "eval.npz")
    Vocabulary(np.arange(N_ITEMS) + 100, np.bincount(train.items, minlength=N_ITEMS)).save(tmp_path / "vocab.parquet")
    files = [f"--{kind}={tmp_path / name}" for kind, name in (("train", "train.npz"), ("eval", "eval.npz"))]
    files += [
        f"--vocab={tmp_path / 'vocab.parquet'}",
        f"--recall={tmp_path / 'r.txt'}",
        f"--metrics={tmp_path / 'm.json'}",
    ]
    assert main(["baseline", "vsknn", *files, "--k", "4", "--sample-size", "9", "--weighting", "div"]) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["hyperparameters"] == {"k": 4, "sample_size": 9, "weighting": "div"}
    expected = evaluate_scorer(
        SessionKNN.fit("vsknn", train, N_ITEMS, k=4, sample_size=9, weighting="div"), test, N_ITEMS, progress=False
    )
    assert f"Recall@20: {expected['recall']['20']:.4f}" in (tmp_path / "r.txt").read_text()


@pytest.mark.parametrize(
    "method, ties", [("sknn", "recency"), ("vsknn", "recency"), ("vsknn", "session_rec"), ("stan", "recency")]
)
def test_a_sample_size_beyond_the_training_sessions_scores_like_all_of_them(method, ties):
    # 10**12 sessions would be 8 TB per buffer: the sample never holds more than the 30 training sessions
    train, test = random_split(7, 30, tied_times=True), random_split(8, 6)
    extra = {"ties": ties} if method == "vsknn" else {}
    every = SessionKNN.fit(method, train, N_ITEMS, k=5, sample_size=30, **extra)
    beyond = SessionKNN.fit(method, train, N_ITEMS, k=5, sample_size=10**12, **extra)
    for items, times in sessions_of(test):
        if len(items) > 1:
            np.testing.assert_array_equal(
                beyond.session_scores(np.array(items), np.array(times)),
                every.session_scores(np.array(items), np.array(times)),
            )
    assert beyond.settings["sample_size"] == 10**12  # the setting as configured, for the metrics record


def test_fitting_compiles_the_kernels_before_the_evaluation_times_its_first_session(tmp_path):
    """In a fresh process, the kernels are ready once the baseline is fitted: the evaluation's progress rate never
    reads as a few events a second while they compile."""
    script = """
import sys
import numpy as np
sys.path.insert(0, "tests")
from test_knn import random_split
from gru4rec_pipeline.evaluation import knn
assert not knn._session_scores.signatures
knn.SessionKNN.fit(sys.argv[1], random_split(1, 20), 12, k=3, sample_size=5)
assert knn._session_scores.signatures, "not compiled by fit"
"""
    root = Path(__file__).resolve().parents[1]
    for method in ("sknn", "stan"):
        result = subprocess.run(
            [sys.executable, "-c", script, method], cwd=root, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
