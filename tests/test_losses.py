"""Each loss's value and gradient against autograd on a naive formula."""

import pytest
import torch
import torch.nn.functional as F

from gru4rec_pipeline.model.losses import loss_terms
from gru4rec_pipeline.names import LOSSES


def loss_and_grad(loss, scores, target_columns=None, bpreg=0.0, elu_param=0.0, use_kernels=None):
    """``(loss, d loss / d scores)`` of ``loss_terms`` (the step leaves the scale to its smaller factors).
    ``target_columns`` is needed by ``ce_full`` only."""
    value, grad, scale = loss_terms(loss, scores, target_columns, bpreg, elu_param, use_kernels)
    return value, grad.mul_(scale)


def naive_loss(loss, scores, targets, bpreg=0.0, elu_param=0.0):
    """The official formulas written directly (averaged over rows)."""
    rows, cols = scores.shape
    eye = torch.zeros(rows, cols, dtype=scores.dtype)
    eye[torch.arange(rows), torch.arange(rows)] = 1.0
    if loss == "ce_full":
        return -torch.log(torch.softmax(scores, dim=1)[torch.arange(rows), targets] + 1e-24).mean()
    if loss == "ce_sampled":
        return -torch.log(torch.diag(torch.softmax(scores, dim=1)) + 1e-24).mean()
    if elu_param > 0:
        scores = F.elu(scores, alpha=elu_param)
    positive = torch.diag(scores[:, :rows]).unsqueeze(1)
    others = 1.0 - eye
    softmax_neg = torch.exp(scores) * others
    softmax_neg = softmax_neg / softmax_neg.sum(dim=1, keepdim=True)
    if loss == "bpr":
        return (-torch.log(torch.sigmoid(positive - scores))).mean()
    if loss == "bpr_max":
        ranked = torch.sum(torch.sigmoid(positive - scores) * softmax_neg, dim=1)
        regular = torch.sum(scores**2 * softmax_neg, dim=1)
        return (-torch.log(ranked + 1e-24) + bpreg * regular).mean()
    if loss == "top1":
        per_row = torch.mean(torch.sigmoid(scores - positive) + torch.sigmoid(scores**2), dim=1)
        return (per_row - torch.sigmoid(positive.squeeze(1) ** 2) / cols).mean()
    if loss == "top1_max":
        return torch.sum(softmax_neg * (torch.sigmoid(scores - positive) + torch.sigmoid(scores**2)), dim=1).mean()
    raise AssertionError(loss)


CASES = [(loss, 0.0, 0.0) for loss in LOSSES] + [
    ("bpr_max", 0.5, 0.5),
    ("bpr_max", 1.0, 0.0),
    ("bpr", 0.0, 0.5),
    ("top1", 0.0, 1.0),
    ("top1_max", 0.0, 0.5),
]


@pytest.mark.parametrize("loss,bpreg,elu_param", CASES)
def test_value_and_gradient_match_autograd(loss, bpreg, elu_param):
    generator = torch.Generator().manual_seed(3)
    scores = torch.randn(5, 13, generator=generator, dtype=torch.float64) * 2.0
    targets = torch.tensor([3, 0, 12, 7, 3])
    reference = scores.clone().requires_grad_(True)
    expected = naive_loss(loss, reference, targets, bpreg, elu_param)
    expected.backward()
    value, grad = loss_and_grad(loss, scores.clone(), targets, bpreg=bpreg, elu_param=elu_param)
    torch.testing.assert_close(value, expected.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, reference.grad, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("magnitude", [80.0, 1e3])
def test_saturated_scores_stay_finite(loss, magnitude):
    generator = torch.Generator().manual_seed(0)
    scores = torch.sign(torch.randn(8, 40, generator=generator)) * magnitude
    scores[:, :8].fill_diagonal_(-magnitude)  # every positive far below its negatives
    targets = torch.arange(8)
    for elu_param in (0.0, 0.5):
        value, grad = loss_and_grad(loss, scores.clone(), targets, bpreg=0.5, elu_param=elu_param)
        assert torch.isfinite(value)
        assert torch.isfinite(grad).all()


@pytest.mark.parametrize("use_kernels", [None, False], ids=["kernels", "tensors"])
@pytest.mark.parametrize("loss,bpreg,elu_param", [("bpr_max", 0.5, 0.5), ("bpr_max", 1.0, 0.0), ("top1_max", 0.0, 0.5)])
def test_a_positive_far_above_its_negatives_keeps_their_softmax(loss, bpreg, elu_param, use_kernels):
    """The softmax over a row's negatives is shifted by their own largest score: shifted by the positive's, 150
    above them, every negative's exponential underflowed (NaN on the tensor path, equal weights in the kernel)."""
    scores = torch.randn(3, 20, generator=torch.Generator().manual_seed(5)) * 2
    scores[0, 0], scores[1, 1] = 150.0, 95.0
    value, grad = loss_and_grad(loss, scores.clone(), bpreg=bpreg, elu_param=elu_param, use_kernels=use_kernels)
    reference = scores.double().requires_grad_(True)
    expected = naive_loss(loss, reference, None, bpreg, elu_param)
    expected.backward()
    torch.testing.assert_close(value.double(), expected.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.double(), reference.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("use_kernels", [None, False], ids=["kernels", "tensors"])
@pytest.mark.parametrize("loss", ["ce_sampled", "ce_full"])
def test_cross_entropy_is_the_official_one_where_the_target_is_hopelessly_ranked(loss, use_kernels):
    """-log(p + 1e-24), as the official GRU4Rec: its gradient is the plain cross-entropy's times p / (p + 1e-24), so
    a row whose target's probability is far below 1e-24 adds almost nothing (float32 scores; the official formula
    in float64 as the reference, where p does not underflow)."""
    scores = torch.zeros(4, 50, dtype=torch.float32)
    scores[0, 0] = -200.0  # p = exp(-200) / 50: far below 1e-24 (and below float32's smallest number)
    scores[1, 1] = -55.26 + float(torch.log(torch.tensor(49.0)))  # p close to 1e-24: weight about one half
    scores[2, 3] = 120.0  # a negative far above the target
    scores[3, 3] = 8.0  # an ordinary row
    targets = torch.arange(4)
    value, grad = loss_and_grad(loss, scores.clone(), targets if loss == "ce_full" else None, use_kernels=use_kernels)
    reference = scores.double().requires_grad_(True)
    expected = naive_loss(loss, reference, targets)
    expected.backward()
    torch.testing.assert_close(value.double(), expected.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad.double(), reference.grad, rtol=1e-4, atol=1e-7)
    assert grad[0].abs().max() < 1e-30 and 0.4 < -4 * grad[1, 1] < 0.6  # (the mean over 4 rows)
    assert value > 55.26 / 4  # the hopeless rows' loss, about -log(1e-24) each


@pytest.mark.parametrize("use_kernels", [None, False], ids=["kernels", "tensors"])
@pytest.mark.parametrize("loss", LOSSES)
def test_a_share_of_the_rows_gives_those_rows_of_the_minibatch(loss, use_kernels):
    """A data-parallel process scores its rows only (row i's positive in column first_column + i) and scales by
    the whole minibatch: the shares' losses add up to the minibatch's, their gradients are its rows."""
    rows, columns = 8, 20 if loss != "ce_full" else 30
    scores = torch.randn(rows, columns, generator=torch.Generator().manual_seed(4)) * 2
    targets = torch.tensor([3, 0, 29, 7, 7, 12, 1, 5]) if loss == "ce_full" else None
    value, grad, scale = loss_terms(loss, scores.clone(), targets, 0.5, 0.5, use_kernels)
    total = torch.zeros(())
    for lanes in (slice(0, 3), slice(3, 8)):
        share_targets = None if targets is None else targets[lanes]
        part, part_grad, part_scale = loss_terms(
            loss, scores[lanes].clone(), share_targets, 0.5, 0.5, use_kernels, first_column=lanes.start, total_rows=rows
        )
        assert part_scale == scale
        torch.testing.assert_close(part_grad, grad[lanes], rtol=1e-5, atol=1e-6)
        total += part
    torch.testing.assert_close(total, value, rtol=1e-5, atol=1e-6)
