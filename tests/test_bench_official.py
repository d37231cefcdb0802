"""bench_official.py's comparison table and its settings for the official GRU4Rec (no official code needed)."""

from __future__ import annotations

import sys

import pytest

from conftest import REPO
from gru4rec_pipeline.model.hyperparameters import DEFAULT_HYPERPARAMETERS

sys.path.insert(0, str(REPO / "bench"))
from bench_official import summary_table  # noqa: E402
from official_gru4rec import LOSSES, official_params  # noqa: E402


@pytest.mark.parametrize("loss", list(LOSSES))
def test_the_official_side_trains_this_project_s_default_setting(loss):
    setting, official = DEFAULT_HYPERPARAMETERS[loss], official_params(loss, epochs=3)
    pairs = {"dropout_p_embed": "dropout_embed", "dropout_p_hidden": "dropout_hidden", "layers": "layers"}
    for key in ("learning_rate", "momentum", "n_sample", "sample_alpha", "bpreg", "elu_param", "logq", "batch_size"):
        pairs[key] = key
    for official_key, key in pairs.items():
        assert official[official_key] == setting[key], official_key
    assert official["n_epochs"] == 3 and official["constrained_embedding"] and official["loss"] == LOSSES[loss]


def runs(side: str, recalls: list[float], offset: float = 0.0) -> list[dict]:
    return [
        {"side": side, "loss": "bpr_max", "seed": seed, "init": "own", "recall@20": value, "mrr@20": value / 2 + offset,
         "epoch_losses": [0.5], "train_s": 1.0}
        for seed, value in enumerate(recalls)
    ]  # fmt: skip


def test_the_table_tests_each_difference_against_the_floor_or_two_standard_errors():
    official = runs("official", [0.60, 0.61, 0.59, 0.60])
    close = summary_table(official + runs("project", [0.605, 0.595, 0.60, 0.61]), ["bpr_max"])
    assert close.count("within max(0.01, 2 SE)") == 2 and "OUTSIDE" not in close
    assert "0.6000 ± 0.0082" in close  # the official side's mean and standard deviation
    lower = summary_table(official + runs("project", [0.55, 0.56, 0.54, 0.55], offset=0.1), ["bpr_max"])
    lines = [line for line in lower.splitlines() if "project - official" in line]
    assert "recall@20 project - official -0.0500" in lines[0] and "OUTSIDE" in lines[0]
    assert "mrr@20 project - official +0.0750" in lines[1] and "OUTSIDE" in lines[1]
