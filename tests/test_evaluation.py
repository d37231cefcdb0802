"""Next-item evaluation: tie modes, metrics, session-parallel model runs, exact fast ranking."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.evaluation.metrics import format_recall_text, write_metrics_json, write_recall_txt
from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model
from gru4rec_pipeline.evaluation.output_ranking import (
    CertifiedRanker,
    rank_outputs_brute_force,
    rank_outputs_certified,
)
from gru4rec_pipeline.evaluation.ranking import (
    MetricAccumulator,
    count_dense,
    metrics_from_ranks,
    rank_dense,
)
from gru4rec_pipeline.evaluation.scorer_evaluation import evaluate_scorer

# Tiny tensors: a second torch thread only adds synchronisation (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


class TinyGRU(torch.nn.Module):
    """Stand-in with the model's evaluation interface: init_state, step, output_weights, n_items."""

    def __init__(self, n_items: int, hidden: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.n_items = n_items
        self.embedding = torch.nn.Embedding(n_items, hidden)
        self.cell = torch.nn.GRUCell(hidden, hidden)
        self.output = torch.nn.Linear(hidden, n_items)

    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        return [torch.zeros(batch_size, self.cell.hidden_size)]

    def step(self, inputs: torch.Tensor, state: list[torch.Tensor]):
        hidden = self.cell(self.embedding(inputs), state[0])
        return hidden, [hidden]

    def output_weights(self):
        return self.output.weight, self.output.bias


def session_arrays(sessions: list[list[int]]) -> SessionArrays:
    lengths = [len(s) for s in sessions]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.array([i for s in sessions for i in s], dtype=np.int64)
    return SessionArrays(
        offsets, items, np.arange(len(items), dtype=np.float64), np.arange(len(sessions), dtype=np.int64)
    )


# ----------------------------------------------------------------------------- ranks and metrics


def test_tie_modes_on_hand_computed_ranks():
    scores = np.array(
        [
            [0.5, 0.9, 0.5, 0.5, 0.1],  # target 0: one above, two tied
            [0.5, 0.9, 0.5, 0.5, 0.1],  # target 1: the best, no ties
            [1.0, 1.0, 1.0, 1.0, 1.0],  # target 4: everything tied
        ]
    )
    targets = np.array([0, 1, 4])
    assert rank_dense(scores, targets, "standard").tolist() == [2.0, 1.0, 1.0]
    assert rank_dense(scores, targets, "conservative").tolist() == [4.0, 1.0, 5.0]
    assert rank_dense(scores, targets, "median").tolist() == [3.0, 1.0, 3.0]
    with pytest.raises(ConfigError, match="tie_mode"):
        rank_dense(scores, targets, "optimistic")


def test_recall_and_mrr_from_ranks():
    metrics = metrics_from_ranks([1.0, 3.0, 2.5, 21.0, math.inf], cutoffs=[1, 3, 20])
    assert metrics["events"] == 5
    assert metrics["recall"] == pytest.approx({"1": 1 / 5, "3": 3 / 5, "20": 3 / 5})
    assert metrics["mrr"] == pytest.approx(
        {"1": 1 / 5, "3": (1 + 1 / 3 + 1 / 2.5) / 5, "20": (1 + 1 / 3 + 1 / 2.5) / 5}
    )


def test_ndcg_of_one_relevant_item_is_its_discounted_gain_inside_the_cutoff():
    """NDCG@k of next-item events: 1 / log2(rank + 1) for a rank within k, 0 beyond it and for an unscored
    target (rank inf); the ideal DCG of one relevant item is 1."""
    metrics = metrics_from_ranks([1.0, 3.0, 2.5, 21.0, math.inf], cutoffs=[1, 3, 20])
    gain = {1.0: 1.0, 3.0: 0.5, 2.5: 1 / math.log2(3.5)}
    assert metrics["ndcg"] == pytest.approx({"1": 1 / 5, "3": sum(gain.values()) / 5, "20": sum(gain.values()) / 5})
    # ranks come from the tie mode: the conservative rank of a target tied with two items is 1 + higher + 2
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1], [0.5, 0.9, 0.5, 0.5, 0.1]])
    accumulator = MetricAccumulator(cutoffs=[5])
    accumulator.add_counts(*count_dense(scores, np.array([0, 1])))
    assert accumulator.result()["ndcg"]["5"] == pytest.approx((1 / math.log2(5) + 1.0) / 2)
    unscored = MetricAccumulator(cutoffs=[5])
    unscored.add_counts(*count_dense(scores, np.array([0, 1]), no_score=0.5))
    assert unscored.result()["ndcg"]["5"] == pytest.approx(1.0 / 2)
    assert unscored.result()["recall"]["5"] == pytest.approx(1 / 2)


# ----------------------------------------------------------------------------- exact ranking of model outputs


def adversarial_cases():
    generator = torch.Generator().manual_seed(3)
    cases = {}
    # random real-valued parameters
    cases["random"] = (torch.randn(500, 6, generator=generator), torch.randn(500, generator=generator))
    # small integers: many exactly tied scores, computed exactly in any summation order
    cases["integer ties"] = (
        torch.randint(-1, 2, (400, 3), generator=generator).float(),
        torch.randint(-1, 2, (400,), generator=generator).float(),
    )
    cases["all equal"] = (torch.zeros(300, 4), torch.full((300,), 0.25))
    duplicated = torch.randn(20, 5, generator=generator)
    cases["duplicated items"] = (duplicated.repeat(15, 1) * 0.5, torch.zeros(300))
    return cases


@pytest.mark.parametrize("case", list(adversarial_cases()))
@pytest.mark.parametrize("tie_mode", ["standard", "conservative", "median"])
def test_fast_ranking_equals_brute_force(case, tie_mode):
    weights, bias = adversarial_cases()[case]
    n_items, dim = weights.shape
    generator = torch.Generator().manual_seed(5)
    hidden = torch.randint(-2, 3, (700, dim), generator=generator).float()
    if case == "random":
        hidden = torch.randn(700, dim, generator=generator)
    targets = torch.randint(0, n_items, (700,), generator=generator)
    # make some targets the best-scoring item
    best = torch.addmm(bias, hidden, weights.T).argmax(1)
    targets[::3] = best[::3]
    scores = (hidden.double() @ weights.double().T + bias.double()).numpy()
    reference = rank_dense(scores, targets.numpy(), tie_mode)
    assert torch.equal(rank_outputs_brute_force(hidden, targets, weights, bias, tie_mode, chunk=128), reference)
    assert torch.equal(
        rank_outputs_certified(hidden, targets, weights, bias, tie_mode, tile_events=128, tile_items=64), reference
    )
    limit = 20.0
    expected = torch.where(reference <= limit, reference, torch.tensor(math.inf, dtype=torch.float64))
    # small tiles: most events stop after the first one or two
    staged = CertifiedRanker(weights, bias, tile_items=37, tile_events=100).rank(hidden, targets, tie_mode, limit)
    assert torch.equal(staged, expected)


def test_certified_counts_of_tied_items_are_exact_within_the_limit():
    weights, bias = adversarial_cases()["integer ties"]
    generator = torch.Generator().manual_seed(6)
    hidden = torch.randint(-2, 3, (500, weights.shape[1]), generator=generator).float()
    targets = torch.randint(0, weights.shape[0], (500,), generator=generator)
    higher, ties = count_dense(hidden.double() @ weights.double().T + bias.double(), targets)
    got_higher, got_ties = CertifiedRanker(weights, bias, tile_items=37, tile_events=100).count(hidden, targets, 20.0)
    within = 1 + higher <= 20
    assert bool(ties[within].gt(0).any()) and torch.isinf(got_higher[~within]).all()
    assert torch.equal(got_higher[within], higher[within]) and torch.equal(got_ties[within], ties[within])


def test_share_of_hits_decided_by_ties_by_hand():
    # (higher, ties): a clear hit at 1; a target tied with 2 others, 1 above (ranks 2 / 4 / 3); 5 tied, none
    # above (1 / 6 / 3.5); a miss in every mode (inf).
    higher, ties = torch.tensor([0.0, 1.0, 0.0, math.inf]), torch.tensor([0.0, 2.0, 5.0, 0.0])
    expected = {
        "standard": ({"1": 1 / 2, "3": 2 / 3, "5": 1 / 3}, {"1": 2 / 4, "3": 3 / 4, "5": 3 / 4}),
        "median": ({"1": 0.0, "3": 1 / 2, "5": 1 / 3}, {"1": 1 / 4, "3": 2 / 4, "5": 3 / 4}),
        "conservative": ({"1": 0.0, "3": 0.0, "5": 0.0}, {"1": 1 / 4, "3": 1 / 4, "5": 2 / 4}),
    }
    for tie_mode, (decided, recall) in expected.items():
        accumulator = MetricAccumulator([1, 3, 5], tie_mode)
        accumulator.add_counts(higher, ties)
        result = accumulator.result()
        assert result["recall"] == pytest.approx(recall), tie_mode
        assert result["tie_decided_hits"] == pytest.approx(decided), tie_mode
        # hit with the tied items after the target, missed with them before: the same whatever the mode
        assert result["tie_dependent_events"] == pytest.approx({"1": 1 / 4, "3": 2 / 4, "5": 1 / 4}), tie_mode
    ranks_only = MetricAccumulator([1])
    ranks_only.add([1.0, 2.0])
    assert "tie_decided_hits" not in ranks_only.result()  # ranks alone cannot say what ties decided


def test_certified_ranking_on_many_small_random_problems():
    generator = torch.Generator().manual_seed(11)
    for trial in range(40):
        n_items = int(torch.randint(1, 60, (1,), generator=generator))
        dim = int(torch.randint(1, 5, (1,), generator=generator))
        if trial % 2:  # exact ties everywhere
            weights = torch.randint(-1, 2, (n_items, dim), generator=generator).float()
            bias = torch.randint(-1, 2, (n_items,), generator=generator).float()
            hidden = torch.randint(-1, 2, (30, dim), generator=generator).float()
        else:
            weights = torch.randn(n_items, dim, generator=generator) * float(torch.rand(1, generator=generator) * 10)
            bias = torch.randn(n_items, generator=generator)
            hidden = torch.randn(30, dim, generator=generator)
        targets = torch.randint(0, n_items, (30,), generator=generator)
        limit = [1.0, 3.0, 20.0, math.inf][trial % 4]
        tiles = {"tile_items": int(torch.randint(1, 20, (1,), generator=generator)), "tile_events": 7}
        scores = (hidden.double() @ weights.double().T + bias.double()).numpy()
        for tie_mode in ["standard", "conservative", "median"]:
            reference = rank_dense(scores, targets.numpy(), tie_mode)
            expected = torch.where(reference <= limit, reference, torch.tensor(math.inf, dtype=torch.float64))
            ranks = rank_outputs_certified(hidden, targets, weights, bias, tie_mode, limit, **tiles)
            assert torch.equal(ranks, expected), (trial, tie_mode)


def test_certified_ranking_skips_items_that_cannot_reach_the_target():
    generator = torch.Generator().manual_seed(7)
    # a few long, popular item vectors and many short, unpopular ones
    lengths = torch.cat([torch.full((10,), 5.0), torch.full((590,), 0.1)])
    weights = torch.nn.functional.normalize(torch.randn(600, 8, generator=generator), dim=1) * lengths.unsqueeze(1)
    bias = torch.cat([torch.zeros(10), torch.full((590,), -3.0)])
    hidden = torch.randn(400, 8, generator=generator)
    targets = torch.randint(0, 600, (400,), generator=generator)
    targets[::2] = torch.addmm(bias, hidden, weights.T).argmax(1)[::2]
    scores = (hidden.double() @ weights.double().T + bias.double()).numpy()
    ranker = CertifiedRanker(weights, bias, tile_items=50, tile_events=64)
    for tie_mode in ["standard", "median"]:
        reference = rank_dense(scores, targets.numpy(), tie_mode)
        assert torch.equal(ranker.rank(hidden, targets, tie_mode), reference)
        expected = torch.where(reference <= 5, reference, torch.tensor(math.inf, dtype=torch.float64))
        assert torch.equal(ranker.rank(hidden, targets, tie_mode, limit=5.0), expected)
    # the bound does skip: for a target above every short vector, the tail is never scored
    lengths_h = hidden.double().norm(dim=1)
    assert bool((ranker._remaining_bound(1, lengths_h) < 0).all())


def test_certified_ranking_rescores_near_ties_in_float64():
    # two items whose float32 scores round to the same value but differ in float64
    weights = torch.tensor([[1.0, 1e-8], [1.0, 0.0]])
    bias = torch.zeros(2)
    hidden = torch.tensor([[1.0, 1.0]])
    for target, expected in [(1, 2.0), (0, 1.0)]:
        ranks = rank_outputs_certified(hidden, torch.tensor([target]), weights, bias, "standard")
        assert ranks.tolist() == [expected]


# ----------------------------------------------------------------------------- session-parallel model evaluation


def naive_ranks(model: TinyGRU, eval_arrays: SessionArrays, tie_mode: str) -> list[float]:
    """One session at a time, one event at a time, every item scored."""
    weights, bias = model.output_weights()
    ranks = []
    with torch.no_grad():
        for s in range(eval_arrays.n_sessions):
            session = torch.as_tensor(eval_arrays.session(s))
            state = model.init_state(1)
            for position in range(len(session) - 1):
                output, state = model.step(session[position : position + 1], state)
                scores = output.double() @ weights.double().T + bias.double()
                ranks.append(float(rank_dense(scores, session[position + 1 : position + 2], tie_mode)[0]))
    return ranks


@pytest.mark.parametrize("method", ["certified", "brute-force"])
def test_session_parallel_evaluation_matches_naive_loop(method):
    model = TinyGRU(n_items=30)
    sessions = [[1, 2, 3], [4], [5, 5, 6, 7, 8, 9, 1], [2, 3], [7, 8, 9, 10, 11], [0, 29], [12, 13, 14, 15]]
    eval_arrays = session_arrays(sessions)
    expected = metrics_from_ranks(naive_ranks(model, eval_arrays, "median"), cutoffs=[1, 3, 10])
    # 2 lanes for 7 sessions: lanes are refilled, and the state of a refilled lane starts at zero
    metrics = evaluate_model(
        model, eval_arrays, cutoffs=[1, 3, 10], tie_mode="median", batch_size=2, progress=False, method=method
    )
    assert metrics["events"] == sum(len(s) - 1 for s in sessions) == expected["events"]
    assert metrics["sessions"] == 6
    assert metrics["recall"] == pytest.approx(expected["recall"])
    assert metrics["mrr"] == pytest.approx(expected["mrr"])
    assert metrics["tie_mode"] == "median" and metrics["cutoffs"] == [1, 3, 10]
    assert metrics["events_per_s"] > 0


def test_the_pipeline_model_is_evaluated_like_the_naive_loop():
    from gru4rec_pipeline.model.network import GRU4Rec

    model = GRU4Rec(n_items=25, layers=[6, 5], embedding="separate", embedding_dim=4, seed=3)
    with torch.no_grad():
        model.item_bias.copy_(torch.linspace(-1, 1, 25))
    eval_arrays = session_arrays([[1, 2, 3, 4], [5, 6], [7, 7, 8], [9, 10, 11, 12, 13], [14, 15]])
    expected = metrics_from_ranks(naive_ranks(model, eval_arrays, "conservative"), cutoffs=[1, 5])
    metrics = evaluate_model(model, eval_arrays, cutoffs=[1, 5], tie_mode="conservative", batch_size=3, progress=False)
    assert metrics["recall"] == pytest.approx(expected["recall"]) and metrics["mrr"] == pytest.approx(expected["mrr"])
    assert metrics["events"] == 11


def test_evaluation_refuses_a_diverged_model():
    model = TinyGRU(n_items=5)
    with torch.no_grad():
        model.cell.weight_hh[0, 0] = math.nan
    with pytest.raises(DataFormatError, match="not finite"):
        evaluate_model(model, session_arrays([[1, 2, 3]]), progress=False)


def test_evaluation_rejects_items_outside_the_vocabulary():
    model = TinyGRU(n_items=5)
    with pytest.raises(DataFormatError, match="0..4"):
        evaluate_model(model, session_arrays([[1, 7]]), progress=False)


# ----------------------------------------------------------------------------- scorers and outputs


class LastItemScorer:
    """Scores item (last + 1) highest, everything else by index: ranks computable by hand."""

    no_score = None  # scores every item

    def __init__(self, n_items: int):
        self.n_items = n_items

    def session_scores(self, items, times):
        scores = np.tile(np.arange(self.n_items, dtype=np.float64) / self.n_items, (len(items) - 1, 1))
        scores[np.arange(len(items) - 1), (items[:-1] + 1) % self.n_items] = 2.0
        return scores


def test_evaluate_scorer_uses_the_same_ranks():
    eval_arrays = session_arrays([[0, 1, 2], [3, 9], [5], [4, 4]])
    metrics = evaluate_scorer(LastItemScorer(10), eval_arrays, 10, cutoffs=[1, 2], progress=False, rank_chunk=2)
    # events: 0->1 rank 1, 1->2 rank 1, 3->9 rank 2 (item 4 has 2.0, 9 is next), 4->4 rank 1 + (item 5) + items 5..9 = 7
    assert metrics["events"] == 4 and metrics["sessions"] == 3
    assert metrics["recall"] == pytest.approx({"1": 2 / 4, "2": 3 / 4})
    assert metrics["mrr"] == pytest.approx({"1": 2 / 4, "2": 2.5 / 4})


def test_metrics_files(tmp_path):
    metrics = evaluate_scorer(LastItemScorer(10), session_arrays([[0, 1, 2]]), 10, cutoffs=[1, 20], progress=False)
    write_recall_txt(metrics, tmp_path / "recall.txt", title="last item")
    text = (tmp_path / "recall.txt").read_text()
    assert "Recall@20: 1.0000\n" in text and "MRR@1: 1.0000\n" in text and text.startswith("# last item\n")
    metric_lines = [line.split("@")[0] for line in text.splitlines() if not line.startswith("#")]
    assert metric_lines == ["Recall"] * 2 + ["MRR"] * 2 + ["NDCG"] * 2  # NDCG after MRR
    assert text.endswith("NDCG@1: 1.0000\nNDCG@20: 1.0000\n")
    write_metrics_json(metrics, tmp_path / "metrics.json", extra={"model": "last", "seed": 1})
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["model"] == "last" and record["recall"]["20"] == 1.0 and record["mrr"]["1"] == 1.0
    assert record["ndcg"] == {"1": 1.0, "20": 1.0}
    assert record["events"] == 2 and record["tie_mode"] == "conservative"  # the default
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "recall.txt"]  # no temporary files left
    assert format_recall_text(metrics).count("\n") == 1 + 3 * 2
    without_ndcg = {key: value for key, value in metrics.items() if key != "ndcg"}
    assert "NDCG" not in format_recall_text(without_ndcg)


def evaluation_files(tmp_path, sessions, n_items=12, trained_with=None):
    """A model, its vocabulary and evaluation sessions on disk; the model records ``trained_with``'s identity."""
    from gru4rec_pipeline.model.network import GRU4Rec

    vocabulary = Vocabulary(1000 + np.arange(n_items), np.ones(n_items, dtype=np.int64))
    model = GRU4Rec(n_items=n_items, layers=[4], seed=1)
    model.vocabulary = (trained_with or vocabulary).identity()
    model.save(tmp_path / "model.pt")
    vocabulary.save(tmp_path / "vocab.parquet")
    session_arrays(sessions).save(tmp_path / "eval.npz")
    return [
        "--model", str(tmp_path / "model.pt"), "--eval", str(tmp_path / "eval.npz"),
        "--vocab", str(tmp_path / "vocab.parquet"),
        "--recall", str(tmp_path / "recall.txt"), "--metrics", str(tmp_path / "m.json"),
    ]  # fmt: skip


def test_evaluate_command_writes_what_the_workflow_writes(tmp_path, capsys):
    files = evaluation_files(tmp_path, [[1, 2, 3], [4, 5], [6, 7, 8, 9]])
    assert main(["evaluate", *files, "--cutoffs", "5", "20", "--tie-mode", "median", "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["events"] == 6 and record["cutoffs"] == [5, 20] and record["tie_mode"] == "median"
    assert record["recall"]["20"] == 1.0  # 12 items: every target ranks within 20
    assert record["kind"] == "gru4rec" and record["device"] == "cpu"
    assert {"provenance", "timings"} <= set(record) and record["provenance"]["config_sha256"]
    assert "Recall@20: 1.0000" in (tmp_path / "recall.txt").read_text() and "MRR@5:" in capsys.readouterr().out


def test_a_model_of_another_vocabulary_is_refused_naming_both_files(tmp_path, capsys):
    other = Vocabulary(2000 + np.arange(12), np.ones(12, dtype=np.int64))
    files = evaluation_files(tmp_path, [[1, 2, 3]], trained_with=other)
    assert main(["evaluate", *files, "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "vocab.parquet" in error and "model.pt" in error and "not the one" in error
    assert not (tmp_path / "recall.txt").exists() and not (tmp_path / "m.json").exists()


def test_no_predictions_is_an_error_not_a_zero(tmp_path, capsys):
    files = evaluation_files(tmp_path, [[1], [2]])  # sessions of one event predict nothing
    assert main(["evaluate", *files, "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "eval.npz" in error and "no next-item predictions" in error and "min_session_length" in error
    assert not (tmp_path / "recall.txt").exists()


def test_a_damaged_session_arrays_file_names_itself_and_its_stage(tmp_path, capsys):
    files = evaluation_files(tmp_path, [[1, 2, 3], [4, 5]])
    data = (tmp_path / "eval.npz").read_bytes()
    (tmp_path / "eval.npz").write_bytes(data[: len(data) // 2])  # a truncated write
    assert main(["evaluate", *files, "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "eval.npz: damaged session arrays file" in error and "build_sessions" in error


def test_baseline_refuses_sessions_built_with_another_vocabulary(tmp_path, capsys):
    other = Vocabulary(2000 + np.arange(12), np.ones(12, dtype=np.int64))
    files = evaluation_files(tmp_path, [[1, 2, 3], [4, 5]])
    arrays = SessionArrays.load(tmp_path / "eval.npz")
    # Written by the sessions stage with another vocabulary: its indices mean other items.
    SessionArrays(arrays.offsets, arrays.items, arrays.times, arrays.session_ids, other.fingerprint()).save(
        tmp_path / "train.npz"
    )
    outputs = files[files.index("--vocab") : files.index("--vocab") + 2] + files[files.index("--recall") :]
    argv = ["baseline", "pop", "--train", str(tmp_path / "train.npz"), "--eval", str(tmp_path / "eval.npz")]
    assert main([*argv, *outputs]) == 2
    error = capsys.readouterr().err
    assert "train.npz" in error and "another vocabulary than" in error and "vocab.parquet" in error
