"""The one training step against the step as it was before it was written once (``reference_train_step``,
a frozen copy): on the CPU path (compiled kernels) and on the fixed-shape path (the GPU fast path's strategy:
torch operations, a fixed-size scatter merge), run on the CPU, for every loss, embedding mode and layer count,
over 50 steps with session resets, duplicate candidates and partial chunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.model.network import GRU4Rec
from gru4rec_pipeline.names import EMBEDDING_MODES, LOSSES
from gru4rec_pipeline.training.graphs import FixedShapeSteps
from gru4rec_pipeline.training.step import StepSetup, TrainStep
from reference_train_step import ReferenceTrainStep

N_ITEMS = 40
UNUSED = range(34, 40)  # items no step touches: they must keep weights, bias and optimizer state
BATCH, N_SAMPLE, STEPS = 4, 6, 50
LAYERS = ([6, 5], [7])


def make_step(loss, mode, layers, dropout=(0.2, 0.3), seed=5, step_class=TrainStep, use_kernels=True):
    """The step of the setting below; ``use_kernels`` False: the fixed-shape strategy (the reference sets it later)."""
    support = np.arange(1, N_ITEMS + 1)
    model = GRU4Rec(N_ITEMS, layers, embedding=mode, seed=3)
    corrections = {"logq": 1.0, "sample_alpha": 0.5, "bpreg": 0.5, "elu_param": 0.5}
    if step_class is ReferenceTrainStep:
        return step_class(model, loss, BATCH, 0.1, 0.3, *dropout, support, seed=seed, **corrections)
    setting = Hyperparameters(loss, layers, BATCH, 0.1, 0.3, *dropout, mode, n_sample=N_SAMPLE, **corrections)
    return step_class(model, setting, support, StepSetup(seed, use_kernels))


def step_data(seed=0):
    """Inputs, targets, session starts and sample rows with many duplicates: 34 items, 4 + 6 candidates."""
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, 34, (STEPS, BATCH))
    targets = rng.integers(0, 34, (STEPS, BATCH))
    samples = rng.integers(0, 34, (STEPS, N_SAMPLE))
    samples[:, 0] = targets[:, 1]  # a target that is also a sample
    targets[:, 2] = inputs[:, 3]  # an input that is also a candidate
    inputs[:, 1] = inputs[:, 0]  # a repeated input
    new_session = rng.random((STEPS, BATCH)) < 0.2
    new_session[0] = True
    return inputs, targets, samples, new_session


def run_loop(step, data, use_kernels=None):
    """Steps one by one, as the per-step loop runs them."""
    inputs, targets, samples, new_session = data
    step.use_kernels = use_kernels
    state = step.model.init_state(BATCH)
    loss_sum = torch.zeros(())
    for t in range(STEPS):
        keep = torch.as_tensor(~new_session[t]).float().unsqueeze(1)
        for h in state:
            h.mul_(keep)
        row = None if step.full else torch.as_tensor(samples[t])
        loss_sum += step(torch.as_tensor(inputs[t]), torch.as_tensor(targets[t]), row, state)
    return loss_sum, state


def run_fixed_shape(step, data, chunks):
    """Chunks of steps reading the fast path's device buffers (what a CUDA graph replays), eagerly."""
    inputs, targets, samples, new_session = data
    static = FixedShapeSteps(step, 0 if step.full else N_SAMPLE, STEPS, max(chunks), 64)
    static.block[:STEPS] = torch.as_tensor(np.concatenate([targets, inputs, ~new_session], axis=1))
    if static.store is not None:
        static.store.copy_(torch.as_tensor(samples))
    for size in chunks:
        static.run_chunk(size)
    assert int(static.cursor[0]) == STEPS
    return static.loss_sum, static.state


def assert_same_training(reference, other, atol=1e-5, rtol=1e-4):
    for (name, x), (_, y) in zip(reference.model.state_dict().items(), other.model.state_dict().items()):
        torch.testing.assert_close(y, x, atol=atol, rtol=rtol, msg=f"weights {name}")
    for name, x in reference.optimizer.state.items():
        torch.testing.assert_close(other.optimizer.state[name], x, atol=atol, rtol=rtol, msg=f"optimizer {name}")
    assert torch.equal(reference.dropout_generator.get_state(), other.dropout_generator.get_state())


def assert_untouched(step, before, loss):
    params = dict(step.model.named_parameters())
    for name, rows in before.items():
        if name in ("gru_input_weights.0", "input_embedding") or loss != "ce_full":
            assert torch.equal(params[name][list(UNUSED)], rows), name
            state = step.optimizer.state.get(name)
            if state is not None:
                assert not state[list(UNUSED)].any(), name


def unused_rows(step):
    return {name: p[list(UNUSED)].clone() for name, p in step.model.named_parameters() if len(p) == N_ITEMS}


# Chunks of 8 and single steps, the last chunk partial (50 = 8 + 1 + 1 + 8 * 5).
CHUNKS = [8, 1, 1, 8, 8, 8, 8, 8]


@pytest.mark.parametrize("layers", LAYERS, ids=["2 layers", "1 layer"])
@pytest.mark.parametrize("mode", EMBEDDING_MODES)
@pytest.mark.parametrize("loss", LOSSES)
def test_cpu_step_equals_the_reference_step(loss, mode, layers, one_thread):
    data = step_data()
    reference, step = make_step(loss, mode, layers, step_class=ReferenceTrainStep), make_step(loss, mode, layers)
    before = unused_rows(step)
    reference_loss, reference_state = run_loop(reference, data)
    loss_sum, state = run_loop(step, data)
    assert_same_training(reference, step, atol=1e-5, rtol=0)
    torch.testing.assert_close(loss_sum, reference_loss, rtol=0, atol=1e-5)
    for h, g in zip(state, reference_state):
        torch.testing.assert_close(h, g, atol=1e-5, rtol=0)
    assert_untouched(step, before, loss)


@pytest.mark.parametrize("layers", LAYERS, ids=["2 layers", "1 layer"])
@pytest.mark.parametrize("mode", EMBEDDING_MODES)
@pytest.mark.parametrize("loss", LOSSES)
def test_fixed_shape_step_equals_the_reference_step(loss, mode, layers, one_thread):
    """Against the reference on the CPU path (compiled kernels): the difference is rounding only."""
    data = step_data()
    reference = make_step(loss, mode, layers, step_class=ReferenceTrainStep)
    step = make_step(loss, mode, layers, use_kernels=False)
    before = unused_rows(step)
    reference_loss, reference_state = run_loop(reference, data)
    loss_sum, state = run_fixed_shape(step, data, CHUNKS)
    assert_same_training(reference, step)
    torch.testing.assert_close(loss_sum, reference_loss, rtol=1e-5, atol=1e-5)
    for h, g in zip(state, reference_state):
        torch.testing.assert_close(h, g, atol=1e-5, rtol=1e-4)
    assert_untouched(step, before, loss)


@pytest.mark.parametrize("loss", ["ce_sampled", "bpr_max", "top1"])
def test_fixed_shape_step_equals_the_reference_tensor_path(loss, one_thread):
    """Against the reference's own tensor code, one layer, no dropout."""
    data = step_data(1)
    no_dropout = (0.0, 0.0)
    reference = make_step(loss, "shared", [7], no_dropout, step_class=ReferenceTrainStep)
    step = make_step(loss, "shared", [7], no_dropout, use_kernels=False)
    run_loop(reference, data, use_kernels=False)
    run_fixed_shape(step, data, [16, 16, 16, 1, 1])
    assert_same_training(reference, step, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("use_kernels", [None, False], ids=["kernels", "tensors"])
@pytest.mark.parametrize("mode", EMBEDDING_MODES)
@pytest.mark.parametrize("loss", LOSSES)
def test_retired_lanes_train_as_the_official_shrunken_minibatch(loss, mode, use_kernels, one_thread):
    """At the end of an epoch the official GRU4Rec trains on the lanes left, a smaller minibatch whose loss is
    still divided by the batch size. A step with retired lanes (which repeat an active lane's items) gives the
    weights, optimizer state, loss and states of that smaller minibatch, over steps with lanes 3, then 1 and 3,
    then 1, retired."""
    inputs, targets, samples, _ = step_data(2)
    active = torch.tensor([[True, True, True, False], [True, False, True, False], [False, True, True, True]])
    no_dropout = (0.0, 0.0)
    retiring, shrunken = make_step(loss, mode, [7], no_dropout), make_step(loss, mode, [7], no_dropout)
    retiring.use_kernels = shrunken.use_kernels = use_kernels
    state = retiring.model.init_state(BATCH)
    for t, lanes in enumerate(active):
        first = int(torch.nonzero(lanes)[0])
        step_inputs, step_targets = torch.as_tensor(inputs[t]), torch.as_tensor(targets[t])
        step_inputs[~lanes], step_targets[~lanes] = step_inputs[first], step_targets[first]
        row = None if retiring.full else torch.as_tensor(samples[t])
        kept = [h[lanes].clone() for h in state]
        loss_retiring = retiring(step_inputs, step_targets, row, state, lanes.numpy())
        loss_shrunken = shrunken(step_inputs[lanes], step_targets[lanes], row, kept)
        torch.testing.assert_close(loss_retiring, loss_shrunken, atol=1e-6, rtol=1e-5)
        for h, g in zip(state, kept):
            torch.testing.assert_close(h[lanes], g, atol=1e-6, rtol=1e-5)
        assert_same_training(shrunken, retiring, atol=1e-6, rtol=1e-5)
