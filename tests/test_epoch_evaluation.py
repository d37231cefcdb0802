"""The learning curve (metrics after every epoch in history.csv) and early stopping on a validation split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from gru4rec_pipeline.errors import ConfigError, PipelineError
from gru4rec_pipeline.evaluation import epoch_evaluation
from gru4rec_pipeline.evaluation.epoch_evaluation import EarlyStopping, EpochEvaluation, parse_metric
from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.model.folder import ModelFolder, load_model
from gru4rec_pipeline.training import loop
from gru4rec_pipeline.training.job import EpochEvaluationOptions
from gru4rec_pipeline.training.run import load_inputs
from test_training import tiny_config, tiny_job, tiny_sessions

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = EvaluationSettings((1, 5, 20), "standard", 16)


def curve_of(folder, sessions, split, early_stopping=None) -> EpochEvaluationOptions:
    """A per-epoch evaluation with ``SETTINGS`` on the sessions ``sessions``, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    sessions.save(folder / f"{split}.npz")
    return EpochEvaluationOptions(
        folder / f"{split}.npz", split, SETTINGS.cutoffs, SETTINGS.tie_mode, 16, early_stopping
    )


def test_history_holds_the_metrics_of_every_epoch_and_the_last_equals_the_final_evaluation(tmp_path):
    train, support = tiny_sessions()
    test, _ = tiny_sessions(40, seed=1)
    job = tiny_job(tmp_path / "m", train, support, tiny_config(), epoch_evaluation=curve_of(tmp_path, test, "test"))
    summary = loop.train(job, load_inputs(job))
    history = pd.read_csv(tmp_path / "m" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert list(history.columns[:5]) == ["epoch", "loss", "events", "events_per_s", "wall_s"]
    assert {"recall@20", "mrr@20", "recall@1", "mrr@5", "ndcg@1", "ndcg@20", "eval_s"} <= set(history.columns)
    final = evaluate_model(
        load_model(tmp_path / "m" / "model.pt"), test, cutoffs=(1, 5, 20), batch_size=16, progress=False
    )
    for k in (1, 5, 20):
        assert history["recall@" + str(k)].iloc[-1] == final["recall"][str(k)]
        assert history["mrr@" + str(k)].iloc[-1] == final["mrr"][str(k)]
        assert history["ndcg@" + str(k)].iloc[-1] == final["ndcg"][str(k)]
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

    class Snapshot:
        def after_epoch(self, epoch, row, trainer):
            weights_after[epoch] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    curve = curve_of(tmp_path, valid, "valid", early_stopping={"patience": 2, "metric": "mrr@20"})
    job = tiny_job(tmp_path / "m", train, support, tiny_config(epochs=7), epoch_evaluation=curve)
    summary = loop.train(job, load_inputs(job), observers=[Snapshot()])
    history = pd.read_csv(tmp_path / "m" / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]  # best at 2, then two epochs without gain
    assert list(history["mrr@20"]) == [0.30, 0.50, 0.45, 0.40]
    assert summary["epochs"] == 4 and summary["best_epoch"] == 2 and summary["best_value"] == 0.50
    saved = load_model(tmp_path / "m" / "model.pt").state_dict()
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
        epoch_evaluation,
        "evaluate_model",
        lambda *a, **k: {"recall": {"20": np.nan}, "mrr": {"20": 0.1}, "ndcg": {"20": 0.2}},
    )
    curve = EpochEvaluation(valid, EvaluationSettings((20,)), split="valid")
    with pytest.raises(PipelineError, match="epoch 3.*recall@20"):
        curve.measure(3, None, {"wall_s": 1.0})


def forced_metric(monkeypatch, by_epoch: dict[int, float]) -> None:
    """The per-epoch evaluation reports ``by_epoch[epoch]`` as mrr@20 (the rest measured), in every run."""
    real_evaluate = epoch_evaluation.evaluate_model

    def forced(*args, source, **kwargs):
        metrics = real_evaluate(*args, source=source, **kwargs)
        metrics["mrr"]["20"] = by_epoch[int(source.rsplit(" ", 1)[1])]
        return metrics

    monkeypatch.setattr(epoch_evaluation, "evaluate_model", forced)


def load_tensors(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_identical(x, y, where: str) -> None:
    """Nested dicts, lists and tensors equal bit for bit."""
    if isinstance(x, torch.Tensor):
        same = isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
        assert same, where
    elif isinstance(x, dict):
        assert isinstance(y, dict) and sorted(x) == sorted(y), where
        for key in x:
            assert_identical(x[key], y[key], f"{where}.{key}")
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), where
        for index, (a, b) in enumerate(zip(x, y)):
            assert_identical(a, b, f"{where}[{index}]")
    else:
        assert x == y, f"{where}: {x!r} != {y!r}"


def test_an_early_stopped_training_resumed_after_its_best_epoch_keeps_that_epochs_weights(tmp_path, monkeypatch):
    """Killed after its best epoch (2) and resumed, the training used to save the weights of the epoch after it
    (the best weights were not in the checkpoint) while training.json said best_epoch 2; and its training state
    held the last epoch's optimizer and the configured 12 epochs."""
    from conftest import crash_after_next_checkpoint
    from gru4rec_pipeline.model.hyperparameters import Hyperparameters
    from gru4rec_pipeline.training.job import RunOptions, TrainingJob
    from gru4rec_pipeline.training.run import run_training

    train, support = tiny_sessions()
    data = tiny_job(tmp_path / "data", train, support, tiny_config())
    valid, _ = tiny_sessions(30, seed=2)
    forced_metric(monkeypatch, {1: 0.30, 2: 0.50, 3: 0.45, 4: 0.60})
    settings = {"epochs": 12, "batch_size": 4, "layers": [8], "n_sample": 5, "dropout_hidden": 0.2, "momentum": 0.3}
    curve = curve_of(tmp_path, valid, "valid", early_stopping={"patience": 1, "metric": "mrr@20"})

    def run(name: str):
        setting = Hyperparameters.from_dict({**settings, "loss": "bpr_max"})
        run = RunOptions(device="cpu", progress=False)
        return run_training(TrainingJob(data.train, data.vocab, tmp_path / name, setting, run, epoch_evaluation=curve))

    run("whole")
    with crash_after_next_checkpoint(monkeypatch):
        run("killed")  # after epoch 1
    with crash_after_next_checkpoint(monkeypatch):
        run("killed")  # resumed, killed after epoch 2, the best
    assert not (tmp_path / "killed" / "model.pt").exists()
    run("killed")
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for name in ("model.pt", "training_state.pt"):
        assert_identical(load_tensors(whole / name), load_tensors(killed / name), name)
    timings = {"train_seconds", "events_per_s", "eval_every_epoch_seconds"}
    summaries = [json.loads((folder / "training.json").read_text()) for folder in (whole, killed)]
    assert [{k: v for k, v in s.items() if k not in timings} for s in summaries][0] == {
        k: v for k, v in summaries[1].items() if k not in timings
    }
    assert summaries[0]["best_epoch"] == 2 and summaries[0]["epochs"] == 3
    histories = [
        pd.read_csv(folder / "history.csv").drop(columns=["events_per_s", "wall_s", "eval_s"])
        for folder in (whole, killed)
    ]
    pd.testing.assert_frame_equal(*histories)
    # What ran (3 epochs) and what was kept (2): the state continues from epoch 2, its optimizer included.
    state = load_tensors(whole / "training_state.pt")
    assert (state["epochs"], state["epochs_run"], state["last"]["epoch"]) == (2, 3, 2)


def test_rows_resumed_without_some_columns_get_them_as_not_measured(tmp_path, monkeypatch):
    """A checkpoint written before NDCG was measured (or with other cut-offs): its rows gain the missing columns
    as NaN, so the history is written with every row's columns instead of failing on the first new row."""
    valid, _ = tiny_sessions(10, seed=3)
    measured = {metric: {"5": 0.3, "20": 0.5} for metric in ("recall", "mrr", "ndcg")}
    monkeypatch.setattr(epoch_evaluation, "evaluate_model", lambda *a, **k: measured)
    curve = EpochEvaluation(valid, EvaluationSettings((5, 20)), split="valid")
    old = {"epoch": 1, "loss": 0.5, "events": 10, "events_per_s": 5.0, "wall_s": 2.0}
    history = [{**old, "recall@5": 0.2, "recall@20": 0.4, "mrr@5": 0.1, "mrr@20": 0.12, "eval_s": 0.1}]
    curve.resume(history)
    new = {**old, "epoch": 2, **curve.measure(2, None, old)}
    ModelFolder(tmp_path).write_history([*history, new])
    written = pd.read_csv(tmp_path / "history.csv")
    assert list(written["epoch"]) == [1, 2] and {"ndcg@5", "ndcg@20"} <= set(written.columns)
    assert written["ndcg@20"].isna().tolist() == [True, False] and written["recall@20"][0] == 0.4
