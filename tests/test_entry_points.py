"""The command line gets what the rules get: the same training job (TrainingJob) through ``train`` as through the
``train_model`` rule, the same files from ``evaluate`` as from ``evaluate_model``; the engine named alike in the
configuration, the log and the summary; an earlier version's setting refused with its new name."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import run_snakemake, with_overlays
from gru4rec_pipeline.cli import main
from gru4rec_pipeline.config_check import config_problem
from gru4rec_pipeline.model.folder import load_model

SESSIONS = ("results", "sessions", "final")
# What config/tiny.yaml sets for bpr beyond the loss's defaults, and its evaluation's batch.
TINY_BPR = ["--set", "epochs=2", "--set", "n_sample=64"]


def test_train_through_the_command_line_is_the_rules_training(tiny_run, tmp_path):
    """The rule's inputs and settings given to ``gru4rec-pipeline train``: the same files, summary keys, history
    columns and weights (one thread on the CPU is repeatable bit for bit)."""
    sessions, rule = tiny_run.joinpath(*SESSIONS), tiny_run / "results" / "models" / "final" / "bpr"
    out = tmp_path / "bpr"
    argv = [
        "train",
        "--train",
        str(sessions / "train.npz"),
        "--vocab",
        str(sessions / "vocab.parquet"),
        "--loss",
        "bpr",
        *TINY_BPR,
        "--out",
        str(out),
        "--eval",
        str(sessions / "eval.npz"),
        "--eval-split",
        "test",
        "--eval-batch-size",
        "128",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--quiet",
    ]
    assert main(argv) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in rule.iterdir())
    by_rule, by_command = (json.loads((folder / "training.json").read_text()) for folder in (rule, out))
    assert list(by_command) == list(by_rule)
    assert by_command["engine"] == by_rule["engine"] == "loop" and by_command["eval_split"] == "test"
    rule_history, command_history = (pd.read_csv(folder / "history.csv") for folder in (rule, out))
    assert list(command_history.columns) == list(rule_history.columns)
    assert command_history["loss"].tolist() == rule_history["loss"].tolist()
    trained = load_model(out / "model.pt").state_dict()
    for name, value in load_model(rule / "model.pt").state_dict().items():
        assert torch.equal(trained[name], value), name


def test_evaluate_through_the_command_line_writes_the_rules_files(tiny_run, tmp_path):
    sessions, metrics = tiny_run.joinpath(*SESSIONS), tiny_run / "results" / "metrics" / "final"
    argv = [
        "evaluate",
        "--model",
        str(tiny_run / "results" / "models" / "final" / "bpr" / "model.pt"),
        "--loss",
        "bpr",
        "--eval",
        str(sessions / "eval.npz"),
        "--vocab",
        str(sessions / "vocab.parquet"),
        "--recall",
        str(tmp_path / "recall_bpr.txt"),
        "--metrics",
        str(tmp_path / "bpr.json"),
        "--batch-size",
        "128",
        "--device",
        "cpu",
        "--data-source",
        str(tiny_run / "results" / "data" / "source.json"),
    ]
    assert main(argv) == 0
    assert (tmp_path / "recall_bpr.txt").read_text() == (tiny_run / "results" / "recall_bpr.txt").read_text()
    ranks, rule_ranks = (np.load(folder / "bpr.ranks.npz") for folder in (tmp_path, metrics))
    assert sorted(ranks.files) == sorted(rule_ranks.files)
    assert np.array_equal(ranks["ranks"], rule_ranks["ranks"])


def test_recommend_finds_the_vocabulary_a_rule_trained_with_in_the_models_folder(tiny_run, capsys):
    folder = tiny_run / "results" / "models" / "final" / "bpr"
    trained_with = pd.read_parquet(tiny_run.joinpath(*SESSIONS, "vocab.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "vocab.parquet"), trained_with)
    items = trained_with["ItemId"].head(2).astype(str).tolist()
    assert main(["recommend", "--model", str(folder / "model.pt"), "--session", *items, "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "rank\tItemId\tscore" and len(lines) == 4


def test_the_engine_is_one_word_in_the_config_the_log_and_the_summary(tiny_run):
    log = (tiny_run / "logs" / "train_model" / "final" / "bpr.log").read_text()
    summary = json.loads((tiny_run / "results" / "models" / "final" / "bpr" / "training.json").read_text())
    assert "engine: loop (one call of the step per minibatch on cpu)" in log
    assert summary["engine"] == "loop" and "fast_path" not in summary


def test_early_stopping_on_the_command_line_needs_the_per_epoch_evaluation(tmp_path, capsys):
    argv = [
        "train",
        "--train",
        "t.npz",
        "--vocab",
        "v.parquet",
        "--loss",
        "bpr",
        "--out",
        str(tmp_path / "m"),
        "--early-stopping",
        "2",
        "--quiet",
    ]
    assert main(argv) == 2
    assert "--early-stopping" in capsys.readouterr().err and not (tmp_path / "m").exists()


@pytest.mark.parametrize("where", ["training", "training.losses.bpr"])
def test_the_fast_path_setting_of_an_earlier_version_is_refused_with_its_new_name(where):
    config = (
        {"training": {"fast_path": "on"}}
        if where == "training"
        else {"training": {"losses": {"bpr": {"fast_path": "on"}}}}
    )
    problem = config_problem(config, {})
    assert problem.startswith(f"config key '{where}.fast_path': renamed to training.engine")


def test_the_workflow_stops_at_load_on_the_fast_path_setting(workflow_copy):
    config = with_overlays(workflow_copy, old="training: {losses: {bpr: {fast_path: on}}}\n")
    result = run_snakemake(workflow_copy, "results/recall_bpr.txt", "--dry-run", *config, check=False)
    assert result.returncode != 0
    assert "config key 'training.losses.bpr.fast_path': renamed to training.engine" in result.stdout + result.stderr
