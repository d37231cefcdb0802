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


def test_n_sample_over_the_item_count_is_capped_with_a_warning(tmp_path, caplog, one_thread):
    import logging

    from gru4rec_pipeline.model.sampling import NegativeSampler

    train, support = tiny_sessions()
    with caplog.at_level(logging.WARNING):
        sampler = NegativeSampler(support, 100_000, 0.5, store_size=200_000)
    assert sampler.n_sample == N_ITEMS and sampler.next().shape == (N_ITEMS,)
    assert f"n_sample 100000 is more than the {N_ITEMS} items" in caplog.text
    config = tiny_config("bpr_max", n_sample=100_000, sample_store_size=200_000, epochs=1)
    summary = train_model(train, support, config, tmp_path / "m.pt", tmp_path / "h.csv", progress=False)
    assert summary["epochs"] == 1


def test_a_model_file_with_a_flipped_bit_is_refused(tmp_path):
    from gru4rec_pipeline.model.loading import load_model

    model = GRU4Rec(N_ITEMS, [8], "shared", 0, seed=1)
    model.save(tmp_path / "model.pt")
    data = bytearray((tmp_path / "model.pt").read_bytes())
    weights = model.item_weight.detach().numpy().tobytes()
    offset = bytes(data).find(weights[:64])
    assert offset > 0
    data[offset + 5] ^= 0x10
    (tmp_path / "model.pt").write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="do not match the checksum recorded with them"):
        load_model(tmp_path / "model.pt")


def test_an_empty_model_file_says_why(tmp_path):
    from gru4rec_pipeline.model.loading import load_model

    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"model.pt: the model file is empty \(0 bytes\)"):
        load_model(tmp_path / "model.pt")


def test_a_full_disk_while_saving_the_model_says_so(tmp_path):
    from tmpfs import small_tmpfs

    model = GRU4Rec(2000, [64], "shared", 0, seed=1)  # about 600 kB of weights
    with small_tmpfs(tmp_path / "small", "256k") as small:
        with pytest.raises(PipelineError) as failed:
            model.save(small / "model.pt")
        assert "no space left on the file system of" in str(failed.value)
        assert sorted(path.name for path in small.iterdir()) == []
