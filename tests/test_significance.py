"""Per-event ranks, beyond-accuracy metrics and the paired significance table."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import torch

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.evaluation.event_ranks import (
    EventRanks,
    RankCollector,
    check_comparable,
    per_event_values,
    prediction_positions,
)
from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model
from gru4rec_pipeline.evaluation.ranking import metrics_from_ranks
from gru4rec_pipeline.evaluation.significance import (
    bootstrap_means,
    compare_models,
    event_block,
    holm_adjust,
    mcnemar_exact,
    seed_block,
)
from test_evaluation import TinyGRU, session_arrays

pytestmark = pytest.mark.usefixtures("one_thread")

SESSIONS = [[0, 3, 5, 2], [7], [1, 1, 4], [6, 2, 9, 9, 3], [8, 0]]


def brute_force_metrics(model, arrays, support, k):
    """Top-k lists, target ranks in split order, coverage and popularity, one event at a time."""
    weights, bias = (tensor.detach().double() for tensor in model.output_weights())
    popularity = support / support.max()
    ranks, lists = [], []
    for s in range(arrays.n_sessions):
        session = arrays.session(s)
        state = model.init_state(1)
        for j in range(len(session) - 1):
            hidden, state = model.step(torch.tensor([session[j]]), state)
            scores = (hidden.double() @ weights.T + bias)[0]
            ranks.append(1 + int((scores > scores[session[j + 1]]).sum()))
            lists.append(torch.argsort(scores, descending=True)[:k].numpy())
    lists = np.array(lists)
    coverage = len(np.unique(lists)) / len(support)
    return np.array(ranks, dtype=float), coverage, popularity[lists].mean(1).mean()


def test_ranks_in_split_order_coverage_and_popularity_equal_a_brute_force_computation():
    model = TinyGRU(10, seed=3)
    arrays = session_arrays(SESSIONS)
    support = np.array([5, 1, 3, 8, 2, 2, 7, 1, 4, 6], dtype=np.int64)
    collector = RankCollector(arrays, 3)
    metrics = evaluate_model(
        model, arrays, cutoffs=[1, 3], batch_size=2, progress=False, item_support=support, ranks_out=collector
    )
    ranks, coverage, popularity = brute_force_metrics(model, arrays, support, 3)
    expected = np.where(ranks <= 3, ranks, np.inf)
    np.testing.assert_array_equal(collector.result().ranks, expected)
    assert metrics["coverage"]["3"] == pytest.approx(coverage)
    assert metrics["popularity"]["3"] == pytest.approx(popularity)
    assert len(prediction_positions(arrays)) == metrics["events"] == 10


def save_evaluation(folder, name, ranks: EventRanks, tie_mode="conservative", **changed) -> dict:
    """What an evaluation writes: ``{name}.ranks.npz`` and the metrics file ``{name}.json`` they agree with."""
    ranks.save(folder / f"{name}.ranks.npz")
    metrics = {**metrics_from_ranks(ranks.ranks, cutoffs=[1, 5, 20]), "tie_mode": tie_mode, **changed}
    (folder / f"{name}.json").write_text(json.dumps(metrics))
    return {"ranks_paths": {name: folder / f"{name}.ranks.npz"}, "model_metrics": {name: folder / f"{name}.json"}}


def compare_saved(folder, *evaluations: dict, cutoff: int = 20, **options):
    ranks_paths = {name: path for e in evaluations for name, path in e["ranks_paths"].items()}
    model_metrics = {name: path for e in evaluations for name, path in e["model_metrics"].items()}
    return compare_models(ranks_paths, folder / "s.tsv", cutoff, model_metrics=model_metrics, **options)


def test_ranks_file_round_trip_and_refusal_of_another_split(tmp_path):
    a = save_evaluation(tmp_path, "a", EventRanks(np.array([1.0, np.inf, 3.0]), "a" * 64, 20))
    b = save_evaluation(tmp_path, "b", EventRanks(np.array([2.0, 1.0, 5.0]), "b" * 64, 20))
    loaded = EventRanks.load(tmp_path / "a.ranks.npz")
    assert loaded.ranks.tolist() == [1.0, np.inf, 3.0] and loaded.largest_cutoff == 20
    with pytest.raises(DataFormatError, match=r"a\.ranks\.npz.*split") as error:
        compare_saved(tmp_path, a, b)
    assert "b.ranks.npz" in str(error.value)
    assert not (tmp_path / "s.tsv").exists()


def test_a_truncated_ranks_file_is_called_truncated_not_another_split(tmp_path):
    full = EventRanks(np.array([1.0, 2.0, np.inf, 4.0]), "f" * 64, 20)
    a = save_evaluation(tmp_path, "a", full)
    # the same split's ranks, cut short, and the metrics file of the full evaluation beside them
    b = save_evaluation(tmp_path, "b", full)
    EventRanks(full.ranks[:3], full.split_fingerprint, 20).save(tmp_path / "b.ranks.npz")
    with pytest.raises(DataFormatError, match=r"b\.ranks\.npz.*3 ranks.*b\.json counts 4 events.*truncated"):
        compare_saved(tmp_path, a, b)
    # without the metrics file's count, the two files of one split still say which is which
    with pytest.raises(DataFormatError, match=r"b\.ranks\.npz.*3 ranks.*4.*same split.*truncated"):
        check_comparable(full, "a.ranks.npz", EventRanks(full.ranks[:3], full.split_fingerprint, 20), "b.ranks.npz", 20)
    assert not (tmp_path / "s.tsv").exists()


def test_ranks_that_contradict_their_metrics_file_are_refused(tmp_path):
    ranks = EventRanks(np.array([1.0, 2.0, np.inf, 4.0]), "f" * 64, 20)
    a = save_evaluation(tmp_path, "a", ranks)
    b = save_evaluation(tmp_path, "b", ranks, recall={"1": 0.25, "5": 0.5, "20": 0.5})  # not the 0.75 of its ranks
    with pytest.raises(DataFormatError, match=r"b\.ranks\.npz.*recall@5 0\.750000.*b\.json says 0\.500000"):
        compare_saved(tmp_path, a, b)
    c = save_evaluation(tmp_path, "c", ranks, tie_mode="standard")
    with pytest.raises(DataFormatError, match=r"c\.json.*tie mode standard.*a\.json in conservative"):
        compare_saved(tmp_path, a, c)
    assert not (tmp_path / "s.tsv").exists()
    e = save_evaluation(tmp_path, "e", ranks, ndcg={"1": 0.25, "5": 0.25, "20": 0.25})  # not its ranks' NDCG
    with pytest.raises(DataFormatError, match=r"e\.ranks\.npz.*ndcg@5 0\.5[0-9]+.*e\.json says 0\.250000"):
        compare_saved(tmp_path, a, e)
    assert len(compare_saved(tmp_path, a, save_evaluation(tmp_path, "d", ranks))) == 2 * 3


def test_a_model_compared_with_itself_differs_by_zero_with_p_one():
    ranks = EventRanks(np.random.default_rng(0).integers(1, 40, 500).astype(float), "f", 20)
    rows = event_block(["same"], [ranks], 20, 200, seed=1)
    assert [row["metric"] for row in rows] == ["recall@20", "mrr@20", "ndcg@20"]
    for row in rows:
        assert row["difference"] == 0.0 and row["p_value"] == 1.0
        assert row["ci_low"] == row["ci_high"] == 0.0


def test_bootstrap_interval_of_a_planted_difference_covers_it():
    """Two models whose hit probabilities differ by 0.05: the 95% interval covers the true 0.05 in >= 90 of 100
    seeded trials."""
    covered = 0
    for trial in range(100):
        rng = np.random.default_rng(trial)
        base = rng.random(2000)
        hits_a, hits_b = base < 0.55, base < 0.50  # paired: b hits a subset of a's events
        ranks = [np.where(hits, 1.0, np.inf) for hits in (hits_a, hits_b)]
        rows = event_block(["a", "b"], [EventRanks(r, "f", 20) for r in ranks], 20, 500, seed=trial)
        recall = next(row for row in rows if row["model_a"] == "a" and row["metric"] == "recall@20")
        covered += recall["ci_low"] <= 0.05 <= recall["ci_high"]
    assert covered >= 90


def test_ndcg_rows_pair_the_per_event_discounted_gains():
    """NDCG@k is compared like MRR@k: the difference of the two models' NDCG@k, its bootstrap interval, and the
    Wilcoxon signed-rank test on the per-event gains 1 / log2(rank + 1) (0 beyond k)."""
    rng = np.random.default_rng(2)
    better = rng.integers(1, 8, 400).astype(float)
    worse = np.where(rng.random(400) < 0.5, better + rng.integers(1, 6, 400), better)
    ranks = [EventRanks(np.where(r <= 10, r, np.inf), "f", 10) for r in (better, worse)]
    rows = event_block(["better", "worse"], ranks, 10, 300, seed=4)
    ndcg = next(row for row in rows if row["model_a"] == "better" and row["metric"] == "ndcg@10")
    expected = [metrics_from_ranks(r.ranks, cutoffs=[10])["ndcg"]["10"] for r in ranks]
    assert ndcg["difference"] == pytest.approx(expected[0] - expected[1])
    assert ndcg["test"] == "wilcoxon" and ndcg["p_value"] < 1e-6
    assert 0 < ndcg["ci_low"] < ndcg["difference"] < ndcg["ci_high"]
    gains = [np.where(r.ranks <= 10, 1 / np.log2(r.ranks + 1), 0.0) for r in ranks]
    assert per_event_values(ranks[1].ranks, "ndcg", 10) == pytest.approx(gains[1])


def test_seed_comparisons_leave_out_a_metric_that_a_run_did_not_measure():
    runs = {
        name: [
            {"recall": {"20": 0.5 + 0.01 * i}, "mrr": {"20": 0.2 + 0.01 * i}, "ndcg": {"20": 0.3 + 0.02 * i}}
            for i in range(3)
        ]
        for name in ("a", "b")
    }
    assert {row["metric"] for row in seed_block(runs, 20)} == {"recall@20", "mrr@20", "ndcg@20"}
    del runs["b"][1]["ndcg"]  # a metrics file written before NDCG was measured
    assert {row["metric"] for row in seed_block(runs, 20)} == {"recall@20", "mrr@20"}


def test_bootstrap_means_resample_events_with_replacement():
    values = np.arange(10, dtype=float)[:, None]
    means = bootstrap_means(values, 1000, seed=3)
    assert means.shape == (1000, 1)
    assert means.mean() == pytest.approx(4.5, abs=0.1)
    assert means.std() == pytest.approx(values.std() / np.sqrt(10), rel=0.1)
    np.testing.assert_array_equal(means, bootstrap_means(values, 1000, seed=3))


def test_mcnemar_and_holm():
    hits_a = np.array([True] * 10 + [False] * 5)
    hits_b = np.array([False] * 10 + [False] * 5)
    assert mcnemar_exact(hits_a, hits_b) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(hits_a, hits_a) == 1.0
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.5]), [0.04, 0.09, 0.09, 0.5])


def test_comparison_table_rows_columns_and_speed(tmp_path):
    """Ten models on 15,000 events with 1,000 resamples: every ordered pair per metric, well under 30 s."""
    rng = np.random.default_rng(5)
    paths = {}
    for m in range(10):
        ranks = rng.integers(1, 60 + 10 * m, 15000).astype(float)
        paths[f"m{m}"] = save_evaluation(
            tmp_path, f"m{m}", EventRanks(np.where(ranks <= 20, ranks, np.inf), "same", 20)
        )
    started = time.perf_counter()
    table = compare_saved(tmp_path, *paths.values())
    assert time.perf_counter() - started < 30
    written = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert list(written.columns[:3]) == ["model_a", "model_b", "metric"]
    assert {"difference", "ci_low", "ci_high", "p_value", "p_adjusted"} <= set(written.columns)
    assert len(written) == len(table) == 10 * 9 * 3
    assert (written["p_adjusted"] >= written["p_value"]).all()
    best_against_worst = written[(written.model_a == "m0") & (written.model_b == "m9") & (written.metric == "mrr@20")]
    assert best_against_worst["difference"].item() > 0 and best_against_worst["p_adjusted"].item() < 0.05


def test_holm_adjusts_each_metric_as_a_family_of_its_own(tmp_path):
    """Adding a metric (NDCG beside recall and MRR) must not raise another metric's adjusted p-values."""
    rng = np.random.default_rng(11)
    paths = [
        save_evaluation(tmp_path, f"m{m}", EventRanks(np.where(r <= 20, r, np.inf), "same", 20))
        for m, r in enumerate(rng.integers(1, 40 + 15 * m, 3000).astype(float) for m in range(4))
    ]
    table = compare_saved(tmp_path, *paths)
    for metric, rows in table.groupby("metric"):
        np.testing.assert_allclose(rows["p_adjusted"], holm_adjust(rows["p_value"].to_numpy()), err_msg=metric)
