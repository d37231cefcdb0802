"""The engines (``training.engine``): the fixed-shape engines (``eager``, and ``graphs``: replayed from CUDA graphs
on a GPU) run eagerly on the CPU against the loop, through a training, across checkpoints; the choice of engine;
and the graph orchestration with a stand-in for CUDA graphs (the real ones are tested in
tests/test_gpu_training.py, on a GPU)."""

from __future__ import annotations

import logging
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from conftest import crash_after_next_checkpoint
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.model.folder import load_model
from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.training import engines, graphs
from gru4rec_pipeline.training.engines import LoopEngine, build_engine, engine_name
from gru4rec_pipeline.training.graphs import FixedShapeEngine, FixedShapeSteps
from gru4rec_pipeline.training.iterator import SessionParallelIterator, min_active_slots
from gru4rec_pipeline.training.job import RunOptions
from gru4rec_pipeline.training.loop import build_sampler, build_step
from gru4rec_pipeline.training.state import TrainingState
from test_one_step import assert_same_training
from test_training import SEED, read_history, tiny_config, tiny_sessions, train_tiny


def build(config, train, support, device="cpu", sampler_device=None, use_kernels=True):
    """What a training builds: a step on ``device`` (``use_kernels`` False: the fixed-shape engines' step), a
    sampler (on ``sampler_device``, default the same) and the iterator."""
    step, sampler = build_step(config, support, torch.device(device), SEED, use_kernels)
    if sampler_device is not None:
        sampler = build_sampler(config, support, torch.device(sampler_device), SEED)
    return step, sampler, SessionParallelIterator(train.offsets, config.batch_size)


def reference_epoch(step, sampler, items, iterator):
    """The engine loop, written out."""
    device = step.device
    items = torch.as_tensor(items, device=device)
    state = step.model.init_state(step.batch_size)
    loss_sum, steps = torch.zeros((), device=device), 0
    for block in iterator.blocks(1024, min_active_slots(step.full or sampler is not None)):
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
def test_fixed_shape_epochs_equal_the_reference_loop(loss, overrides, one_thread):
    """Two epochs: pieces of at most 16 steps (blocks split, partial chunks), chunks of 4, a sample store of 7
    rows (a refill every 7 steps, single steps before it)."""
    train, support = tiny_sessions()
    config = tiny_config(loss, sample_store_size=56, **overrides)  # 7 rows: chunks of 4 do not divide it
    reference, reference_sampler, iterator = build(config, train, support)
    fast, fast_sampler, _ = build(config, train, support, use_kernels=False)
    runner = FixedShapeEngine(fast, fast_sampler, train.items, iterator, graph_steps=4, piece_steps=8)
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


def test_a_training_on_the_eager_engine_equals_the_loop(tmp_path, caplog, one_thread):
    train, support = tiny_sessions()
    results = {}
    for engine in ("loop", "eager"):
        with caplog.at_level(logging.INFO, logger="gru4rec_pipeline"):
            config = tiny_config("ce_sampled", dropout_hidden=0.3, epochs=1)
            summary = train_tiny(tmp_path / engine, train, support, config, engine=engine)
        assert summary["engine"] == engine
        results[engine] = load_model(tmp_path / engine / "model.pt").state_dict()
        history = read_history(tmp_path / engine / "history.csv")
        results[engine + "_loss"] = float(history[0]["loss"])
    assert "engine: eager (the fixed-shape step run eagerly on cpu)" in caplog.text
    assert "engine: loop (one call of the step per minibatch on cpu)" in caplog.text
    for name, x in results["loop"].items():
        torch.testing.assert_close(results["eager"][name], x, atol=1e-3, rtol=1e-3, msg=name)
    assert results["eager_loss"] == pytest.approx(results["loop_loss"], rel=1e-4)


def test_eager_resume_equals_uninterrupted_and_mixes_with_the_loop(tmp_path, monkeypatch, one_thread):
    train, support = tiny_sessions()
    config = tiny_config("bpr_max", dropout_hidden=0.2, sample_store_size=40)
    eager = {"engine": "eager", "checkpoints": True}
    train_tiny(tmp_path / "full", train, support, config, **eager)
    with crash_after_next_checkpoint(monkeypatch):
        train_tiny(tmp_path / "r", train, support, config, **eager)
    train_tiny(tmp_path / "r", train, support, config, **eager)
    full, resumed = load_model(tmp_path / "full" / "model.pt"), load_model(tmp_path / "r" / "model.pt")
    for (name, x), (_, y) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(x, y), name
    # The same checkpoint resumed by the loop (the engine is not part of the training's identity).
    with crash_after_next_checkpoint(monkeypatch):
        train_tiny(tmp_path / "m", train, support, config, **eager)
    train_tiny(tmp_path / "m", train, support, config, engine="loop", checkpoints=True)
    assert len(read_history(tmp_path / "m" / "history.csv")) == config.epochs
    for (name, x), (_, y) in zip(
        full.state_dict().items(), load_model(tmp_path / "m" / "model.pt").state_dict().items()
    ):
        torch.testing.assert_close(y, x, atol=2e-3, rtol=1e-3, msg=name)


def test_checkpoint_from_another_device_type_resumes(tmp_path, monkeypatch, caplog):
    """A GPU's generator states (16 bytes) in a checkpoint resumed on a CPU: the weights and the optimizer
    continue exactly, the random streams from seeds derived from the saved states (the same every time)."""
    train, support = tiny_sessions()
    config = tiny_config("ce_sampled", epochs=2)
    real_save = TrainingState.save

    def as_if_from_a_gpu(state, path):
        cuda_like = torch.arange(16, dtype=torch.uint8)
        state.last.dropout_generator = cuda_like
        state.last.sampler = {"generator": cuda_like + 1, "fill_state": cuda_like + 2, "pointer": 3}
        real_save(state, path)
        raise KeyboardInterrupt("simulated crash")

    outputs = []
    for run in ("a", "b"):
        monkeypatch.setattr(TrainingState, "save", as_if_from_a_gpu)
        with pytest.raises(KeyboardInterrupt):
            train_tiny(tmp_path / run, train, support, config, checkpoints=True)
        monkeypatch.setattr(TrainingState, "save", real_save)
        with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline"):
            train_tiny(tmp_path / run, train, support, config, checkpoints=True)
        outputs.append(load_model(tmp_path / run / "model.pt").state_dict())
        assert len(read_history(tmp_path / run / "history.csv")) == 2
    assert "saved on another device type" in caplog.text
    for name, x in outputs[0].items():
        assert torch.equal(x, outputs[1][name]), name


def test_engine_setting(caplog):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert RunOptions().engine == "auto"
    assert engine_name("auto", cuda, False) == "graphs" and engine_name("auto", cpu, False) == "loop"
    assert engine_name("auto", cuda, True) == "eager"  # across processes: no graphs around the all-reduce
    assert engine_name("eager", cpu, False) == "eager" and engine_name("loop", cuda, False) == "loop"
    with pytest.raises(ConfigError, match="'training.engine'.*graphs replays CUDA graphs"):
        engine_name("graphs", cpu, False)
    with pytest.raises(ConfigError, match="'training.engine'.*all-reduce"):
        engine_name("graphs", cuda, True)
    with pytest.raises(ConfigError, match="'training.engine'"):
        RunOptions(engine="sometimes")
    with pytest.raises(ConfigError, match="'fast_path'.*renamed.*training.engine.*--engine"):
        Hyperparameters.from_dict({"loss": "bpr", "fast_path": "on"})
    train, support = tiny_sessions()
    step, sampler, iterator = build(tiny_config(), train, support)
    with caplog.at_level(logging.INFO, logger="gru4rec_pipeline"):
        assert isinstance(build_engine("loop", step, sampler, train.items, iterator), LoopEngine)
    assert "engine: loop" in caplog.text


def failing(*args, **kwargs):
    raise graphs.GraphCaptureError("RuntimeError: operation not permitted when stream is capturing")


def test_capture_failure_falls_back_to_the_loop_with_a_log_line(monkeypatch, caplog):
    monkeypatch.setattr(engines, "FixedShapeEngine", failing)
    train, support = tiny_sessions()
    step, sampler, iterator = build(tiny_config(), train, support, use_kernels=False)
    with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline"):
        assert isinstance(build_engine("graphs", step, sampler, train.items, iterator), LoopEngine)
    assert "could not capture" in caplog.text and "not permitted" in caplog.text


def test_capture_failure_with_graphs_required_is_an_error(monkeypatch):
    monkeypatch.setattr(engines, "FixedShapeEngine", failing)
    train, support = tiny_sessions()
    step, sampler, iterator = build(tiny_config(), train, support, use_kernels=False)
    with pytest.raises(ConfigError, match="'training.engine'.*cannot be captured.*not permitted"):
        build_engine("graphs", step, sampler, train.items, iterator, required=True)


def test_a_sample_store_smaller_than_a_capture_reads_ahead_is_refused_before_capture(monkeypatch):
    """16 + 1 steps of trial run read 17 store rows before any refill: 16 rows would index past the store (a
    sticky device-side assert on a GPU), so capture must not start."""
    train, support = tiny_sessions()
    config = tiny_config("bpr_max", sample_store_size=16 * 8)  # n_sample 8: 16 rows
    step, sampler, iterator = build(config, train, support, use_kernels=False)

    def no_capture(self):
        raise AssertionError("capture started with a store too small for it")

    monkeypatch.setattr(FixedShapeEngine, "_capture", no_capture)
    with pytest.raises(graphs.GraphCaptureError, match="16 rows of 8 samples.*at least 136"):
        FixedShapeEngine(step, sampler, train.items, iterator, graph_steps=16, graphs=True)
    with pytest.raises(ConfigError, match="'training.engine'.*at least 136"):
        build_engine("graphs", step, sampler, train.items, iterator, required=True)
    monkeypatch.setattr(FixedShapeEngine, "_capture", lambda self: None)
    FixedShapeEngine(step, sampler, train.items, iterator, graph_steps=15, graphs=True)  # 15 + 1 rows: enough


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
from pathlib import Path
from test_training import tiny_sessions, tiny_config, train_tiny
from gru4rec_pipeline.model import kernels
assert not kernels.AVAILABLE and kernels.__file__.startswith(sys.argv[2]), kernels.__file__
train, support = tiny_sessions()
summary = train_tiny(Path(sys.argv[1]) / "m", train, support, tiny_config("bpr_max", epochs=1))
assert summary["final_loss"] > 0 and summary["engine"] == "loop"
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
    """``FixedShapeEngine``'s capture and replay logic on the CPU. The stand-in graph behaves as a CUDA graph does
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

    monkeypatch.setattr(graphs, "FixedShapeSteps", RecordingStep)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", StandInGraph)
    monkeypatch.setattr(torch.cuda, "graph", StandInCapture)
    monkeypatch.setattr(torch.cuda, "Stream", StandInStream)
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: StandInStream())

    train, support = tiny_sessions()
    config = tiny_config("bpr_max", dropout_hidden=0.3, elu_param=0.5, sample_store_size=56)
    reference, reference_sampler, iterator = build(config, train, support)
    fast, fast_sampler, _ = build(config, train, support, use_kernels=False)
    runner = FixedShapeEngine(fast, fast_sampler, train.items, iterator, graph_steps=4, piece_steps=16, graphs=True)
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
