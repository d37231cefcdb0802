"""A frozen copy of the training step as it was before the step was written once (``TrainStep`` of
src/gru4rec_pipeline/model/train_step.py at commit 0cb978b), kept as the oracle of tests/test_one_step.py:
the step of today, on the CPU path and on the fixed-shape path, must train to the same weights.

Do not edit it to follow changes of the step: a change of what a step computes must show up as a failing
test against this file (then decide, and say in the commit, why the new behaviour is the intended one).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gru4rec_pipeline.model.losses import loss_terms
from gru4rec_pipeline.model.network import GRU4Rec, gru_gates, gru_gates_backward
from gru4rec_pipeline.model.optim import AdagradMomentum


class ReferenceTrainStep:
    """Callable ``(inputs, targets, samples, state) -> loss`` that also updates the model in place."""

    def __init__(
        self,
        model: GRU4Rec,
        loss: str,
        batch_size: int,
        learning_rate: float,
        momentum: float,
        dropout_embed: float,
        dropout_hidden: float,
        item_support: np.ndarray,
        logq: float = 0.0,
        sample_alpha: float = 0.0,
        bpreg: float = 0.0,
        elu_param: float = 0.0,
        seed: int = 0,
    ):
        self.model = model
        self.loss = loss
        self.full = loss == "ce_full"
        self.batch_size = batch_size
        self.bpreg = float(bpreg)
        self.elu_param = float(elu_param)
        self.mode = model.embedding
        device = model.device
        self.device = device
        self.dropout_generator = torch.Generator(device=device).manual_seed(int(seed))
        n_layers = len(model.layers)
        # Dropout probability applied to the embedding and to each layer's output.
        self.embed_dropout = dropout_embed if self.mode != "none" else 0.0
        self.layer_dropout = [dropout_hidden] * n_layers
        if self.mode == "none":
            self.layer_dropout[0] = dropout_embed

        self.optimizer = AdagradMomentum(learning_rate, momentum)
        # Dense parameters live in one flat buffer so that a single update covers them all.
        self.dense_names: list[str] = []
        dense_params: list[Tensor] = []
        for layer in range(n_layers):
            if not (layer == 0 and self.mode == "none"):
                self.dense_names.append(f"gru_input_weights.{layer}")
                dense_params.append(model.gru_input_weights[layer])
            self.dense_names += [
                f"gru_input_biases.{layer}",
                f"gru_hidden_weights.{layer}",
                f"gru_hidden_biases.{layer}",
            ]
            dense_params += [
                model.gru_input_biases[layer],
                model.gru_hidden_weights[layer],
                model.gru_hidden_biases[layer],
            ]
        if self.full:
            self.dense_names += ["item_weight", "item_bias"]
            dense_params += [model.item_weight, model.item_bias]
        sizes = [p.numel() for p in dense_params]
        self.dense_flat = torch.cat([p.detach().reshape(-1) for p in dense_params])
        self.dense_grad = torch.zeros_like(self.dense_flat)
        self.dense_grads: dict[str, Tensor] = {}
        offset = 0
        for name, param, size in zip(self.dense_names, dense_params, sizes):
            param.data = self.dense_flat[offset : offset + size].view(param.shape)
            self.dense_grads[name] = self.dense_grad[offset : offset + size].view(param.shape)
            offset += size
        self.optimizer.add_dense("dense", self.dense_flat)
        if not self.full:
            self.optimizer.add_rows("item_weight", model.item_weight)
            self.optimizer.add_rows("item_bias", model.item_bias)
        if self.mode == "separate":
            self.optimizer.add_rows("input_embedding", model.input_embedding)
        if self.mode == "none":
            self.optimizer.add_rows("gru_input_weights.0", model.gru_input_weights[0])

        # logQ correction per candidate: logq * log(support) for the minibatch targets and
        # logq * log(support ** sample_alpha) for the extra samples.
        self.logq_target_table = self.logq_sample_table = None
        if loss == "ce_sampled" and logq > 0:
            log_support = np.log(np.maximum(np.asarray(item_support, dtype=np.float64), 1.0))
            self.logq_target_table = torch.as_tensor((logq * log_support).astype(np.float32), device=device)
            self.logq_sample_table = torch.as_tensor(
                (logq * sample_alpha * log_support).astype(np.float32), device=device
            )
        self.n_items = model.n_items
        self.use_kernels: bool | None = None

    @property
    def use_kernels(self) -> bool | None:
        """Whether CPU steps use the compiled kernels (None: yes); False runs the tensor code on the CPU
        too, for comparison."""
        return self._use_kernels

    @use_kernels.setter
    def use_kernels(self, value: bool | None) -> None:
        self._use_kernels = value
        self.optimizer.use_kernels = value

    # -- dropout ------------------------------------------------------------------------------
    def _dropout_mask(self, shape: tuple[int, int], p: float) -> Tensor:
        uniform = torch.rand(shape, device=self.device, generator=self.dropout_generator)
        return (uniform >= p).to(uniform.dtype).mul_(1.0 / (1.0 - p))

    # -- the step -----------------------------------------------------------------------------
    def __call__(self, inputs: Tensor, targets: Tensor, samples: Tensor | None, state: list[Tensor]) -> Tensor:
        model = self.model
        mode = self.mode
        item_weight, item_bias = model.item_weight, model.item_bias
        batch = inputs.shape[0]
        grads = self.dense_grads
        optimizer = self.optimizer
        kernels = self.use_kernels

        # Item rows: all of them (ce_full), or those the step touches, gathered once. The candidates
        # (targets, then the shared samples) come first and the inputs (shared embedding) last, so the
        # bias is updated on the candidate entries (a prefix) only. Duplicates are kept here (one score
        # column per candidate, as the loss defines) and merged by the optimizer.
        if self.full:
            out_weight, out_bias = item_weight, item_bias
        else:
            parts = [targets] if samples is None or samples.numel() == 0 else [targets, samples]
            if mode == "shared":
                parts.append(inputs)
            touched = torch.cat(parts)
            n_candidates = touched.shape[0] - (batch if mode == "shared" else 0)
            touched_rows = item_weight.index_select(0, touched)
            out_weight = touched_rows[:n_candidates]
            out_bias = item_bias.index_select(0, touched[:n_candidates])
            if self.logq_target_table is not None:
                correction = [self.logq_target_table.index_select(0, targets)]
                if len(parts) > 1 and n_candidates > batch:
                    correction.append(self.logq_sample_table.index_select(0, samples))
                out_bias = out_bias.sub_(torch.cat(correction))

        # Forward ------------------------------------------------------------------------------
        embed_mask = None
        layer_input = None
        if mode == "shared":
            layer_input = item_weight.index_select(0, inputs) if self.full else touched_rows[n_candidates:]
        elif mode == "separate":
            layer_input = model.input_embedding.index_select(0, inputs)
        if layer_input is not None and self.embed_dropout > 0:
            embed_mask = self._dropout_mask(layer_input.shape, self.embed_dropout)
            layer_input = layer_input * embed_mask
        caches = []
        for layer, h in enumerate(state):
            bias = model.gru_input_biases[layer]
            if layer == 0 and mode == "none":
                gi = model.gru_input_weights[0].index_select(0, inputs).add_(bias)
            else:
                gi = torch.addmm(bias, layer_input, model.gru_input_weights[layer])
            h_new, rz, n, gh = gru_gates(
                gi, h, model.gru_hidden_weights[layer], model.gru_hidden_biases[layer], kernels
            )
            mask = None
            if self.layer_dropout[layer] > 0:
                mask = self._dropout_mask(h_new.shape, self.layer_dropout[layer])
                h_new = h_new.mul_(mask)
            caches.append((layer_input, h, rz, n, gh, mask))
            state[layer] = h_new
            layer_input = h_new
        output = layer_input

        scores = torch.addmm(out_bias, output, out_weight.t())
        loss, d_scores, scale = loss_terms(
            self.loss, scores, targets if self.full else None, self.bpreg, self.elu_param, kernels
        )

        # Backward (d_scores * scale is the gradient; the scale goes onto the smaller factors) -----
        d_input = torch.mm(d_scores, out_weight).mul_(scale)
        output_scaled = output * scale
        embedding_grad = None  # where the gradient of the shared input rows goes
        if self.full:
            torch.mm(d_scores.t(), output_scaled, out=grads["item_weight"])
            torch.sum(d_scores, dim=0, out=grads["item_bias"]).mul_(scale)
        else:
            # One gradient row per touched entry: candidates from the scores, inputs (shared) below.
            row_grads = torch.empty_like(touched_rows)
            torch.mm(d_scores.t(), output_scaled, out=row_grads[:n_candidates])
            bias_grads = d_scores.sum(dim=0).mul_(scale)
            if mode == "shared":
                embedding_grad = row_grads[n_candidates:]
        first_layer_rows = None
        for layer in range(len(state) - 1, -1, -1):
            layer_input, h, rz, n, gh, mask = caches[layer]
            if mask is not None:
                d_input = d_input.mul_(mask)
            d_gi, d_gh = gru_gates_backward(d_input, h, rz, n, gh, kernels)
            torch.mm(h.t(), d_gh, out=grads[f"gru_hidden_weights.{layer}"])
            torch.sum(d_gh, dim=0, out=grads[f"gru_hidden_biases.{layer}"])
            torch.sum(d_gi, dim=0, out=grads[f"gru_input_biases.{layer}"])
            if layer == 0 and mode == "none":
                first_layer_rows = d_gi
                d_input = None
            else:
                torch.mm(layer_input.t(), d_gi, out=grads[f"gru_input_weights.{layer}"])
                weight_t = model.gru_input_weights[layer].t()
                if layer == 0 and embedding_grad is not None:
                    d_input = torch.mm(d_gi, weight_t, out=embedding_grad)
                else:
                    d_input = torch.mm(d_gi, weight_t)
        if embed_mask is not None:
            d_input = d_input.mul_(embed_mask)

        # Update (every gradient above was computed from the weights before this step) -----------
        if self.full and mode == "shared":
            grads["item_weight"].index_add_(0, inputs, d_input)
        optimizer.update_dense("dense", self.dense_flat, self.dense_grad)
        if not self.full:
            optimizer.update_rows_with_bias(
                "item_weight",
                item_weight,
                "item_bias",
                item_bias,
                touched,
                row_grads,
                bias_grads,
                param_rows=touched_rows,
            )
        if mode == "separate":
            optimizer.update_rows("input_embedding", model.input_embedding, inputs, d_input)
        elif mode == "none":
            optimizer.update_rows("gru_input_weights.0", model.gru_input_weights[0], inputs, first_layer_rows)
        return loss
