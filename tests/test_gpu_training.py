"""The engines on a GPU: CUDA graph replay against eager execution of the same static step, GPU training
against CPU training, no host synchronisation inside an epoch, checkpoints across device types.

Skipped without a CUDA device. Tolerances: on one GPU, graph replay and eager execution run the same kernels,
but the scattered additions that merge duplicate rows use atomics, whose order (hence rounding) varies from
run to run, and a few hundred steps at learning rate 0.2 amplify rounding differences (between the CPU's
compiled kernels and its tensor code too) to some 1e-4; a wrong mask, sample or update would differ by about
the learning rate, far above the tolerances.
"""

from __future__ import annotations

import logging

import pytest
import torch

from gru4rec_pipeline.model.folder import load_model
from gru4rec_pipeline.training.graphs import FixedShapeEngine
from test_engines import build, reference_epoch
from test_one_step import assert_same_training
from test_training import read_history, tiny_config, tiny_sessions, train_tiny

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the engine graphs cannot be run here"
)


def close_training(x_step, y_step, atol, rtol):
    """Weights and optimizer state of two steps (possibly on different devices) agree."""
    for (name, x), (_, y) in zip(x_step.model.state_dict().items(), y_step.model.state_dict().items()):
        torch.testing.assert_close(y.cpu(), x.cpu(), atol=atol, rtol=rtol, msg=f"weights {name}")
    for name, x in x_step.optimizer.state.items():
        torch.testing.assert_close(y_step.optimizer.state[name].cpu(), x.cpu(), atol=atol, rtol=rtol, msg=name)


@pytest.mark.parametrize(
    "loss,overrides",
    [
        ("ce_sampled", {"dropout_embed": 0.1, "dropout_hidden": 0.3}),
        ("bpr_max", {"elu_param": 0.5, "layers": [12, 8], "dropout_hidden": 0.2}),
        ("top1", {"embedding": "separate", "dropout_embed": 0.2}),
        ("ce_full", {"embedding": "none", "dropout_hidden": 0.3}),
    ],
)
def test_graph_replay_equals_eager_execution_over_200_steps(loss, overrides):
    train, support = tiny_sessions(n_sessions=300)  # 235 steps of batch 4
    config = tiny_config(loss, sample_store_size=8 * 13, **overrides)  # 13 rows: refills between replays
    graphed_step, graphed_sampler, iterator = build(config, train, support, "cuda", use_kernels=False)
    eager_step, eager_sampler, _ = build(config, train, support, "cuda", use_kernels=False)
    graphed = FixedShapeEngine(graphed_step, graphed_sampler, train.items, iterator, graph_steps=8, piece_steps=64)
    eager = FixedShapeEngine(
        eager_step, eager_sampler, train.items, iterator, graph_steps=8, piece_steps=64, graphs=False
    )
    assert sorted(graphed.graphs) == [1, 8] and not eager.graphs
    graphed_loss, graphed_steps = graphed.run_epoch()
    eager_loss, eager_steps = eager.run_epoch()
    torch.cuda.synchronize()
    assert graphed_steps == eager_steps >= 200
    torch.testing.assert_close(graphed_loss, eager_loss, rtol=1e-4, atol=1e-4)
    # Also compares the dropout generators exactly: replays consumed the stream as the eager steps did.
    assert_same_training(eager_step, graphed_step, atol=1e-3, rtol=1e-3)
    if eager_sampler is not None:
        assert graphed_sampler.pointer == eager_sampler.pointer
        assert torch.equal(graphed_sampler.generator.get_state(), eager_sampler.generator.get_state())


@pytest.mark.parametrize(
    "loss,overrides",
    [
        ("ce_sampled", {}),
        ("bpr_max", {"elu_param": 0.5, "layers": [12, 8]}),
        ("top1_max", {"embedding": "separate"}),
        ("bpr", {"embedding": "none"}),
    ],
)
def test_gpu_epochs_equal_cpu_epochs(loss, overrides):
    """Two epochs through graphs on the GPU against the CPU's per-step loop (compiled kernels), with the same
    negative samples (both samplers draw on the CPU) and no dropout (CPU and CUDA generators differ)."""
    train, support = tiny_sessions()
    config = tiny_config(loss, dropout_embed=0.0, dropout_hidden=0.0, sample_store_size=56, **overrides)
    cpu_step, cpu_sampler, iterator = build(config, train, support, "cpu")
    gpu_step, gpu_sampler, _ = build(config, train, support, "cuda", sampler_device="cpu", use_kernels=False)
    runner = FixedShapeEngine(gpu_step, gpu_sampler, train.items, iterator, graph_steps=4, piece_steps=32)
    for _ in range(2):
        cpu_loss, cpu_steps = reference_epoch(cpu_step, cpu_sampler, train.items, iterator)
        gpu_loss, gpu_steps = runner.run_epoch()
        assert gpu_steps == cpu_steps
        torch.testing.assert_close(gpu_loss.cpu(), cpu_loss, rtol=1e-3, atol=1e-4)
    # On the CPU, the same comparison (the engine eager against the loop) stays within 5e-4.
    close_training(cpu_step, gpu_step, atol=3e-3, rtol=3e-3)
    assert gpu_sampler.pointer == cpu_sampler.pointer


def test_training_on_the_gpu_equals_the_cpu(tmp_path, caplog):
    """The whole stage: ce_full without dropout has no randomness, so the two devices must agree."""
    train, support = tiny_sessions()
    weights, losses = {}, {}
    for device in ("cpu", "cuda"):
        config = tiny_config("ce_full", dropout_hidden=0.0, epochs=2)
        with caplog.at_level(logging.INFO, logger="gru4rec_pipeline"):
            summary = train_tiny(tmp_path / device, train, support, config, device=device)
        assert summary["device"].startswith(device)
        assert summary["engine"] == {"cpu": "loop", "cuda": "graphs"}[device]
        weights[device] = load_model(tmp_path / device / "model.pt").state_dict()
        losses[device] = [float(row["loss"]) for row in read_history(tmp_path / device / "history.csv")]
    assert "engine: graphs" in caplog.text
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-3)
    for name, x in weights["cpu"].items():
        torch.testing.assert_close(weights["cuda"][name], x, atol=3e-3, rtol=3e-3, msg=name)


@pytest.mark.parametrize("graphs", [True, False])
def test_no_host_synchronisation_inside_an_epoch(graphs):
    """Two epochs (the first one draws the sample store, both refill it; pieces of up to 32 steps) with the
    CUDA sync debug mode raising on any synchronising call."""
    train, support = tiny_sessions()
    config = tiny_config("bpr_max", elu_param=0.5, dropout_hidden=0.3, sample_store_size=56)
    step, sampler, iterator = build(config, train, support, "cuda", use_kernels=False)
    runner = FixedShapeEngine(step, sampler, train.items, iterator, graph_steps=4, piece_steps=16, graphs=graphs)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [runner.run_epoch()[0].clone() for _ in range(2)]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(torch.isfinite(loss) for loss in losses)


def test_checkpoint_moves_between_gpu_and_cpu(tmp_path, caplog):
    train, support = tiny_sessions()
    for first, second in (("cuda", "cpu"), ("cpu", "cuda")):
        folder = tmp_path / f"{first}-{second}"
        one = tiny_config("bpr_max", dropout_hidden=0.2, epochs=1)
        two = tiny_config("bpr_max", dropout_hidden=0.2, epochs=2)
        train_tiny(folder, train, support, one, device=first, checkpoints=True)
        with caplog.at_level(logging.INFO, logger="gru4rec_pipeline"):
            train_tiny(folder, train, support, two, device=second, checkpoints=True)
        assert "after epoch 1" in caplog.text and "saved on another device type" in caplog.text
        history = read_history(folder / "history.csv")
        assert [int(row["epoch"]) for row in history] == [1, 2]
        model = load_model(folder / "model.pt")
        assert all(torch.isfinite(tensor).all() for tensor in model.state_dict().values())
        caplog.clear()
