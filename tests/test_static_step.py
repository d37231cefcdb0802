"""The static-shape training step (the step of the GPU fast path), run eagerly on the CPU, against the
reference ``TrainStep``, and its lean losses against the loss module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gru4rec_pipeline.model.losses import loss_terms
from gru4rec_pipeline.model.network import GRU4Rec
from gru4rec_pipeline.model.static_losses import StaticLoss
from gru4rec_pipeline.model.static_step import StaticStep
from gru4rec_pipeline.model.train_step import TrainStep
from gru4rec_pipeline.names import EMBEDDING_MODES, LOSSES

N_ITEMS = 40
UNUSED = range(34, 40)  # items no step touches: they must keep weights, bias and optimizer state
BATCH, N_SAMPLE, STEPS = 4, 6, 50


def make_step(loss, mode, layers, dropout=(0.2, 0.3), seed=5):
    support = np.arange(1, N_ITEMS + 1)
    model = GRU4Rec(N_ITEMS, layers, embedding=mode, seed=3)
    return TrainStep(
        model, loss, BATCH, 0.1, 0.3, *dropout, support, logq=1.0, sample_alpha=0.5, bpreg=0.5, elu_param=0.5, seed=seed
    )


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


def run_reference(step, data, use_kernels=None):
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


def run_static(step, data, chunks):
    inputs, targets, samples, new_session = data
    static = StaticStep(step, 0 if step.full else N_SAMPLE, STEPS, max(chunks), 64)
    static.block[:STEPS] = torch.as_tensor(np.concatenate([targets, inputs, ~new_session], axis=1))
    if static.store is not None:
        static.store.copy_(torch.as_tensor(samples))
    static.begin()
    for size in chunks:
        static.run_chunk(size)
    static.finish()
    assert int(static.cursor[0]) == STEPS
    return static.loss_sum, static.state


def assert_same_training(reference, static, atol=1e-5, rtol=1e-4):
    for (name, x), (_, y) in zip(reference.model.state_dict().items(), static.model.state_dict().items()):
        torch.testing.assert_close(y, x, atol=atol, rtol=rtol, msg=f"weights {name}")
    for name, x in reference.optimizer.state.items():
        torch.testing.assert_close(static.optimizer.state[name], x, atol=atol, rtol=rtol, msg=f"optimizer {name}")
    assert torch.equal(reference.dropout_generator.get_state(), static.dropout_generator.get_state())


# Chunks of 8 and single steps, the last chunk partial (50 = 8 + 1 + 1 + 8 * 5).
CHUNKS = [8, 1, 1, 8, 8, 8, 8, 8]


@pytest.mark.parametrize("mode", EMBEDDING_MODES)
@pytest.mark.parametrize("loss", LOSSES)
def test_static_step_equals_reference_step(loss, mode, one_thread):
    data = step_data()
    reference, static = make_step(loss, mode, [6, 5]), make_step(loss, mode, [6, 5])
    untouched = {name: p[list(UNUSED)].clone() for name, p in static.model.named_parameters() if len(p) == N_ITEMS}
    reference_loss, reference_state = run_reference(reference, data)
    static_loss, static_state = run_static(static, data, CHUNKS)
    assert_same_training(reference, static)
    torch.testing.assert_close(static_loss, reference_loss, rtol=1e-5, atol=1e-5)
    for h, g in zip(static_state, reference_state):
        torch.testing.assert_close(h, g, atol=1e-5, rtol=1e-4)
    for name, before in untouched.items():
        if name in ("gru_input_weights.0", "input_embedding") or loss != "ce_full":
            assert torch.equal(dict(static.model.named_parameters())[name][list(UNUSED)], before), name
            state = static.optimizer.state.get(name)
            if state is not None:
                assert not state[list(UNUSED)].any(), name


@pytest.mark.parametrize("loss", ["ce_sampled", "bpr_max", "top1"])
def test_static_step_equals_tensor_path_without_dropout(loss, one_thread):
    """Against the reference's own tensor code, one layer, no dropout: differences are rounding only."""
    data = step_data(1)
    reference, static = make_step(loss, "shared", [7], (0.0, 0.0)), make_step(loss, "shared", [7], (0.0, 0.0))
    run_reference(reference, data, use_kernels=False)
    run_static(static, data, [16, 16, 16, 1, 1])
    assert_same_training(reference, static, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "loss,bpreg,elu_param",
    [("ce_sampled", 0, 0), ("ce_full", 0, 0), ("bpr_max", 0.5, 0.5), ("bpr_max", 0.0, 0.0), ("top1_max", 0, 0.5)],
)
def test_static_losses_equal_the_loss_module(loss, bpreg, elu_param):
    generator = torch.Generator().manual_seed(2)
    rows, columns = 5, 12 if loss != "ce_full" else 30
    static = StaticLoss(loss, rows, columns, 2, "cpu", bpreg, elu_param)
    scores = torch.randn(rows, columns, generator=generator) * 3
    targets = torch.tensor([4, 0, 29, 7, 7]) if loss == "ce_full" else None
    expected_value, expected_grad, expected_scale = loss_terms(
        loss, scores.clone(), targets, bpreg, elu_param, use_kernels=False
    )
    total = torch.zeros(())
    for slot in range(2):  # two steps of one chunk, the loss summed once
        grad, scale = static.gradient(scores.clone(), slot, targets)
        torch.testing.assert_close(grad * scale, expected_grad * expected_scale, rtol=1e-4, atol=1e-6)
    static.add_chunk_loss(total, 2)
    torch.testing.assert_close(total, 2 * expected_value, rtol=1e-5, atol=1e-6)
