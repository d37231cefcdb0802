"""What training refuses or stops on: session arrays of another vocabulary, a diverging loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError, PipelineError
from gru4rec_pipeline.model.divergence import divergence_reason
from gru4rec_pipeline.model.network import GRU4Rec
from gru4rec_pipeline.model.training import run_training, train_model
from gru4rec_pipeline.names import LOSSES
from test_training import N_ITEMS, tiny_config, tiny_sessions

SMALL = {"layers": [8], "batch_size": 4, "n_sample": 5, "epochs": 1}


@pytest.fixture
def training_files(tmp_path):
    """train.npz written with the vocabulary of vocab.parquet, and that vocabulary."""
    train, support = tiny_sessions()
    vocabulary = Vocabulary(np.arange(N_ITEMS, dtype=np.int64) + 100, support)
    vocabulary.save(tmp_path / "vocab.parquet")
    arrays = SessionArrays(train.offsets, train.items, train.times, train.session_ids, vocabulary.fingerprint())
    arrays.save(tmp_path / "train.npz")
    return tmp_path


def train_on(folder, **overrides):
    return run_training(
        folder / "train.npz", folder / "vocab.parquet", "bpr_max", {**SMALL, **overrides},
        folder / "model" / "model.pt", folder / "model" / "history.csv", folder / "model" / "training.json",
        device="cpu", progress=False,
    )  # fmt: skip


def test_session_arrays_of_another_vocabulary_are_refused_naming_both_files(training_files):
    """The arrays of another split (another vocabulary, as many items) copied over train.npz: their indices mean
    other items, and a model trained on them would record the given vocabulary and pass every later check."""
    arrays = SessionArrays.load(training_files / "train.npz")
    other = Vocabulary(np.arange(N_ITEMS, dtype=np.int64) + 5000, np.ones(N_ITEMS, dtype=np.int64))
    SessionArrays(arrays.offsets, arrays.items, arrays.times, arrays.session_ids, other.fingerprint()).save(
        training_files / "train.npz"
    )
    with pytest.raises(DataFormatError) as refused:
        train_on(training_files)
    message = str(refused.value)
    assert "train.npz" in message and "vocab.parquet" in message and "another vocabulary than" in message
    assert not (training_files / "model" / "model.pt").exists()


def test_session_arrays_of_their_own_vocabulary_train(training_files):
    summary = train_on(training_files)
    assert summary["epochs"] == 1 and (training_files / "model" / "model.pt").exists()


def test_a_tuning_worker_refuses_session_arrays_of_another_vocabulary(training_files):
    from gru4rec_pipeline.tuning.worker import run_tune_worker

    arrays = SessionArrays.load(training_files / "train.npz")
    other = Vocabulary(np.arange(N_ITEMS, dtype=np.int64) + 5000, np.ones(N_ITEMS, dtype=np.int64))
    SessionArrays(arrays.offsets, arrays.items, arrays.times, arrays.session_ids, other.fingerprint()).save(
        training_files / "valid.npz"
    )
    folder = training_files / "study"
    with pytest.raises(DataFormatError, match="another vocabulary than"):
        run_tune_worker(
            "bpr_max", 0, training_files / "valid.npz", training_files / "train.npz", training_files / "vocab.parquet",
            folder, folder / "0.json", {"trials": 1, "workers": 1, "epochs": 1}, None, SMALL,
        )  # fmt: skip
    assert not (folder / "0.json").exists()


@pytest.mark.parametrize("loss", LOSSES)
def test_a_diverging_training_stops_naming_the_epoch_the_loss_and_the_setting(tmp_path, loss, one_thread):
    """At learning_rate 1e6 the loss jumps by orders of magnitude (or stays bounded for TOP1, whose weights grow
    to millions) without becoming NaN: the run used to end with exit 0 and a worse model."""
    train, support = tiny_sessions()
    config = tiny_config(loss, learning_rate=1e6, epochs=2)
    with pytest.raises(PipelineError) as stopped:
        train_model(train, support, config, tmp_path / "m.pt", tmp_path / "h.csv", progress=False)
    message = str(stopped.value)
    assert "training diverged in epoch 1" in message and "loss " in message
    assert f"lower training.losses.{loss}.learning_rate (now 1e+06)" in message
    assert not (tmp_path / "m.pt").exists()


def test_a_loss_growing_tenfold_after_an_epoch_is_divergence():
    model = GRU4Rec(N_ITEMS, [8], "shared", 0, seed=1)
    assert divergence_reason(0.5, [0.6, 0.45], N_ITEMS, model) is None
    assert "10 x the lowest earlier epoch's 0.45" in divergence_reason(4.6, [0.6, 0.45], N_ITEMS, model)
    assert "over 340.1 (100 x max(1, ln 30 items))" in divergence_reason(341.0, [], N_ITEMS, model)
    with torch.no_grad():
        model.item_bias[3] = float("inf")
    assert "item_bias not finite" in divergence_reason(0.5, [], N_ITEMS, model)
