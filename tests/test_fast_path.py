"""Epochs through the fast path (the fixed-shape step; replayed from CUDA graphs on a GPU) run eagerly on the
CPU: against the per-step training loop, through ``train_model``, across checkpoints, and the graph
orchestration with a stand-in for CUDA graphs (the real ones are tested in tests/test_gpu_training.py, on a
GPU)."""

from __future__ import annotations

import logging
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from conftest import crash_after_next_checkpoint
from gru4rec_pipeline.model import fast_path, training
from gru4rec_pipeline.model.fast_path import FastPathEpochs, FixedShapeSteps, fast_path_epochs, fast_path_wanted
from gru4rec_pipeline.model.hyperparameters import TrainConfig
from gru4rec_pipeline.model.iterator import SessionParallelIterator, min_active_lanes
from gru4rec_pipeline.model.loading import load_model
from gru4rec_pipeline.model.training import build_step, train_model
from test_one_step import assert_same_training
from test_training import read_history, tiny_config, tiny_sessions


def build(config, train, support, device="cpu", sampler_device=None):
    """What ``train_model`` builds: a step on ``device``, a sampler (on ``sampler_device``, default the same)
    and the iterator."""
    step, sampler = build_step(config, support, torch.device(device), sampler_device and torch.device(sampler_device))
    return step, sampler, SessionParallelIterator(train.offsets, config.batch_size)


def reference_epoch(step, sampler, items, iterator):
    """The per-step loop of ``train_model``."""
    device = step.device
    items = torch.as_tensor(items, device=device)
    state = step.model.init_state(step.batch_size)
    loss_sum, steps = torch.zeros((), device=device), 0
    for block in iterator.blocks(1024, min_active_lanes(step.full or sampler is not None)):
        positions = torch.as_tensor(block.positions, device=device)
        keep = torch.as_tensor(~block.new_session, device=device).float().unsqueeze(2)
        active = [None] * block.n_steps if block.active is None else block.active
        for t in range(block.n_steps):
            for h in state:
                h.mul_(keep[t])
            samples = sampler.next() if sampler is not None else None
            loss_sum += step(items[positions[t]], items[positions[t] + 1], samples, state, active[t])
        steps += block.n_steps
    return loss_sum, steps


@pytest.mark.parametrize(
    "loss,overrides",
    [
        ("ce_sampled", {"dropout_embed": 0.1, "dropout_hidden": 0.3}),
        ("bpr_max", {"layers": [8, 6], "elu_param": 0.5, "dropout_hidden": 0.2}),
        ("top1_max", {"embedding": "separate", "dropout_embed": 0.2}),
        ("ce_full", {"embedding": "none", "dropout_embed": 0.2}),
    ],
)
def test_fast_epochs_equal_the_reference_loop(loss, overrides, one_thread):
    """Two epochs: pieces of at most 16 steps (blocks split, partial chunks), chunks of 4, a sample store of 7
    rows (a refill every 7 steps, single steps before it)."""
    train, support = tiny_sessions()
    config = tiny_config(loss, sample_store_size=56, **overrides)  # 7 rows: chunks of 4 do not divide it
    reference, reference_sampler, iterator = build(config, train, support)
    fast, fast_sampler, _ = build(config, train, support)
    runner = FastPathEpochs(fast, fast_sampler, train.items, iterator, graph_steps=4, piece_steps=8)
    for _ in range(2):
        reference_loss, reference_steps = reference_epoch(reference, reference_sampler, train.items, iterator)
        fast_loss, fast_steps = runner.run_epoch()
        assert fast_steps == reference_steps
        assert runner.events == iterator.upper_bound_events()  # the last steps' retiring lanes included
        torch.testing.assert_close(fast_loss, reference_loss, rtol=1e-4, atol=1e-4)
    # Float rounding differs from the compiled kernels, and 250 steps at learning rate 0.2 amplify it
    # (the reference's own kernel and tensor paths differ by as much); a wrong update would differ by ~lr.
    assert_same_training(reference, fast, atol=1e-3, rtol=1e-3)
    if reference_sampler is not None:
        assert fast_sampler.pointer == reference_sampler.pointer
        assert torch.equal(fast_sampler.generator.get_state(), reference_sampler.generator.get_state())


def test_train_model_through_the_fast_path_equals_the_loop(tmp_path, caplog, one_thread):
    train, support = tiny_sessions()
    results = {}
    for mode in ("off", "on"):
        with caplog.at_level(logging.INFO, logger="gru4rec_pipeline"):
            config = tiny_config("ce_sampled", fast_path=mode, dropout_hidden=0.3, epochs=1)
            summary = train_model(
                train, support, config, tmp_path / f"{mode}.pt", tmp_path / f"{mode}.csv", progress=False
            )
        assert summary["fast_path"] == {"off": "off", "on": "eager"}[mode]
        results[mode] = load_model(tmp_path / f"{mode}.pt").state_dict()
        history = read_history(tmp_path / f"{mode}.csv")
        results[mode + "_loss"] = float(history[0]["loss"])
    assert "fast path: eager (the fixed-shape step run eagerly on cpu)" in caplog.text
    for name, x in results["off"].items():
        torch.testing.assert_close(results["on"][name], x, atol=1e-3, rtol=1e-3, msg=name)
    assert results["on_loss"] == pytest.approx(results["off_loss"], rel=1e-4)


def test_fast_path_resume_equals_uninterrupted_and_mixes_with_the_loop(tmp_path, monkeypatch, one_thread):
    train, support = tiny_sessions()
    config = tiny_config("bpr_max", dropout_hidden=0.2, sample_store_size=40, fast_path="on")
    train_model(train, support, config, tmp_path / "full.pt", tmp_path / "full.csv", tmp_path / "ck", progress=False)
    with crash_after_next_checkpoint(monkeypatch):
        train_model(train, support, config, tmp_path / "r.pt", tmp_path / "r.csv", tmp_path / "ck2", progress=False)
    train_model(train, support, config, tmp_path / "r.pt", tmp_path / "r.csv", tmp_path / "ck2", progress=False)
    full, resumed = load_model(tmp_path / "full.pt"), load_model(tmp_path / "r.pt")
    for (name, x), (_, y) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(x, y), name
    # The same checkpoint resumed by the per-step loop (the setting is not part of the run's identity).
    with crash_after_next_checkpoint(monkeypatch):
        train_model(train, support, config, tmp_path / "m.pt", tmp_path / "m.csv", tmp_path / "ck3", progress=False)
    loop = TrainConfig.from_dict({**config.to_dict(), "fast_path": "off"})
    train_model(train, support, loop, tmp_path / "m.pt", tmp_path / "m.csv", tmp_path / "ck3", progress=False)
    assert len(read_history(tmp_path / "m.csv")) == config.epochs
    for (name, x), (_, y) in zip(full.state_dict().items(), load_model(tmp_path / "m.pt").state_dict().items()):
        torch.testing.assert_close(y, x, atol=2e-3, rtol=1e-3, msg=name)


def test_checkpoint_from_another_device_type_resumes(tmp_path, monkeypatch, caplog):
    """A GPU's generator states (16 bytes) in a checkpoint resumed on a CPU: the weights and the optimizer
    continue exactly, the random streams from seeds derived from the saved states (the same every time)."""
    train, support = tiny_sessions()
    config = tiny_config("ce_sampled", epochs=2)
    real_save = training.save_checkpoint

    def as_if_from_a_gpu(path, payload):
        cuda_like = torch.arange(16, dtype=torch.uint8)
        payload["dropout_generator"] = cuda_like
        payload["sampler"] = {"generator": cuda_like + 1, "fill_state": cuda_like + 2, "pointer": 3}
        real_save(path, payload)
        raise KeyboardInterrupt("simulated crash")

    outputs = []
    for run in ("a", "b"):
        monkeypatch.setattr(training, "save_checkpoint", as_if_from_a_gpu)
        with pytest.raises(KeyboardInterrupt):
            train_model(train, support, config, tmp_path / "x.pt", tmp_path / "x.csv", tmp_path / run, progress=False)
        monkeypatch.setattr(training, "save_checkpoint", real_save)
        with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline"):
            train_model(
                train, support, config, tmp_path / f"{run}.pt", tmp_path / f"{run}.csv", tmp_path / run, progress=False
            )
        outputs.append(load_model(tmp_path / f"{run}.pt").state_dict())
        assert len(read_history(tmp_path / f"{run}.csv")) == 2
    assert "saved on another device type" in caplog.text
    for name, x in outputs[0].items():
        assert torch.equal(x, outputs[1][name]), name


def test_fast_path_setting(caplog):
    config = tiny_config()
    assert config.fast_path == "auto"
    assert fast_path_wanted(torch.device("cuda"), config) and not fast_path_wanted(torch.device("cpu"), config)
    assert fast_path_wanted(torch.device("cpu"), tiny_config(fast_path="on"))
    off = tiny_config(fast_path="off")
    assert not fast_path_wanted(torch.device("cuda"), off)
    with caplog.at_level(logging.INFO, logger="gru4rec_pipeline"):
        assert fast_path_epochs(off, torch.device("cuda"), None, None, None, None) is None
    assert "fast path: off (fast_path=off)" in caplog.text
    with pytest.raises(training.ConfigError, match="'fast_path'"):
        tiny_config(fast_path="sometimes")


def test_capture_failure_falls_back_to_the_loop_with_a_log_line(monkeypatch, caplog):

    def failing(*args, **kwargs):
        raise fast_path.GraphCaptureError("RuntimeError: operation not permitted when stream is capturing")

    monkeypatch.setattr(fast_path, "FastPathEpochs", failing)
    with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline"):
        step, _ = build_step(tiny_config(), tiny_sessions()[1], torch.device("cpu"))
        assert fast_path_epochs(tiny_config(), torch.device("cuda"), step, None, None, None) is None
    assert "could not be captured" in caplog.text and "not permitted" in caplog.text


def test_capture_failure_with_the_fast_path_required_is_an_error(monkeypatch):
    def failing(*args, **kwargs):
        raise fast_path.GraphCaptureError("RuntimeError: operation not permitted when stream is capturing")

    monkeypatch.setattr(fast_path, "FastPathEpochs", failing)
    with pytest.raises(training.ConfigError, match="'fast_path'.*cannot be captured.*not permitted"):
        step, _ = build_step(tiny_config(), tiny_sessions()[1], torch.device("cpu"))
        fast_path_epochs(tiny_config(fast_path="on"), torch.device("cuda"), step, None, None, None)


def test_a_sample_store_smaller_than_a_capture_reads_ahead_is_refused_before_capture(monkeypatch):
    """16 + 1 steps of trial run read 17 store rows before any refill: 16 rows would index past the store (a
    sticky device-side assert on a GPU), so capture must not start."""
    train, support = tiny_sessions()
    config = tiny_config("bpr_max", sample_store_size=16 * 8)  # n_sample 8: 16 rows
    step, sampler, iterator = build(config, train, support)

    def no_capture(self):
        raise AssertionError("capture started with a store too small for it")

    monkeypatch.setattr(FastPathEpochs, "_capture", no_capture)
    with pytest.raises(fast_path.GraphCaptureError, match="16 rows of 8 samples.*at least 136"):
        FastPathEpochs(step, sampler, train.items, iterator, graph_steps=16, graphs=True)
    with pytest.raises(training.ConfigError, match="'fast_path'.*at least 136"):
        fast_path_epochs(
            TrainConfig.from_dict({**config.to_dict(), "fast_path": "on"}),
            torch.device("cuda"),
            step,
            sampler,
            train.items,
            iterator,
        )
    monkeypatch.setattr(FastPathEpochs, "_capture", lambda self: None)
    FastPathEpochs(step, sampler, train.items, iterator, graph_steps=15, graphs=True)  # 15 + 1 rows: enough


def test_training_modules_import_and_train_without_numba(tmp_path):
    """A GPU machine may have only torch, numpy, pandas and pyarrow: the CPU kernels are then skipped."""
    script = """
import sys
class NoNumba:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba", "llvmlite"):
            raise ImportError("no " + name)
sys.meta_path.insert(0, NoNumba())
sys.path.insert(0, "tests")
from test_training import tiny_sessions, tiny_config
from gru4rec_pipeline.model import kernels
from gru4rec_pipeline.model.training import build_step, train_model
assert not kernels.AVAILABLE and kernels.__file__.startswith(sys.argv[2]), kernels.__file__
train, support = tiny_sessions()
summary = train_model(train, support, tiny_config("bpr_max", epochs=1), sys.argv[1] + "/m.pt", sys.argv[1] + "/h.csv")
assert summary["final_loss"] > 0
"""
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": str(root / "src"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(root / "src")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


class StandInStream:
    def __init__(self, device=None):
        pass

    def wait_stream(self, other):
        pass


def test_graph_orchestration_with_a_stand_in_for_cuda_graphs(monkeypatch, one_thread):
    """``FastPathEpochs``'s capture and replay logic on the CPU. The stand-in graph behaves as a CUDA graph does
    for this purpose: capturing records the chunk size and leaves every tensor and the dropout generator as
    they were; a replay runs that chunk. Trial steps must be undone, every chunk must come from a graph."""
    steps = []

    class RecordingStep(FixedShapeSteps):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            steps.append(self)

    class StandInGraph:
        def __init__(self):
            self.size, self.generators, self.replays = None, [], 0

        def register_generator_state(self, generator):
            self.generators.append(generator)

        def replay(self):
            self.replays += 1
            FixedShapeSteps.run_chunk(steps[-1], self.size)

    class StandInCapture:
        def __init__(self, graph, stream=None):
            self.graph = graph

        def __enter__(self):
            static = steps[-1]
            self.saved = [tensor.clone() for tensor in static.mutable_tensors()]
            self.generator = static.step.dropout_generator.get_state()

            def record(size):
                self.graph.size = size
                FixedShapeSteps.run_chunk(static, size)

            static.run_chunk = record

        def __exit__(self, *exc_info):
            static = steps[-1]
            del static.run_chunk
            for tensor, value in zip(static.mutable_tensors(), self.saved):
                tensor.copy_(value)
            static.step.dropout_generator.set_state(self.generator)

    monkeypatch.setattr(fast_path, "FixedShapeSteps", RecordingStep)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", StandInGraph)
    monkeypatch.setattr(torch.cuda, "graph", StandInCapture)
    monkeypatch.setattr(torch.cuda, "Stream", StandInStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: StandInStream())

    train, support = tiny_sessions()
    config = tiny_config("bpr_max", dropout_hidden=0.3, elu_param=0.5, sample_store_size=56)
    reference, reference_sampler, iterator = build(config, train, support)
    fast, fast_sampler, _ = build(config, train, support)
    runner = FastPathEpochs(fast, fast_sampler, train.items, iterator, graph_steps=4, piece_steps=16, graphs=True)
    assert sorted(runner.graphs) == [1, 4]

    def eager_chunk(size):
        raise AssertionError("a chunk ran outside the graphs")

    runner.static.run_chunk = eager_chunk
    assert all(graph.generators == [fast.dropout_generator] for graph in runner.graphs.values())
    for _ in range(2):
        reference_loss, _ = reference_epoch(reference, reference_sampler, train.items, iterator)
        fast_loss, _ = runner.run_epoch()
        torch.testing.assert_close(fast_loss, reference_loss, rtol=1e-4, atol=1e-4)
    assert runner.graphs[4].replays > 0 and runner.graphs[1].replays > 0
    assert_same_training(reference, fast, atol=1e-3, rtol=1e-3)
