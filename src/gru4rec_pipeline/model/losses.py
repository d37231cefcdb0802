"""GRU4Rec losses with their gradients, written out by hand (no autograd) for speed.

Every function takes the score matrix ``scores`` [B, N] of a minibatch and returns
``(loss, grad)``: the loss averaged over the B rows (0-dim tensor) and d loss / d scores [B, N].
``scores`` is consumed: its memory is reused for the gradient.

Sampled losses (everything but ``ce_full``): column ``i < B`` holds the target of row ``i``
(the minibatch targets come first, then the shared extra samples), so row ``i``'s positive is the
diagonal entry and every other column is a negative, duplicates of the target included, as in the
official GRU4Rec. ``ce_full`` scores all items and takes the target column of each row.

Formulas (o = scores, row i, positive o_ii, s_ij = softmax over the negatives j != i):
- cross-entropy: -log(softmax(o_i)[target] + 1e-24), as the official GRU4Rec: the 1e-24 makes a row whose
  target is hopelessly ranked (probability far below 1e-24) add almost nothing to the gradient; computed from
  the log-probability, so it never overflows or underflows.
- bpr: mean_j -log sigmoid(o_ii - o_ij) over all N columns (the diagonal adds the constant log 2).
- bpr_max: -log(sum_j sigmoid(o_ii - o_ij) s_ij + 1e-24) + bpreg * sum_j o_ij^2 s_ij.
- top1: mean_j [sigmoid(o_ij - o_ii) + sigmoid(o_ij^2)] - sigmoid(o_ii^2) / N.
- top1_max: sum_j s_ij [sigmoid(o_ij - o_ii) + sigmoid(o_ij^2)].
For the ranking losses an optional ELU final activation (``elu_param`` > 0) is applied to the scores first.

On the CPU, float32 cross-entropy and BPR-max go through fused compiled kernels (``kernels``), one pass
per row instead of a dozen tensor passes; the tensor code here is the reference they are tested
against and the path on a GPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.model import kernels
from gru4rec_pipeline.names import LOSSES, RANKING_LOSSES

LOG_EPSILON = 1e-24
KERNEL_LOSSES = ("ce_full", "ce_sampled", "bpr_max")


def kernels_apply(loss: str, scores: Tensor, use_kernels: bool | None = None) -> bool:
    """Whether ``loss`` on ``scores`` runs in a compiled kernel (CPU, float32, contiguous)."""
    if use_kernels is False or not kernels.AVAILABLE or loss not in KERNEL_LOSSES:
        return False
    return scores.device.type == "cpu" and scores.dtype == torch.float32 and scores.is_contiguous()


def kernel_loss_terms(
    loss: str,
    scores: Tensor,
    target_columns: Tensor | None,
    bpreg: float,
    elu_param: float,
    first_column: int = 0,
    total_rows: int | None = None,
) -> tuple[Tensor, Tensor, float]:
    rows = scores.shape[0]
    total = rows if total_rows is None else total_rows
    values = scores.detach().numpy()
    if loss == "bpr_max":
        per_row = kernels.bpr_max_rows(
            values, np.float32(bpreg), np.float32(elu_param), np.float32(LOG_EPSILON), first_column
        )
    else:  # sampled: row i's positive in column first_column + i
        columns = target_columns.numpy() if loss == "ce_full" else np.arange(first_column, first_column + rows)
        per_row = kernels.cross_entropy_rows(values, columns, np.log(LOG_EPSILON))
    return torch.tensor(per_row.sum() / total, dtype=scores.dtype), scores, 1.0 / total


def cross_entropy(
    scores: Tensor, target_columns: Tensor | None, first_column: int = 0, total_rows: int | None = None
) -> tuple[Tensor, Tensor, float]:
    """Softmax cross-entropy as the official GRU4Rec computes it, -log(p + 1e-24) for the target's probability p;
    ``target_columns`` [B] gives the positive column of each row (``None``: the diagonal starting at
    ``first_column``). The loss is a sum over the rows divided by ``total_rows`` (default: the rows here; a
    process's share of a minibatch divides by the whole's).

    Its gradient is the plain cross-entropy's, softmax - onehot, times w = p / (p + 1e-24): a row whose target's
    probability is far below 1e-24 (a score some 55 below the row's best) adds almost nothing. p is taken from its
    logarithm, log p = o_target - lse, with the log-sum-exp from the row's largest score m and its probability p_m
    (lse = m - log p_m, and p_m >= 1/N never underflows): exact where p itself would underflow.
    """
    rows = scores.shape[0] if total_rows is None else total_rows
    if target_columns is None:
        positive = scores.diagonal(first_column).clone()
    else:
        positive = scores.gather(1, target_columns.unsqueeze(1)).squeeze(1)
    top = scores.argmax(dim=1, keepdim=True)
    top_score = scores.gather(1, top).squeeze(1)
    grad = torch.softmax(scores, dim=1)
    log_p = positive.sub_(top_score).add_(grad.gather(1, top).squeeze(1).log_())
    log_epsilon = torch.full_like(log_p, float(np.log(LOG_EPSILON)))
    loss = torch.logaddexp(log_p, log_epsilon).sum().neg_().div_(rows)
    weight = torch.sigmoid(log_p.sub_(log_epsilon))  # p / (p + eps)
    grad.mul_(weight.unsqueeze(1))
    if target_columns is None:
        grad.diagonal(first_column).sub_(weight)
    else:
        grad.scatter_add_(1, target_columns.unsqueeze(1), weight.neg().unsqueeze(1))
    return loss, grad, 1.0 / rows


def negative_softmax(scores: Tensor, first_column: int = 0) -> Tensor:
    """Softmax of each row over its negatives: the diagonal (row i's positive) gets weight 0. Shifted by the
    largest negative score, not by the positive's, which may lie far above them all (where every negative's
    exponential would underflow)."""
    shifted = scores.clone()
    shifted.diagonal(first_column).fill_(float("-inf"))
    weights = shifted.sub_(shifted.amax(dim=1, keepdim=True)).exp_()
    return weights.div_(weights.sum(dim=1, keepdim=True))


def bpr(scores: Tensor, first_column: int = 0, rows: int | None = None) -> tuple[Tensor, Tensor]:
    rows, cols = scores.shape[0] if rows is None else rows, scores.shape[1]
    diff = scores - scores.diagonal(first_column).unsqueeze(1)  # o_ij - o_ii
    loss = F.softplus(diff).sum().div_(rows * cols)
    grad = torch.sigmoid(diff, out=diff)
    grad.diagonal(first_column).sub_(grad.sum(dim=1))
    return loss, grad, 1.0 / (rows * cols)


def bpr_max(scores: Tensor, bpreg: float, first_column: int = 0, rows: int | None = None) -> tuple[Tensor, Tensor]:
    rows = scores.shape[0] if rows is None else rows
    softmax = negative_softmax(scores, first_column)
    sig = torch.sigmoid(scores.diagonal(first_column).unsqueeze(1) - scores)  # sigmoid(o_ii - o_ij)
    sig_softmax = sig * softmax
    ranked = sig_softmax.sum(dim=1, keepdim=True)  # A'_i
    ranked_eps = ranked + LOG_EPSILON
    squares = scores * scores
    sq_softmax = squares * softmax
    regular = sq_softmax.sum(dim=1, keepdim=True)  # R_i
    loss = (bpreg * regular - torch.log(ranked_eps)).sum().div_(rows)
    # j != i: s_ij * ((A'_i - sig_ij^2) / A_i + bpreg * (2 o_ij + o_ij^2 - R_i));  the diagonal has s_ii = 0
    sig_sq_softmax = sig_softmax.mul_(sig)
    diag_grad = (sig_sq_softmax.sum(dim=1, keepdim=True) - ranked) / ranked_eps
    inner = torch.sub(ranked, sig * sig).div_(ranked_eps)
    if bpreg:
        inner.add_(squares.add_(scores, alpha=2.0).sub_(regular), alpha=bpreg)
    grad = inner.mul_(softmax)
    grad.diagonal(first_column).copy_(diag_grad.squeeze(1))
    return loss, grad, 1.0 / rows


def top1(scores: Tensor, first_column: int = 0, rows: int | None = None) -> tuple[Tensor, Tensor]:
    rows, cols = scores.shape[0] if rows is None else rows, scores.shape[1]
    diag = scores.diagonal(first_column).unsqueeze(1)
    sig_diff = torch.sigmoid(scores - diag)
    sig_sq = torch.sigmoid(scores * scores)
    sig_diag_sq = sig_sq.diagonal(first_column).clone()
    loss = ((sig_diff + sig_sq).sum() - sig_diag_sq.sum()).div_(rows * cols)
    d_diff = sig_diff.mul_(1.0 - sig_diff)
    d_sq = sig_sq.mul_(1.0 - sig_sq).mul_(scores).mul_(2.0)
    grad = d_sq.add_(d_diff)
    # The positive appears in every difference and its own square term cancels.
    grad.diagonal(first_column).sub_(d_diff.sum(dim=1) + 2.0 * sig_diag_sq * (1.0 - sig_diag_sq) * diag.squeeze(1))
    return loss, grad, 1.0 / (rows * cols)


def top1_max(scores: Tensor, first_column: int = 0, rows: int | None = None) -> tuple[Tensor, Tensor]:
    rows = scores.shape[0] if rows is None else rows
    softmax = negative_softmax(scores, first_column)
    sig_diff = torch.sigmoid(scores - scores.diagonal(first_column).unsqueeze(1))
    sig_sq = torch.sigmoid(scores * scores)
    terms = sig_diff + sig_sq
    per_row = (terms * softmax).sum(dim=1, keepdim=True)
    loss = per_row.sum().div_(rows)
    d_diff = sig_diff.mul_(1.0 - sig_diff).mul_(softmax)
    diag_grad = d_diff.sum(dim=1)
    d_sq = sig_sq.mul_(1.0 - sig_sq).mul_(scores).mul_(2.0)
    grad = terms.sub_(per_row).add_(d_sq).mul_(softmax).add_(d_diff)
    grad.diagonal(first_column).copy_(-diag_grad)
    return loss, grad, 1.0 / rows


def loss_terms(
    loss: str,
    scores: Tensor,
    target_columns: Tensor | None = None,
    bpreg: float = 0.0,
    elu_param: float = 0.0,
    use_kernels: bool | None = None,
    first_column: int = 0,
    total_rows: int | None = None,
) -> tuple[Tensor, Tensor, float]:
    """``(loss, g, scale)`` with d loss / d scores = ``g * scale``: leaving the scalar factor to the
    caller lets it scale a few small tensors instead of the whole score matrix.

    ``use_kernels``: False keeps the tensor code on the CPU too (None: kernels where they apply).
    A process's share of a data-parallel minibatch: ``scores`` holds its rows, row i's positive (sampled
    losses) in column ``first_column + i``, and the loss and its gradient are those of a mean over
    ``total_rows`` rows (default: the rows of ``scores``)."""
    if kernels_apply(loss, scores, use_kernels):
        return kernel_loss_terms(loss, scores, target_columns, bpreg, elu_param, first_column, total_rows)
    if loss == "ce_full":
        return cross_entropy(scores, target_columns, total_rows=total_rows)
    if loss == "ce_sampled":
        return cross_entropy(scores, None, first_column, total_rows)
    if loss not in RANKING_LOSSES:
        raise ConfigError("loss", f"got {loss!r}, expected one of {', '.join(LOSSES)}")
    activated = scores
    if elu_param > 0:
        # ELU as final activation; its derivative is 1 above zero, elu(x) + alpha below. Written with
        # exp (vectorized) rather than F.elu (expm1, about 2.5x slower on the CPU); exp(x) - 1 differs
        # from expm1(x) by at most one rounding of 1.0, far below any score difference that matters.
        activated = torch.clamp_max(scores, 0.0).exp_().sub_(1.0).mul_(elu_param).add_(torch.clamp_min(scores, 0.0))
    if loss == "bpr":
        value, grad, scale = bpr(activated, first_column, total_rows)
    elif loss == "bpr_max":
        value, grad, scale = bpr_max(activated, bpreg, first_column, total_rows)
    elif loss == "top1":
        value, grad, scale = top1(activated, first_column, total_rows)
    else:
        value, grad, scale = top1_max(activated, first_column, total_rows)
    if elu_param > 0:
        # Chain rule through the ELU in one fused operation (from its output: slope 1 above zero,
        # elu(x) + alpha below).
        grad = torch.ops.aten.elu_backward(grad, elu_param, 1, 1, True, activated)
    return value, grad, scale


def loss_terms_of_active_rows(
    loss: str,
    scores: Tensor,
    target_columns: Tensor | None,
    bpreg: float,
    elu_param: float,
    use_kernels: bool | None,
    active: np.ndarray,
    first_row: int = 0,
    total_rows: int | None = None,
) -> tuple[Tensor, Tensor, float]:
    """``loss_terms`` of a minibatch whose rows are not all active (slots retired at the end of an epoch,
    ``training.iterator``): the loss and its gradient are those of the active rows alone, as if the minibatch held
    only them (the official GRU4Rec's shrinking last minibatches), still divided by ``total_rows``. ``active`` (bool
    [B], on the host, so that nothing waits for the device) covers the whole minibatch; ``scores`` holds its rows
    ``first_row ..`` (a process's share of them, or all) and, for a sampled loss, the columns of the B rows'
    targets then the shared samples. The retired rows and, for a sampled loss, the columns of their targets get a
    zero gradient (a retired slot repeats an active one's items, so the item rows it touches are updated as the
    active rows' alone)."""
    total = scores.shape[0] if total_rows is None else total_rows
    active = np.asarray(active, dtype=bool)
    grad = torch.zeros_like(scores)
    local = np.flatnonzero(active[first_row : first_row + scores.shape[0]])
    if len(local) == 0:  # a share whose rows are all retired: nothing to add
        return torch.zeros((), dtype=scores.dtype, device=scores.device), grad, 1.0 / total
    rows = _on_device(local, scores.device)
    if target_columns is not None:  # ce_full: every item is a column
        kept_targets = target_columns.index_select(0, rows)
        value, part, scale = loss_terms(
            loss, scores.index_select(0, rows), kept_targets, bpreg, elu_param, use_kernels, total_rows=total
        )
        return value, grad.index_copy_(0, rows, part), scale
    batch = active.shape[0]
    columns = _on_device(np.concatenate([np.flatnonzero(active), np.arange(batch, scores.shape[1])]), scores.device)
    compact = scores.index_select(0, rows).index_select(1, columns)
    first_column = int(np.count_nonzero(active[:first_row]))  # the active rows before this share's
    value, part, scale = loss_terms(
        loss, compact, None, bpreg, elu_param, use_kernels, first_column=first_column, total_rows=total
    )
    spread = torch.zeros(len(local), scores.shape[1], dtype=part.dtype, device=part.device)
    return value, grad.index_copy_(0, rows, spread.index_copy_(1, columns, part)), scale


def _on_device(indices: np.ndarray, device: torch.device) -> Tensor:
    """Host indices on ``device`` without waiting for it (an asynchronous copy)."""
    return torch.from_numpy(indices.astype(np.int64)).to(device, non_blocking=True)
