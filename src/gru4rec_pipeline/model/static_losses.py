"""Loss gradients for the static-shape training step (``static_step``), with the loss value deferred.

The gradient is what a step needs; the loss value is only reported. The two losses with the highest speed
targets (cross-entropy, BPR-max) are written here with fewer tensor operations than ``losses`` (on a GPU
each operation is a kernel, and at batch 32 a step is bound by their number, not by arithmetic): the
per-row pieces of the loss go into a buffer with one slot per step of a chunk, and one reduction per chunk
adds them to the epoch's loss sum. The formulas are those of ``losses`` (tests/test_static_step.py
checks both against it); the other ranking losses call ``losses.loss_terms`` itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gru4rec_pipeline.model.losses import LOG_EPSILON, loss_terms

LEAN_LOSSES = ("ce_full", "ce_sampled", "bpr_max")


class StaticLoss:
    """``gradient(scores, slot, target_columns)`` -> (g, scale) with d loss / d scores = g * scale;
    ``add_chunk_loss(loss_sum, steps)`` adds the losses of slots 0..steps-1 to ``loss_sum``."""

    def __init__(
        self, name: str, batch: int, columns: int, slots: int, device, bpreg: float = 0.0, elu_param: float = 0.0
    ):
        self.name = name
        self.batch = batch
        self.bpreg = float(bpreg)
        self.elu_param = float(elu_param) if name not in ("ce_full", "ce_sampled") else 0.0
        # Per slot: three rows of per-example pieces (lean losses) or the step's loss in [slot, 0, 0].
        self.pieces = torch.zeros(slots, 3, batch, device=device)
        self.minus_one = torch.full((batch, 1), -1.0, device=device)
        self.off_diagonal = None
        if name == "bpr_max":
            # Added to the scores, it leaves the positive out of a plain softmax: the softmax over negatives.
            self.off_diagonal = torch.zeros(batch, columns, device=device)
            self.off_diagonal.diagonal().fill_(float("-inf"))

    def gradient(self, scores: Tensor, slot: int, target_columns: Tensor | None = None) -> tuple[Tensor, float]:
        """``scores`` is consumed (its memory may hold the gradient)."""
        if self.name in ("ce_full", "ce_sampled"):
            return self._cross_entropy(scores, slot, target_columns)
        activated = F.elu(scores, self.elu_param) if self.elu_param > 0 else scores
        if self.name == "bpr_max":
            grad, scale = self._bpr_max(activated, slot)
        else:
            value, grad, scale = loss_terms(self.name, activated, None, self.bpreg, 0.0, use_kernels=False)
            self.pieces[slot, 0, 0].copy_(value)
        if self.elu_param > 0:
            grad = torch.ops.aten.elu_backward(grad, self.elu_param, 1, 1, True, activated)
        return grad, scale

    def add_chunk_loss(self, loss_sum: Tensor, steps: int) -> None:
        pieces = self.pieces[:steps]
        if self.name in ("ce_full", "ce_sampled"):
            # -log softmax(o)[target] = lse - o_target, lse = max - log(largest probability) (never underflows)
            rows = pieces[:, 0] - pieces[:, 1] - pieces[:, 2].log()
            loss_sum.add_(rows.sum() / self.batch)
        elif self.name == "bpr_max":
            rows = (pieces[:, 1] * self.bpreg).sub_(pieces[:, 0].add(LOG_EPSILON).log_())
            loss_sum.add_(rows.sum() / self.batch)
        else:
            loss_sum.add_(pieces[:, 0, 0].sum())

    def _cross_entropy(self, scores: Tensor, slot: int, target_columns: Tensor | None) -> tuple[Tensor, float]:
        pieces = self.pieces[slot]
        grad = torch.softmax(scores, dim=1)
        torch.amax(scores, dim=1, out=pieces[0])
        torch.amax(grad, dim=1, out=pieces[2])
        if target_columns is None:
            pieces[1].copy_(scores.diagonal())
            grad.diagonal().sub_(1.0)
        else:
            torch.gather(scores, 1, target_columns.unsqueeze(1), out=pieces[1].unsqueeze(1))
            grad.scatter_add_(1, target_columns.unsqueeze(1), self.minus_one)
        return grad, 1.0 / scores.shape[0]

    def _bpr_max(self, scores: Tensor, slot: int) -> tuple[Tensor, float]:
        """BPR-max: s = softmax over the negatives, sig_ij = sigmoid(o_ii - o_ij), A_i = sum_j sig_ij s_ij,
        R_i = sum_j o_ij^2 s_ij; loss_i = bpreg R_i - log(A_i + eps); for j != i the gradient is
        s_ij ((A_i - sig_ij^2) / (A_i + eps) + bpreg (o_ij^2 + 2 o_ij - R_i)), on the diagonal
        (sum_j sig_ij^2 s_ij - A_i) / (A_i + eps)."""
        rows = scores.shape[0]
        pieces = self.pieces[slot]
        softmax = torch.softmax(scores + self.off_diagonal, dim=1)
        sig = torch.sub(scores.diagonal().unsqueeze(1), scores).sigmoid_()
        weighted = sig * softmax
        ranked = torch.sum(weighted, dim=1, keepdim=True, out=pieces[0].unsqueeze(1))
        ranked_eps = ranked + LOG_EPSILON
        squares = None
        if self.bpreg:
            squares = scores * scores
            regular = torch.sum(squares * softmax, dim=1, keepdim=True, out=pieces[1].unsqueeze(1))
        diag_grad = weighted.mul_(sig).sum(dim=1, keepdim=True).sub_(ranked).div_(ranked_eps)
        inner = torch.addcmul(ranked, sig, sig, value=-1.0).div_(ranked_eps)
        if squares is not None:
            inner.add_(squares.add_(scores, alpha=2.0).sub_(regular), alpha=self.bpreg)
        grad = inner.mul_(softmax)
        grad.diagonal().copy_(diag_grad.squeeze(1))
        return grad, 1.0 / rows
