"""The learning curve (metrics after every epoch in history.csv) and early stopping on a validation split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gru4rec_pipeline.errors import ConfigError, PipelineError
from gru4rec_pipeline.evaluation import epoch_evaluation
from gru4rec_pipeline.evaluation.epoch_evaluation import EpochEvaluation, parse_metric
from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.model.early_stopping import EarlyStopping
from gru4rec_pipeline.model.loading import load_model
from gru4rec_pipeline.model.training import train_model
from test_training import tiny_config, tiny_sessions

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = EvaluationSettings((1, 5, 20), "standard", 16)


def test_history_holds_the_metrics_of_every_epoch_and_the_last_equals_the_final_evaluation(tmp_path):
    train, support = tiny_sessions()
    test, _ = tiny_sessions(40, seed=1)
    curve = EpochEvaluation(test, SETTINGS, split="test")
    summary = train_model(
        train, support, tiny_config(), tmp_path / "m.pt", tmp_path / "h.csv", progress=False, epoch_evaluation=curve
    )
    history = pd.read_csv(tmp_path / "h.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert list(history.columns[:5]) == ["epoch", "loss", "events", "events_per_s", "wall_s"]
    assert {"recall@20", "mrr@20", "recall@1", "mrr@5", "eval_s"} <= set(history.columns)
    final = evaluate_model(load_model(tmp_path / "m.pt"), test, cutoffs=(1, 5, 20), batch_size=16, progress=False)
    for k in (1, 5, 20):
        assert history["recall@" + str(k)].iloc[-1] == final["recall"][str(k)]
        assert history["mrr@" + str(k)].iloc[-1] == final["mrr"][str(k)]
    assert history["recall@20"].iloc[-1] > history["recall@20"].iloc[0] * 0.5
    assert summary["epochs"] == 3 and summary["eval_split"] == "test" and "best_epoch" not in summary


def test_a_declining_validation_metric_stops_after_patience_epochs_with_the_best_weights(tmp_path, monkeypatch):
    train, support = tiny_sessions()
    valid, _ = tiny_sessions(30, seed=2)
    forced = iter([0.30, 0.50, 0.45, 0.40, 0.35, 0.30, 0.25])
    real_evaluate = epoch_evaluation.evaluate_model

    def declining(*args, **kwargs):
        metrics = real_evaluate(*args, **kwargs)
        metrics["mrr"]["20"] = next(forced)
        return metrics

    monkeypatch.setattr(epoch_evaluation, "evaluate_model", declining)
    weights_after = {}

    def snapshot(epoch, model):
        weights_after[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    curve = EpochEvaluation(valid, SETTINGS, split="valid", early_stopping={"patience": 2, "metric": "mrr@20"})
    summary = train_model(
        train,
        support,
        tiny_config(epochs=7),
        tmp_path / "m.pt",
        tmp_path / "h.csv",
        progress=False,
        on_epoch=snapshot,
        epoch_evaluation=curve,
    )
    history = pd.read_csv(tmp_path / "h.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]  # best at 2, then two epochs without gain
    assert list(history["mrr@20"]) == [0.30, 0.50, 0.45, 0.40]
    assert summary["epochs"] == 4 and summary["best_epoch"] == 2 and summary["best_value"] == 0.50
    saved = load_model(tmp_path / "m.pt").state_dict()
    for name, value in weights_after[2].items():
        torch.testing.assert_close(saved[name], value, rtol=0, atol=0)
    assert any(not torch.equal(saved[name], value) for name, value in weights_after[4].items())


def test_early_stopping_on_test_and_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="training.early_stopping.*test"):
        EarlyStopping(2, "mrr@20", "test")
    with pytest.raises(ConfigError, match="training.early_stopping.patience"):
        EarlyStopping(0, "mrr@20", "valid")
    with pytest.raises(ConfigError, match="training.early_stopping.metric.*ndcg@20"):
        parse_metric("ndcg@20")
    assert parse_metric("recall@10") == ("recall", 10)


def test_a_non_finite_metric_is_an_error_naming_the_epoch(monkeypatch):
    valid, _ = tiny_sessions(10, seed=3)
    monkeypatch.setattr(
        epoch_evaluation, "evaluate_model", lambda *a, **k: {"recall": {"20": np.nan}, "mrr": {"20": 0.1}}
    )
    curve = EpochEvaluation(valid, EvaluationSettings((20,)), split="valid")
    with pytest.raises(PipelineError, match="epoch 3.*recall@20"):
        curve.measure(3, None, {"wall_s": 1.0})
