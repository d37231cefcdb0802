"""Training: the hand-written backward pass against autograd, repeatability, resume, the stage's files."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import crash_after_next_checkpoint
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.model.folder import load_model
from gru4rec_pipeline.model.hyperparameters import DEFAULT_HYPERPARAMETERS, Hyperparameters
from gru4rec_pipeline.model.network import GRU4Rec
from gru4rec_pipeline.model.optim import AdagradMomentum
from gru4rec_pipeline.names import LOSSES
from gru4rec_pipeline.training import loop
from gru4rec_pipeline.training.iterator import SessionParallelIterator
from gru4rec_pipeline.training.job import RunOptions, TrainingJob
from gru4rec_pipeline.training.run import load_inputs
from gru4rec_pipeline.training.step import StepSetup, TrainStep
from test_losses import naive_loss

N_ITEMS = 30


def tiny_sessions(n_sessions=160, seed=0):
    """Sessions whose next item usually follows a fixed successor rule, so that there is something to learn."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 7, size=n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.empty(offsets[-1], dtype=np.int64)
    for s in range(n_sessions):
        item = rng.integers(N_ITEMS)
        for k in range(lengths[s]):
            items[offsets[s] + k] = item
            item = (3 * item + 1) % N_ITEMS if rng.random() < 0.8 else rng.integers(N_ITEMS)
    times = np.repeat(np.arange(n_sessions, dtype=np.float64), lengths)
    arrays = SessionArrays(offsets, items, times, np.arange(n_sessions, dtype=np.int64))
    return arrays, np.bincount(items, minlength=N_ITEMS)


SEED = 7


def tiny_config(loss="ce_sampled", **overrides):
    values = {
        "loss": loss,
        "batch_size": 4,
        "n_sample": 8,
        "sample_store_size": 64,
        "epochs": 3,
        "layers": [12],
    }
    values.update(overrides)
    return Hyperparameters.from_dict(values)


def tiny_job(folder, train, support, config, seed=SEED, epoch_evaluation=None, **run):
    """A job training ``config`` on the sessions ``train`` (their items' support ``support``) into the model folder
    ``folder``; the sessions and a vocabulary of them are written beside it (``folder.data/``) for the job to read.
    ``run``: its RunOptions (no progress, and no checkpoints unless asked)."""
    folder = Path(folder)
    data = folder.with_name(folder.name + ".data")
    data.mkdir(parents=True, exist_ok=True)
    train.save(data / "train.npz")
    Vocabulary(np.arange(len(support), dtype=np.int64) + 100, np.asarray(support, dtype=np.int64)).save(
        data / "vocab.parquet"
    )
    run = RunOptions(seed=seed, **{"progress": False, "checkpoints": False, **run})
    files = data / "train.npz", data / "vocab.parquet"
    return TrainingJob(*files, folder, config, run, epoch_evaluation=epoch_evaluation)


def train_tiny(folder, train, support, config, observers=(), **options):
    """The training of ``tiny_job`` in this process, as ``run_training`` trains it; its summary."""
    job = tiny_job(folder, train, support, config, **options)
    return loop.train(job, load_inputs(job), observers=observers)


def tiny_step(model, loss, support, use_kernels=True, seed=0, **overrides):
    """The step of a tiny setting: batch 4, lr 0.1, momentum 0.5, dropout 0.3 / 0.25 and every correction on."""
    values = dict(batch_size=4, learning_rate=0.1, momentum=0.5, dropout_embed=0.3, dropout_hidden=0.25, logq=1.0)
    values.update(sample_alpha=0.5, bpreg=0.5, elu_param=0.5, layers=model.layers, n_sample=5, **overrides)
    hyperparameters = Hyperparameters(loss=loss, **values)
    return TrainStep(model, hyperparameters, support, StepSetup(seed, use_kernels))


# -- the backward pass -----------------------------------------------------------------------------
class GradientRecorder:
    """Stands in for the optimizer: keeps the gradients instead of applying them."""

    def __init__(self):
        self.rows = {}

    def update_dense(self, name, param, grad):
        pass

    def update_rows(self, name, param, rows, grad, param_rows=None):
        if param_rows is not None:
            assert torch.equal(param_rows, param[rows])
        self.rows[name] = torch.zeros_like(param).index_add_(0, rows, grad.reshape(len(rows), *param.shape[1:]))

    def update_rows_with_bias(self, name, param, bias_name, bias, rows, grad, bias_grad, param_rows=None):
        self.update_rows(name, param, rows, grad, param_rows)
        self.update_rows(bias_name, bias, rows[: len(bias_grad)], bias_grad)


def reference_loss(params, mode, inputs, targets, samples, state, masks, loss, logq_offset, bpreg, elu_param, drop):
    masks = iter(masks)
    x = None
    if mode != "none":
        x = params["item_weight" if mode == "shared" else "input_embedding"][inputs]
        if drop["embed"] > 0:
            x = x * next(masks)
    for layer, h in enumerate(state):
        w, b = params[f"gru_input_weights.{layer}"], params[f"gru_input_biases.{layer}"]
        u, c = params[f"gru_hidden_weights.{layer}"], params[f"gru_hidden_biases.{layer}"]
        gi = w[inputs] + b if (layer == 0 and mode == "none") else x @ w + b
        gh = h @ u + c
        size = h.shape[1]
        r = torch.sigmoid(gi[:, :size] + gh[:, :size])
        z = torch.sigmoid(gi[:, size : 2 * size] + gh[:, size : 2 * size])
        n = torch.tanh(gi[:, 2 * size :] + r * gh[:, 2 * size :])
        x = (1 - z) * n + z * h
        if drop["layers"][layer] > 0:
            x = x * next(masks)
    if loss == "ce_full":
        scores = x @ params["item_weight"].T + params["item_bias"]
    else:
        candidates = torch.cat([targets, samples])
        scores = x @ params["item_weight"][candidates].T + params["item_bias"][candidates] - logq_offset
    return naive_loss(loss, scores, targets, bpreg, elu_param)


@pytest.mark.parametrize("use_kernels", [None, False])
@pytest.mark.parametrize(
    "loss,mode,layers",
    [
        ("ce_sampled", "shared", [6, 5]),
        ("bpr_max", "shared", [5]),
        ("ce_full", "shared", [5]),
        ("top1_max", "separate", [6, 5]),
        ("bpr", "none", [6, 5]),
        ("top1", "none", [5]),
        ("ce_full", "separate", [5]),
    ],
)
def test_step_gradients_match_autograd(loss, mode, layers, use_kernels):
    torch.manual_seed(0)
    support = np.arange(1, N_ITEMS + 1)
    model = GRU4Rec(N_ITEMS, layers, embedding=mode, seed=3)
    step = tiny_step(model, loss, support, use_kernels=use_kernels is not False)
    with torch.no_grad():
        model.item_bias.normal_()
        for bias in list(model.gru_input_biases) + list(model.gru_hidden_biases):
            bias.normal_()
    params = {name: p.detach().clone().requires_grad_(True) for name, p in model.named_parameters()}
    recorder = GradientRecorder()
    step.optimizer = recorder
    masks = []
    make_mask = step._dropout_mask
    step._dropout_mask = lambda shape, p: masks.append(make_mask(shape, p)) or masks[-1]
    inputs, targets, samples = torch.tensor([0, 5, 5, 29]), torch.tensor([7, 5, 1, 9]), torch.tensor([3, 7, 7, 20, 11])
    state = [torch.randn(4, size) * 0.5 for size in layers]
    reference_state = [h.clone() for h in state]
    step(inputs, targets, samples, state)

    log_support = torch.log(torch.as_tensor(support, dtype=torch.float32))
    logq_offset = torch.cat([log_support[targets], 0.5 * log_support[samples]]) if loss == "ce_sampled" else 0.0
    drop = {"embed": 0.3, "layers": [0.3 if (mode == "none" and i == 0) else 0.25 for i in range(len(layers))]}
    expected = reference_loss(
        params,
        mode,
        inputs,
        targets,
        samples,
        reference_state,
        masks,
        loss,
        logq_offset,
        0.5,
        0.5 if loss != "ce_full" and not loss.startswith("ce") else 0.0,
        drop,
    )
    expected.backward()
    for name, param in params.items():
        got = step.dense_grads[name] if name in step.dense_grads else recorder.rows[name]
        torch.testing.assert_close(got, param.grad, rtol=2e-4, atol=2e-6, msg=f"gradient of {name}")


def test_gru_cell_matches_torch():
    model = GRU4Rec(N_ITEMS, [7], embedding="shared", seed=1)
    cell = torch.nn.GRUCell(7, 7)
    with torch.no_grad():
        cell.weight_ih.copy_(model.gru_input_weights[0].T)
        cell.weight_hh.copy_(model.gru_hidden_weights[0].T)
        cell.bias_ih.copy_(torch.randn(21))
        cell.bias_hh.copy_(torch.randn(21))
        model.gru_input_biases[0].copy_(cell.bias_ih)
        model.gru_hidden_biases[0].copy_(cell.bias_hh)
    inputs = torch.tensor([1, 4, 9])
    state = [torch.randn(3, 7)]
    out, new_state = model.step(inputs, state)
    with torch.no_grad():
        expected = cell(model.item_weight[inputs], state[0])
    torch.testing.assert_close(out, expected)
    assert new_state[0] is out
    before = out.clone()
    GRU4Rec.reset_slots(new_state, torch.tensor([False, True, False]))
    assert torch.all(new_state[0][1] == 0)
    assert torch.equal(new_state[0][[0, 2]], before[[0, 2]])


# -- whole runs ------------------------------------------------------------------------------------
def read_history(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("loss", LOSSES)
def test_training_lowers_the_loss(tmp_path, loss):
    train, support = tiny_sessions()
    summary = train_tiny(tmp_path / "m", train, support, tiny_config(loss))
    history = read_history(tmp_path / "m" / "history.csv")
    assert list(history[0]) == ["epoch", "loss", "events", "events_per_s", "wall_s"]
    losses = [float(row["loss"]) for row in history]
    assert losses[-1] < losses[0]
    assert summary["epochs"] == 3 and summary["device"] == "cpu"
    assert np.isfinite(summary["final_loss"]) and summary["events_per_s"] > 0


@pytest.mark.parametrize("loss,n_sample", [("bpr_max", 8), ("ce_full", 0), ("bpr", 0)])
def test_an_epoch_trains_every_event_once_as_the_official_gru4rec(tmp_path, loss, n_sample):
    """The last sessions' events too, with ever fewer lanes; without shared samples (the other lanes' targets are a
    lane's only negatives) until fewer than two lanes are left."""
    train, support = tiny_sessions()
    pairs = int((train.lengths() - 1).sum())
    config = tiny_config(loss, n_sample=n_sample, epochs=2)
    train_tiny(tmp_path / "m", train, support, config)
    events = [int(row["events"]) for row in read_history(tmp_path / "m" / "history.csv")]
    if loss == "bpr":
        iterator = SessionParallelIterator(train.offsets, config.batch_size)
        expected = sum(block.n_events for block in iterator.blocks(min_slots=2))
        assert pairs - 6 < expected < pairs  # the last lane's remaining events, at most a session's
        assert events == [expected, expected]
    else:
        assert events == [pairs, pairs]


def test_a_training_keeps_the_vocabulary_it_trained_with_in_its_folder(tmp_path):
    """What ``recommend`` reads by default: the model's folder is all it needs."""
    train, support = tiny_sessions()
    train_tiny(tmp_path / "m", train, support, tiny_config("bpr", epochs=1))
    vocabulary = Vocabulary.load(tmp_path / "m" / "vocab.parquet")
    assert vocabulary.identity() == load_model(tmp_path / "m" / "model.pt").vocabulary
    assert vocabulary.item_ids.tolist() == list(range(100, 100 + N_ITEMS))


def test_a_vocabulary_read_from_the_model_folder_itself_is_left_as_it_is(tmp_path):
    train, support = tiny_sessions()
    job = tiny_job(tmp_path / "m", train, support, tiny_config("bpr", epochs=1))
    (tmp_path / "m").mkdir()
    own = shutil.copy2(job.vocab, tmp_path / "m" / "vocab.parquet")
    before = os.stat(own)
    job = dataclasses.replace(job, vocab=str(own))
    loop.train(job, load_inputs(job))
    after = os.stat(own)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_same_seed_gives_identical_weights(tmp_path):
    train, support = tiny_sessions()
    for name in ("a", "b"):
        train_tiny(tmp_path / name, train, support, tiny_config(dropout_hidden=0.3))
    a, b = load_model(tmp_path / "a" / "model.pt"), load_model(tmp_path / "b" / "model.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
    train, support = tiny_sessions()
    config = tiny_config("bpr_max", dropout_hidden=0.2, sample_store_size=40)
    train_tiny(tmp_path / "full", train, support, config, checkpoints=True)

    with crash_after_next_checkpoint(monkeypatch):
        train_tiny(tmp_path / "resumed", train, support, config, checkpoints=True)
    assert not (tmp_path / "resumed" / "model.pt").exists()
    assert len(read_history(tmp_path / "resumed" / "history.csv")) == 1
    train_tiny(tmp_path / "resumed", train, support, config, checkpoints=True)

    full, resumed = load_model(tmp_path / "full" / "model.pt"), load_model(tmp_path / "resumed" / "model.pt")
    for (name, x), (_, y) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(x, y), name
    losses = lambda path: [row["loss"] for row in read_history(path / "history.csv")]  # noqa: E731
    assert losses(tmp_path / "full") == losses(tmp_path / "resumed")


def test_checkpoint_of_another_configuration_is_not_resumed(tmp_path, caplog):
    from gru4rec_pipeline.training.state import checkpoint_path

    train, support = tiny_sessions()
    first = tiny_job(tmp_path / "m", train, support, tiny_config(epochs=1), checkpoints=True)
    loop.train(first, load_inputs(first))
    other = tiny_job(tmp_path / "m", train, support, tiny_config(epochs=1, learning_rate=0.05), checkpoints=True)
    # The first training's checkpoint where the other one's would be: it is not that training's.
    written = checkpoint_path(first.model_folder.checkpoints, first.identity_digest())
    mine = checkpoint_path(other.model_folder.checkpoints, other.identity_digest())
    assert written != mine
    mine.parent.mkdir(parents=True)
    written.rename(mine)
    with caplog.at_level(logging.WARNING):
        loop.train(other, load_inputs(other))
    assert "belongs to another run; starting over" in caplog.text
    assert len(read_history(tmp_path / "m" / "history.csv")) == 1


def test_model_file_loads_without_unpickling(tmp_path):
    train, support = tiny_sessions()
    train_tiny(tmp_path / "m", train, support, tiny_config(epochs=1, embedding="separate"))
    payload = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert payload["hyperparameters"]["embedding"] == "separate"
    model = load_model(tmp_path / "m" / "model.pt")
    weight, bias = model.output_weights()
    assert weight.shape == (N_ITEMS, 12) and bias.shape == (N_ITEMS,)
    out, state = model.step(torch.tensor([1, 2]), model.init_state(2))
    assert out.shape == (2, 12) and len(state) == 1


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="'colour'"):
        Hyperparameters.from_dict({"loss": "bpr_max", "colour": 1})
    with pytest.raises(ConfigError, match="'loss'"):
        Hyperparameters.from_dict({"loss": "hinge"})
    with pytest.raises(ConfigError, match="'dropout_hidden'"):
        Hyperparameters.from_dict({"loss": "bpr_max", "dropout_hidden": 1.5})
    with pytest.raises(ConfigError, match="'batch_size'"):
        Hyperparameters.from_dict({"loss": "bpr_max", "batch_size": "many"})
    config = Hyperparameters.from_dict({"loss": "bpr_max", "layers": "100/50"})
    assert config.layers == [100, 50] and config.bpreg == DEFAULT_HYPERPARAMETERS["bpr_max"]["bpreg"]
    assert set(DEFAULT_HYPERPARAMETERS) == set(LOSSES)


def test_command_line_trains_from_files(tmp_path):
    from gru4rec_pipeline.cli import main

    train, support = tiny_sessions()
    train.save(tmp_path / "train.npz")
    pd.DataFrame({"ItemId": np.arange(N_ITEMS) + 100, "ItemIdx": np.arange(N_ITEMS), "Support": support}).to_parquet(
        tmp_path / "vocab.parquet"
    )
    argv = [
        "train",
        "--train",
        str(tmp_path / "train.npz"),
        "--vocab",
        str(tmp_path / "vocab.parquet"),
        "--loss",
        "top1_max",
        "--set",
        "epochs=1",
        "--set",
        "batch_size=4",
        "--set",
        "layers=[8]",
        "--set",
        "n_sample=5",
        "--out",
        str(tmp_path / "m"),
        "--threads",
        "1",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(argv) == 0
    model = load_model(tmp_path / "m" / "model.pt")
    assert model.n_items == N_ITEMS and model.vocabulary == Vocabulary.load(tmp_path / "vocab.parquet").identity()
    # The same files as the workflow's training: the summary beside the model; checkpoints gone once it is written.
    assert json.loads((tmp_path / "m" / "training.json").read_text())["epochs"] == 1
    assert (tmp_path / "m" / "history.csv").exists() and (tmp_path / "m" / "training_state.pt").exists()
    assert not (tmp_path / "m" / "checkpoints").exists()
    assert main(argv[:-1] + ["--set", "colour=red", "--quiet"]) == 2


# -- the optimizer ---------------------------------------------------------------------------------
def reference_adagrad_momentum(param, grads, lr, momentum, eps=1e-6):
    """The official update, applied to whole tensors (rows with zero gradient would still move)."""
    acc, mom = torch.zeros_like(param), torch.zeros_like(param)
    for grad in grads:
        acc += grad * grad
        mom = momentum * mom - lr * grad / torch.sqrt(acc + eps)
        param = param + mom
    return param


@pytest.mark.parametrize("momentum", [0.0, 0.3])
@pytest.mark.parametrize("use_kernels", [None, False])
def test_row_updates_sum_duplicates_and_leave_other_rows_alone(momentum, use_kernels):
    generator = torch.Generator().manual_seed(0)
    param = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    optimizer = AdagradMomentum(0.1, momentum)
    optimizer.use_kernels = use_kernels
    optimizer.add_rows("w", param)
    updated = param.clone()
    steps = [
        (torch.tensor([4, 1, 4, 4]), torch.randn(4, 3, generator=generator, dtype=torch.float64)),
        (torch.tensor([1, 2]), torch.randn(2, 3, generator=generator, dtype=torch.float64)),
    ]
    for rows, grad in steps:
        optimizer.update_rows("w", updated, rows, grad.clone())
    # Rows 1 and 4 are touched in step 1; rows 1 and 2 in step 2: row 4's momentum must not move it in step 2.
    dense = [torch.zeros_like(param).index_add_(0, rows, grad) for rows, grad in steps]
    expected = param.clone()
    expected[4] = reference_adagrad_momentum(param[4], [dense[0][4]], 0.1, momentum)
    expected[1] = reference_adagrad_momentum(param[1], [dense[0][1], dense[1][1]], 0.1, momentum)
    expected[2] = reference_adagrad_momentum(param[2], [dense[1][2]], 0.1, momentum)
    torch.testing.assert_close(updated, expected)


@pytest.mark.parametrize("use_kernels", [None, False])
def test_dense_update_is_the_official_step(use_kernels):
    generator = torch.Generator().manual_seed(2)
    param = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    grads = [torch.randn(4, 5, generator=generator, dtype=torch.float64) for _ in range(3)]
    optimizer = AdagradMomentum(0.2, 0.4)
    optimizer.use_kernels = use_kernels
    optimizer.add_dense("d", param)
    updated = param.clone()
    for grad in grads:
        optimizer.update_dense("d", updated, grad)
    torch.testing.assert_close(updated, reference_adagrad_momentum(param, grads, 0.2, 0.4))


def test_first_entries_point_each_entry_to_the_first_entry_of_its_row():
    optimizer = AdagradMomentum(0.1, 0.0)
    param = torch.zeros(10, 3)
    assert optimizer.first_entries(param, torch.tensor([4, 7, 4, 2, 7, 7, 9, 2])).tolist() == [0, 1, 0, 3, 1, 1, 6, 3]
    # The table is reused without a reset: a second call must not see the first call's rows.
    assert optimizer.first_entries(param, torch.tensor([2, 4, 2])).tolist() == [0, 1, 0]


@pytest.mark.parametrize("use_kernels", [None, False])
def test_bias_is_updated_on_its_prefix_of_entries_only(use_kernels):
    """The output bias is updated on the candidate entries only (a prefix of the touched rows): an item
    that only occurs after the prefix (an input) keeps its bias, accumulator and momentum."""
    optimizer = AdagradMomentum(0.1, 0.5)
    optimizer.use_kernels = use_kernels
    weight = torch.zeros(6, 2, dtype=torch.float64)
    bias = torch.arange(6, dtype=torch.float64)
    optimizer.add_rows("w", weight)
    optimizer.add_rows("b", bias)
    optimizer.state["b"][:, 1] = 1.0  # momentum that would move any updated row
    rows = torch.tensor([1, 3, 1, 5])  # 5 only after the prefix of length 3
    weight_grad = torch.ones(4, 2, dtype=torch.float64)
    bias_grad = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    optimizer.update_rows_with_bias("w", weight, "b", bias, rows, weight_grad, bias_grad.clone())
    expected = reference_adagrad_momentum(
        torch.arange(6, dtype=torch.float64), [torch.tensor([0, 1.5, 0, 2, 0, 0], dtype=torch.float64)], 0.1, 0.5
    )
    expected[[1, 3]] += 0.5  # rows 1 and 3 start with momentum 1: add its decayed value
    torch.testing.assert_close(bias[[1, 3]], expected[[1, 3]])
    assert bias[5] == 5 and bias[0] == 0
    assert torch.equal(optimizer.state["b"][5], torch.tensor([0.0, 1.0], dtype=torch.float64))
    # The weight rows are updated on every entry, row 5 included; row 1's gradient is summed (2).
    expected_weight = reference_adagrad_momentum(
        torch.zeros(6, 2, dtype=torch.float64),
        [torch.tensor([[0, 0], [2, 2], [0, 0], [1, 1], [0, 0], [1, 1]], dtype=torch.float64)],
        0.1,
        0.5,
    )
    torch.testing.assert_close(weight, expected_weight)


def test_kernel_and_tensor_paths_train_alike(tmp_path, monkeypatch):
    from gru4rec_pipeline.model import losses, optim
    from gru4rec_pipeline.model import network as model

    train, support = tiny_sessions()
    for loss in ("ce_sampled", "bpr_max"):
        config = tiny_config(loss, epochs=1, elu_param=0.5 if loss == "bpr_max" else 0.0)
        train_tiny(tmp_path / "a", train, support, config)
        with monkeypatch.context() as patched:
            patched.setattr(optim.AdagradMomentum, "kernels_for", lambda self, param: False)
            patched.setattr(losses, "kernels_apply", lambda *args: False)
            patched.setattr(model, "gru_kernels_apply", lambda *args: False)
            train_tiny(tmp_path / "b", train, support, config)
        a, b = load_model(tmp_path / "a" / "model.pt"), load_model(tmp_path / "b" / "model.pt")
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            # Rounding differs (fused exponentials, summation order); a wrong update would differ by ~lr.
            torch.testing.assert_close(x, y, rtol=1e-3, atol=3e-4, msg=f"{loss}: {name}")


def test_a_second_training_of_the_same_output_refuses_to_start(tmp_path):
    """As when a hard-killed Snakemake left its training running and the job is started again."""
    from gru4rec_pipeline.errors import PipelineError
    from gru4rec_pipeline.training.run import TrainingLock, run_training

    train, support = tiny_sessions()
    out = tmp_path / "models" / "bpr"
    job = tiny_job(out, train, support, tiny_config("bpr", epochs=1, layers=[8], n_sample=5), device="cpu")
    job = TrainingJob(job.train, job.vocab, job.folder, job.hyperparameters, RunOptions(device="cpu", progress=False))
    out.mkdir(parents=True)
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "of-the-running-one").write_text("")
    with TrainingLock(out):  # the training still running
        with pytest.raises(PipelineError, match=rf"another training of this output is running \(process {os.getpid()}"):
            run_training(job)
    # It touched nothing of the running training's.
    assert (out / "checkpoints" / "of-the-running-one").exists() and not (out / "model.pt").exists()
    # Once that one has ended, the same call trains.
    run_training(job)
    assert (out / "model.pt").exists() and not (out / "checkpoints").exists()


def test_rank_0_of_a_data_parallel_training_keeps_the_folder_locked_without_its_launcher(tmp_path):
    from gru4rec_pipeline.errors import PipelineError
    from gru4rec_pipeline.training.run import LOCK_NAME, TrainingLock

    out = tmp_path / "model"
    launcher = TrainingLock(out).__enter__()
    launcher.share()
    with TrainingLock(out, shared=True):  # rank 0 joins
        launcher.__exit__(None, None, None)  # the launcher is gone
        with pytest.raises(PipelineError, match=rf"running \(processes {os.getpid()}, {os.getpid()}, lock"):
            TrainingLock(out).__enter__()
        assert (out / LOCK_NAME).exists()
    assert list(out.iterdir()) == []  # the last holder removed the lock file
    with TrainingLock(out):
        pass
