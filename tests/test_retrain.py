"""Retraining: a model continues on new clicks with a grown vocabulary; refusals name the files."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import crash_after_next_checkpoint
from gru4rec_pipeline.data.increment import grow_vocabulary
from gru4rec_pipeline.data.sessions import build_sessions
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError, PipelineError
from gru4rec_pipeline.model.folder import ModelFolder, load_model
from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.training.job import RunOptions, TrainingJob, WarmStart, retraining_job
from gru4rec_pipeline.training.run import run_training

HYPERPARAMETERS = {
    "layers": [10],
    "dropout_hidden": 0.3,
    "momentum": 0.3,
    "batch_size": 4,
    "n_sample": 6,
    "sample_store_size": 60,
    "epochs": 2,
}
ALL_EVENTS = {"min_session_length": 2, "min_item_support": 1}


def clicks_frame(n_sessions=120, items=range(100, 130), start=0.0, seed=0) -> pd.DataFrame:
    """Sessions whose next item mostly follows a successor rule over ``items``, one session a minute."""
    rng = np.random.default_rng(seed)
    items = np.asarray(list(items), dtype=np.int64)
    rows = []
    for s in range(n_sessions):
        position = rng.integers(len(items))
        for k in range(int(rng.integers(2, 6))):
            rows.append((s + 1 + int(start), int(items[position]), start + 60.0 * s + k))
            position = (3 * position + 1) % len(items) if rng.random() < 0.8 else rng.integers(len(items))
    return pd.DataFrame(rows, columns=["SessionId", "ItemId", "Time"]).astype(
        {"SessionId": "int64", "ItemId": "int64", "Time": "float64"}
    )


def trained_parent(tmp_path, clicks: pd.DataFrame, loss="bpr_max", epochs=2, name="parent", seed=42, **hyperparameters):
    """Sessions and vocabulary of ``clicks`` (the sessions stage), and a model trained on them with its state."""
    clicks.to_parquet(tmp_path / f"{name}_clicks.parquet")
    folder = tmp_path / name
    build_sessions(
        tmp_path / f"{name}_clicks.parquet",
        tmp_path / f"{name}_clicks.parquet",
        folder / "vocab.parquet",
        folder / "train.npz",
        folder / "eval.npz",
        folder / "counts.json",
    )
    setting = Hyperparameters.from_dict({**HYPERPARAMETERS, "epochs": epochs, **hyperparameters, "loss": loss})
    run = RunOptions(seed=seed, device="cpu", progress=False)
    run_training(TrainingJob(folder / "train.npz", folder / "vocab.parquet", folder, setting, run))
    return folder


def run_retrain(model, vocab, clicks, out, epochs=1, protocol=None, support_decay=0.0, device="auto", progress=True):
    """A retrain as the command ``retrain`` runs it: its job, run."""
    run = RunOptions(device=device, progress=progress)
    return run_training(retraining_job(WarmStart(model, protocol, support_decay), clicks, vocab, out, epochs, run))


def training_state_path(model_path):
    return ModelFolder.of(model_path).state


@pytest.mark.parametrize("loss", ["bpr_max", "ce_full", "ce_sampled"])
def test_zero_new_items_retrain_equals_continuing_the_training(tmp_path, loss):
    clicks = clicks_frame()
    parent = trained_parent(tmp_path, clicks, loss, epochs=2)
    continued = trained_parent(tmp_path, clicks, loss, epochs=5, name="continued")
    summary = run_retrain(
        parent / "model.pt", parent / "vocab.parquet", tmp_path / "parent_clicks.parquet", tmp_path / "warm",
        epochs=3, protocol=ALL_EVENTS, device="cpu", progress=False,
    )  # fmt: skip
    assert summary["retrained_from"]["new_items"] == 0 and summary["epochs"] == 3
    warm, reference = load_model(tmp_path / "warm" / "model.pt"), load_model(continued / "model.pt")
    for (name, x), (_, y) in zip(warm.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(x, y), name
    # The grown vocabulary is the parent's when no item is new: same fingerprint, same support.
    assert warm.vocabulary == reference.vocabulary
    warm_losses = pd.read_csv(tmp_path / "warm" / "history.csv")["loss"].tolist()
    assert warm_losses == pd.read_csv(continued / "history.csv")["loss"].tolist()[2:]
    state, reference_state = (
        torch.load(path, weights_only=True)
        for path in (tmp_path / "warm" / "training_state.pt", continued / "training_state.pt")
    )
    for name, tensor in reference_state["last"]["optimizer"].items():
        assert torch.equal(state["last"]["optimizer"][name], tensor), name
    assert state["epochs"] == 5


def test_new_items_are_appended_and_can_be_recommended(tmp_path):
    from gru4rec_pipeline.cli import main

    parent = trained_parent(tmp_path, clicks_frame())
    # The next day: the old items plus five new ones that come up in half of the sessions.
    new = clicks_frame(n_sessions=200, items=[*range(100, 130), *range(900, 905)] + [900] * 20, start=1e5, seed=1)
    new.to_parquet(tmp_path / "day.parquet")
    out = tmp_path / "warm"
    argv = ["retrain", "--model", str(parent / "model.pt"), "--vocab", str(parent / "vocab.parquet"),
            "--clicks", str(tmp_path / "day.parquet"), "--out", str(out), "--epochs", "3", "--device", "cpu",
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    old, grown = Vocabulary.load(parent / "vocab.parquet"), Vocabulary.load(out / "vocab.parquet")
    assert np.array_equal(grown.item_ids[: old.n_items], old.item_ids)
    assert sorted(grown.item_ids[old.n_items :]) == list(range(900, 905))
    assert grown.fingerprint() != old.fingerprint()
    # The sampler's support is the new day's counts.
    counts = new["ItemId"].value_counts()
    assert grown.support[grown.index_of([900])[0]] == counts[900]
    record = json.loads((out / "training.json").read_text())["retrained_from"]
    assert record["model"] == str(parent / "model.pt") and record["clicks"] == str(tmp_path / "day.parquet")
    assert record["new_items"] == 5 and record["items"] == grown.n_items
    # The grown vocabulary round-trips through recommend, and a session of new items is answered with them.
    recommendations = tmp_path / "recommendations.tsv"
    assert main(["recommend", "--model", str(out / "model.pt"), "--vocab", str(out / "vocab.parquet"),
                 "--session", "900", "901", "-k", "5", "--out", str(recommendations)]) == 0  # fmt: skip
    recommended = pd.read_csv(recommendations, sep="\t")["ItemId"]
    assert set(recommended) & set(range(900, 905))
    # The parent's vocabulary does not fit the retrained model: refused.
    assert main(["recommend", "--model", str(out / "model.pt"), "--vocab", str(parent / "vocab.parquet"),
                 "--session", "100"]) == 2  # fmt: skip


def test_grow_vocabulary_keeps_old_indices_and_mixes_support():
    parent = Vocabulary(np.array([30, 10, 20]), np.array([4, 6, 10]))
    grown, n_new = grow_vocabulary(parent, np.array([20, 50, 40, 50, 10]), support_decay=0.5)
    assert n_new == 2 and grown.item_ids.tolist() == [30, 10, 20, 40, 50]
    assert grown.support.tolist() == [2, 4, 6, 1, 2]
    with pytest.raises(PipelineError, match="support_decay"):
        grow_vocabulary(parent, np.array([1]), support_decay=2.0)


def test_refusals_name_the_files_and_write_nothing(tmp_path, caplog):
    parent = trained_parent(tmp_path, clicks_frame())
    other = trained_parent(tmp_path, clicks_frame(items=range(200, 225), seed=3), name="other")
    day = tmp_path / "parent_clicks.parquet"
    out = tmp_path / "warm"

    def retrain(model=parent / "model.pt", vocab=parent / "vocab.parquet", clicks=day, out=out, **options):
        return run_retrain(model, vocab, clicks, out, device="cpu", progress=False, **options)

    with pytest.raises(DataFormatError) as wrong_vocab:
        retrain(vocab=other / "vocab.parquet")
    assert str(other / "vocab.parquet") in str(wrong_vocab.value) and str(parent / "model.pt") in str(wrong_vocab.value)
    # Single clicks: no session of two events is left.
    singles = pd.DataFrame({"SessionId": [1, 2, 3], "ItemId": [100, 101, 102], "Time": [1e6, 2e6, 3e6]})
    singles.to_parquet(tmp_path / "singles.parquet")
    with pytest.raises(DataFormatError, match="no session is left") as empty:
        retrain(clicks=tmp_path / "singles.parquet")
    assert str(tmp_path / "singles.parquet") in str(empty.value)
    with pytest.raises(PipelineError, match="replace its parent"):
        retrain(out=parent)
    assert not out.exists()
    # A state of another format, then none at all (a model of an older version).
    state = torch.load(training_state_path(parent / "model.pt"), weights_only=True)
    torch.save({**state, "format": "gru4rec_pipeline.training_state/0"}, training_state_path(parent / "model.pt"))
    with pytest.raises(DataFormatError, match="format"):
        retrain()
    training_state_path(parent / "model.pt").unlink()
    with pytest.raises(DataFormatError, match="does not keep its optimizer"):
        retrain()
    assert not out.exists()
    # Clicks older than the parent's data: retrained, with a warning naming both time ranges.
    torch.save(state, training_state_path(parent / "model.pt"))
    older = clicks_frame(start=-1e6)
    older.to_parquet(tmp_path / "older.parquet")
    with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline"):
        retrain(clicks=tmp_path / "older.parquet", protocol=ALL_EVENTS)
    warning = next(r.getMessage() for r in caplog.records if "not newer" in r.getMessage())
    assert "1969-12-20" in warning and "1970-01-01" in warning


def test_clicks_overlapping_the_parents_period_are_warned_about_naming_the_file_and_the_period(tmp_path, caplog):
    parent = trained_parent(tmp_path, clicks_frame())  # sessions a minute apart from 0 s to 2 h
    # New clicks from the second hour on: their first hour's sessions overlap the parent's period.
    overlapping = clicks_frame(start=3600.0, seed=5)
    overlapping.to_parquet(tmp_path / "overlapping.parquet")
    with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline"):
        run_retrain(
            parent / "model.pt", parent / "vocab.parquet", tmp_path / "overlapping.parquet", tmp_path / "warm",
            device="cpu", progress=False, protocol=ALL_EVENTS,
        )  # fmt: skip
    warning = next(r.getMessage() for r in caplog.records if "overlaps" in r.getMessage())
    assert str(tmp_path / "overlapping.parquet") in warning
    assert "(1970-01-01T00:00:00Z .. 1970-01-01T01:59:" in warning
    assert "of its 120 sessions end by its end, from 1970-01-01T01:00:00Z to 1970-01-01T01:59:" in warning
    # New clicks that all come after the parent's data pass without either warning.
    caplog.clear()
    newer = clicks_frame(start=1e5, seed=6)
    newer.to_parquet(tmp_path / "newer.parquet")
    with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline"):
        run_retrain(
            parent / "model.pt", parent / "vocab.parquet", tmp_path / "newer.parquet", tmp_path / "warm-newer",
            device="cpu", progress=False, protocol=ALL_EVENTS,
        )  # fmt: skip
    assert not [r for r in caplog.records if "trained on" in r.getMessage()], caplog.text


def test_a_killed_retrain_resumes_and_never_touches_the_parent(tmp_path, monkeypatch, caplog):

    parent = trained_parent(tmp_path, clicks_frame())
    new = clicks_frame(n_sessions=150, items=[*range(100, 130), *range(900, 903)], start=1e5, seed=2)
    new.to_parquet(tmp_path / "day.parquet")
    parent_files = {path.name: path.read_bytes() for path in parent.iterdir() if path.is_file()}

    def retrain(out):
        return run_retrain(
            parent / "model.pt", parent / "vocab.parquet", tmp_path / "day.parquet", out, epochs=3, device="cpu",
            progress=False,
        )  # fmt: skip

    retrain(tmp_path / "uninterrupted")
    with crash_after_next_checkpoint(monkeypatch):
        retrain(tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "model.pt").exists()
    with caplog.at_level(logging.INFO, logger="gru4rec_pipeline"):
        retrain(tmp_path / "resumed")
    assert any("after epoch 1" in record.getMessage() for record in caplog.records)
    resumed, uninterrupted = (
        load_model(tmp_path / "resumed" / "model.pt"),
        load_model(tmp_path / "uninterrupted" / "model.pt"),
    )
    for (name, x), (_, y) in zip(resumed.state_dict().items(), uninterrupted.state_dict().items()):
        assert torch.equal(x, y), name
    assert not (tmp_path / "resumed" / "checkpoints").exists()
    assert {path.name: path.read_bytes() for path in parent.iterdir() if path.is_file()} == parent_files


@pytest.mark.parametrize("loss, embedding", [("bpr_max", "shared"), ("ce_full", "separate"), ("top1", "none")])
def test_warm_start_copies_the_parent_rows_once_and_leaves_new_rows_fresh(tmp_path, loss, embedding):
    from gru4rec_pipeline.training.loop import build_step
    from gru4rec_pipeline.training.retraining import ITEM_ROW_PARAMETERS, load_parent

    parent = trained_parent(tmp_path, clicks_frame(), loss, embedding=embedding)
    warm = load_parent(parent / "model.pt")
    n_old, n_new = warm.n_items, warm.n_items + 7
    config = Hyperparameters.from_dict(warm.state.hyperparameters)
    assert config.embedding == embedding
    grown, sampler = build_step(config, np.ones(n_new, dtype=np.int64), torch.device("cpu"), warm.state.seed)
    fresh = {name: tensor.clone() for name, tensor in grown.model.state_dict().items()}
    warm.apply(grown, sampler)
    for name, tensor in grown.model.state_dict().items():
        if name in ITEM_ROW_PARAMETERS:
            assert torch.equal(tensor[:n_old], warm.weights[name]), name
            assert torch.equal(tensor[n_old:], fresh[name][n_old:]), name
        else:
            assert torch.equal(tensor, warm.weights[name]), name
    optimizer = warm.state.last.optimizer
    for name, state in grown.optimizer.state.items():
        if name == "dense":
            assert torch.count_nonzero(state) == torch.count_nonzero(optimizer[name])
        else:
            assert torch.equal(state[:n_old], optimizer[name]) and not state[n_old:].any(), name


def test_a_training_state_of_another_model_with_the_same_vocabulary_is_refused_naming_both_files(tmp_path, capsys):
    """bpr_max's state beside bpr's model, or a seed-43 state beside a seed-42 model (same vocabulary both times)
    used to retrain with the other training's loss, settings and optimizer on these weights, with exit 0."""
    from gru4rec_pipeline.cli import main

    clicks = clicks_frame()
    bpr = trained_parent(tmp_path, clicks, "bpr", name="bpr")
    bpr_max = trained_parent(tmp_path, clicks, "bpr_max", name="bpr_max")
    seed_43 = trained_parent(tmp_path, clicks, "bpr", name="seed_43", seed=43)
    out = tmp_path / "warm"
    for other in (bpr_max, seed_43):
        shutil.copy(other / "training_state.pt", bpr / "training_state.pt")
        argv = ["retrain", "--model", str(bpr / "model.pt"), "--vocab", str(bpr / "vocab.parquet"), "--clicks",
                str(tmp_path / "bpr_clicks.parquet"), "--out", str(out), "--device", "cpu", "--quiet"]  # fmt: skip
        assert main(argv) == 2
        error = capsys.readouterr().err.splitlines()[-1]
        assert str(bpr / "training_state.pt") in error and str(bpr / "model.pt") in error, error
        assert "belongs to another model" in error and not out.exists()


def retrain_command(parent, clicks, out) -> list[str]:
    return ["retrain", "--model", str(parent / "model.pt"), "--vocab", str(parent / "vocab.parquet"), "--clicks",
            str(clicks), "--out", str(out), "--device", "cpu", "--quiet"]  # fmt: skip


def test_an_empty_or_foreign_training_state_is_not_a_training_state(tmp_path, capsys):
    """An empty file used to give an empty reason; a random one, torch's advice to load it with weights_only=False."""
    from gru4rec_pipeline.cli import main

    parent = trained_parent(tmp_path, clicks_frame())
    state = parent / "training_state.pt"
    argv = retrain_command(parent, tmp_path / "parent_clicks.parquet", tmp_path / "warm")
    for content, expected in (
        (b"", "the training state file is empty (0 bytes)"),
        (np.random.default_rng(0).bytes(1000), "not a training state"),
        (b"model weights\n", "not a training state"),
    ):
        state.write_bytes(content)
        assert main(argv) == 2
        error = capsys.readouterr().err.splitlines()[-1]
        assert error.startswith(f"error: {state}: {expected}") and "weights_only" not in error, error
    torch.save([1, 2], state)
    assert main(argv) == 2
    assert "not a training state (a list" in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "warm").exists()


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda s: s["item_weight"].view(-1)[5].fill_(float("nan")), "optimizer state 'item_weight' holds NaN"),
        (lambda s: s["item_weight"].view(-1)[0].fill_(-1e30), "its accumulators go down to -1e+30"),
        (lambda s: s["item_bias"][3, 1].fill_(-1e30), "its momentum reaches 1e+30"),
    ],
)
def test_a_damaged_optimizer_state_is_refused_before_training_naming_the_file(tmp_path, capsys, damage, expected):
    """NaN or -1e30 in the optimizer state used to be blamed on the learning rate after an epoch, and to leave the
    retrained folder with an empty checkpoint folder and a lock file."""
    from gru4rec_pipeline.cli import main

    parent = trained_parent(tmp_path, clicks_frame())
    path = parent / "training_state.pt"
    state = torch.load(path, weights_only=True)
    damage(state["last"]["optimizer"])
    torch.save(state, path)
    out = tmp_path / "warm"
    assert main(retrain_command(parent, tmp_path / "parent_clicks.parquet", out)) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith(f"error: {path}: ") and expected in error and "learning_rate" not in error[:80], error
    assert not out.exists()


def test_a_failed_training_leaves_no_lock_and_no_empty_checkpoint_folder(tmp_path):
    """A training that stops in its first epoch (here: diverging) leaves its folder as it found it."""
    parent = trained_parent(tmp_path, clicks_frame())
    out = tmp_path / "diverged"
    with pytest.raises(PipelineError, match="training diverged in epoch 1"):
        setting = Hyperparameters.from_dict({**HYPERPARAMETERS, "learning_rate": 1e6, "loss": "bpr"})
        run = RunOptions(device="cpu", progress=False)
        run_training(TrainingJob(parent / "train.npz", parent / "vocab.parquet", out, setting, run))
    assert not out.exists()
