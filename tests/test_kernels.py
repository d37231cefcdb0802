"""The compiled CPU kernels against the tensor code they replace (and against exact arithmetic)."""

import numpy as np
import pytest
import torch

from gru4rec_pipeline.model import kernels
from gru4rec_pipeline.model.network import gru_gates, gru_gates_backward
from gru4rec_pipeline.training.parallel import shared_kernels
from test_losses import loss_and_grad, naive_loss


def test_exponential_is_within_two_ulp_and_saturates():
    x = np.concatenate([np.linspace(-87.3, 88.0, 200_001), [0.0, -1e-8, 1e-8, 0.5, -0.5]]).astype(np.float32)
    got = x.copy()
    kernels.exp_in_place(got, np.empty_like(got))
    exact = np.exp(x.astype(np.float64))
    relative = np.abs(got / exact - 1)
    assert relative.max() < 2 * np.finfo(np.float32).eps
    ends = np.array([-1e4, -100.0, 100.0, 1e4, np.float32(np.inf)], dtype=np.float32)
    kernels.exp_in_place(ends, np.empty_like(ends))
    assert np.all(np.isfinite(ends))
    assert ends[0] == ends[1] and 0 < ends[0] < 1.2e-38
    assert ends[2] == ends[3] == ends[4] and ends[2] == pytest.approx(np.exp(88.0), rel=1e-6)


def test_row_max_covers_every_length():
    rng = np.random.default_rng(0)
    for length in (1, 7, 8, 9, 17, 2080):
        row = rng.normal(size=length).astype(np.float32)
        assert kernels.row_max(row) == row.max()


@pytest.mark.parametrize(
    "loss,bpreg,elu_param", [("ce_sampled", 0, 0), ("ce_full", 0, 0), ("bpr_max", 0.5, 0.5), ("bpr_max", 1.0, 0.0)]
)
@pytest.mark.parametrize("magnitude", [0.5, 3.0])
def test_loss_kernels_match_the_exact_gradient(loss, bpreg, elu_param, magnitude):
    generator = torch.Generator().manual_seed(5)
    scores = torch.randn(6, 45, generator=generator, dtype=torch.float64) * magnitude
    targets = torch.tensor([3, 0, 44, 7, 3, 20])
    reference = scores.clone().requires_grad_(True)
    expected = naive_loss(loss, reference, targets, bpreg, elu_param)
    expected.backward()
    value, grad = loss_and_grad(loss, scores.float(), targets, bpreg=bpreg, elu_param=elu_param)
    torch.testing.assert_close(value.double(), expected.detach(), rtol=2e-6, atol=2e-6)
    torch.testing.assert_close(grad.double(), reference.grad, rtol=1e-4, atol=2e-7)


@pytest.mark.parametrize(
    "loss,bpreg,elu_param", [("ce_sampled", 0, 0), ("ce_full", 0, 0), ("bpr_max", 0.5, 0.5), ("bpr_max", 0.5, 0.0)]
)
def test_loss_kernels_agree_with_the_tensor_code_at_training_size(loss, bpreg, elu_param):
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(32, 2080, generator=generator) * 2.0
    targets = torch.randint(0, 2080, (32,), generator=generator)
    value, grad = loss_and_grad(loss, scores.clone(), targets, bpreg=bpreg, elu_param=elu_param)
    value_ref, grad_ref = loss_and_grad(
        loss, scores.clone(), targets, bpreg=bpreg, elu_param=elu_param, use_kernels=False
    )
    torch.testing.assert_close(value, value_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("loss", ["ce_sampled", "ce_full", "bpr_max"])
@pytest.mark.parametrize("magnitude", [80.0, 1e3])
def test_loss_kernels_stay_finite_on_saturated_scores(loss, magnitude):
    generator = torch.Generator().manual_seed(0)
    scores = torch.sign(torch.randn(8, 40, generator=generator)) * magnitude
    scores[:, :8].fill_diagonal_(-magnitude)  # every positive far below its negatives
    for elu_param in (0.0, 0.5):
        value, grad = loss_and_grad(loss, scores.clone(), torch.arange(8), bpreg=0.5, elu_param=elu_param)
        assert torch.isfinite(value) and torch.isfinite(grad).all()


def test_gru_kernels_match_the_tensor_code():
    generator = torch.Generator().manual_seed(4)
    batch, size = 5, 7
    gi = torch.randn(batch, 3 * size, generator=generator) * 3
    h = torch.rand(batch, size, generator=generator) * 2 - 1
    weight = torch.randn(size, 3 * size, generator=generator)
    bias = torch.randn(3 * size, generator=generator)
    forward = gru_gates(gi, h, weight, bias)
    forward_ref = gru_gates(gi, h, weight, bias, use_kernels=False)
    for got, want in zip(forward, forward_ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    d_h = torch.randn(batch, size, generator=generator)
    backward = gru_gates_backward(d_h, h, *forward[1:])
    backward_ref = gru_gates_backward(d_h, h, *forward_ref[1:], use_kernels=False)
    for got, want in zip(backward, backward_ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_owned_row_updates_of_every_process_equal_one_update_of_the_summed_slots(world):
    """Each process of ``world`` updating the rows it owns from the slots' sum = one update of all rows."""
    rng = np.random.default_rng(world)
    f32 = np.float32
    n_rows, width, entries, n_bias = 40, 5, 30, 22
    rows = rng.integers(0, n_rows, entries)  # duplicates, inside and outside the biased prefix
    slots = rng.normal(size=(world, entries + 3, width)).astype(f32)  # slots may be longer than the step
    bias_slots = rng.normal(size=(world, entries + 3)).astype(f32)
    param, state = rng.normal(size=(n_rows, width)).astype(f32), rng.random((n_rows, 2 * width)).astype(f32)
    bias, bias_state = rng.normal(size=(n_rows, 1)).astype(f32), rng.random((n_rows, 2)).astype(f32)
    scalars = (f32(0.05), f32(0.3), f32(1e-6))
    expected = [array.copy() for array in (param, state, bias, bias_state)]
    kernels.adagrad_momentum_rows(
        *expected[:2], rows, slots.sum(axis=0)[:entries], *expected[2:],
        bias_slots.sum(axis=0)[:n_bias, None], np.full(n_rows, -1), *scalars,
    )  # fmt: skip
    first_entry = np.full(n_rows, -1)
    for owner in range(world):
        shared_kernels.adagrad_momentum_owned_rows(
            param, state, rows, slots, bias, bias_state, bias_slots, n_bias, first_entry,
            np.empty(entries, np.int64), owner, world, *scalars,
        )  # fmt: skip
    assert (first_entry == -1).all()
    for got, want in zip((param, state, bias, bias_state), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_dense_slices_of_every_process_equal_one_dense_update():
    rng = np.random.default_rng(0)
    f32 = np.float32
    param, state = rng.normal(size=101).astype(f32), rng.random((2, 101)).astype(f32)
    slots = rng.normal(size=(3, 101)).astype(f32)
    scalars = (f32(0.05), f32(0.3), f32(1e-6))
    want, want_state = param.copy(), state.copy()
    kernels.adagrad_momentum_dense(want, want_state, slots.sum(axis=0), *scalars)
    for start in range(0, 101, 34):
        shared_kernels.adagrad_momentum_dense_slice(param, state, slots, start, min(start + 34, 101), *scalars)
    np.testing.assert_allclose(param, want, rtol=1e-6)
    np.testing.assert_allclose(state, want_state, rtol=1e-6)
