"""One training minibatch of GRU4Rec: forward, hand-written backward, Adagrad-momentum update.

Why by hand: at GRU4Rec's sizes (batch 32, 100 units, ~2k candidates) a step is a few hundred
microseconds of arithmetic, and autograd's per-operation bookkeeping would cost more than the
arithmetic itself. The backward pass here is a short sequence of large operations; it is checked
against autograd in tests/test_training.py.

Faithful details of the official GRU4Rec:
- the candidates of a sampled loss are the minibatch targets followed by the shared extra samples;
- dropout on the input embedding and on each GRU layer's output; the dropped-out output is also the
  state carried to the next step (with ``embedding="none"`` the first layer is the embedding and gets
  the embedding dropout);
- logQ correction for ``ce_sampled``: scores minus ``logq * log(support)`` for the minibatch targets
  and minus ``logq * log(support ** sample_alpha)`` for the extra samples;
- the loss is averaged over the minibatch rows; item matrices are updated only on the rows the step used.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .losses import loss_terms
from .model import GRU4Rec, gru_gates, gru_gates_backward
from .optim import AdagradMomentum


class TrainStep:
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
            self.dense_names += [f"gru_input_biases.{layer}", f"gru_hidden_weights.{layer}", f"gru_hidden_biases.{layer}"]
            dense_params += [model.gru_input_biases[layer], model.gru_hidden_weights[layer], model.gru_hidden_biases[layer]]
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

        self.logq_table = None
        if loss == "ce_sampled" and logq > 0:
            log_support = np.log(np.maximum(np.asarray(item_support, dtype=np.float64), 1.0))
            table = np.concatenate([logq * log_support, logq * sample_alpha * log_support]).astype(np.float32)
            self.logq_table = torch.as_tensor(table, device=device)
        self.n_items = model.n_items

    # -- dropout ------------------------------------------------------------------------------
    def _dropout_mask(self, shape: tuple[int, int], p: float) -> Tensor:
        uniform = torch.rand(shape, device=self.device, generator=self.dropout_generator)
        return (uniform >= p).to(uniform.dtype).mul_(1.0 / (1.0 - p))

    # -- the step -----------------------------------------------------------------------------
    def _item_rows(self, inputs: Tensor, candidates: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """The item-matrix rows a sampled step touches: (rows, position of each input then candidate
        in ``rows``, which rows are candidates). On the CPU the rows are sorted and distinct, so every
        later pass over them touches each row once; on a GPU duplicates are kept (no host
        synchronisation) and the optimizer sums them."""
        batch = inputs.shape[0]
        touched = torch.cat([inputs, candidates]) if self.mode == "shared" else candidates
        if not self.optimizer.sort_rows(self.model.item_weight):
            return touched, torch.arange(touched.shape[0], device=touched.device), None
        rows, positions = torch.unique(touched, return_inverse=True)
        is_candidate = None
        if self.mode == "shared":
            is_candidate = torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
            is_candidate.index_fill_(0, positions[batch:], True)
        return rows, positions, is_candidate

    def __call__(self, inputs: Tensor, targets: Tensor, samples: Tensor | None, state: list[Tensor]) -> Tensor:
        model = self.model
        mode = self.mode
        item_weight, item_bias = model.item_weight, model.item_bias
        batch = inputs.shape[0]
        grads = self.dense_grads
        optimizer = self.optimizer

        # Output rows first: with the shared embedding the input rows come from the same gather.
        if self.full:
            out_weight, out_bias = item_weight, item_bias
        else:
            candidates = targets if samples is None or samples.numel() == 0 else torch.cat([targets, samples])
            rows, positions, is_candidate = self._item_rows(inputs, candidates)
            out_weight = item_weight.index_select(0, rows)
            out_bias = item_bias.index_select(0, rows)
            candidate_positions = positions[batch:] if mode == "shared" else positions

        # Forward ------------------------------------------------------------------------------
        embed_mask = None
        layer_input = None
        if mode == "shared":
            # Rows of the item matrix: of the full matrix, or of the rows already gathered above.
            input_rows = inputs if self.full else positions[:batch]
            layer_input = (item_weight if self.full else out_weight).index_select(0, input_rows)
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
            h_new, rz, n, gh_n = gru_gates(gi, h, model.gru_hidden_weights[layer], model.gru_hidden_biases[layer])
            mask = None
            if self.layer_dropout[layer] > 0:
                mask = self._dropout_mask(h_new.shape, self.layer_dropout[layer])
                h_new = h_new.mul_(mask)
            caches.append((layer_input, h, rz, n, gh_n, mask))
            state[layer] = h_new
            layer_input = h_new
        output = layer_input

        row_scores = torch.addmm(out_bias, output, out_weight.t())
        if self.full:
            scores, target_columns = row_scores, targets
        else:
            # One column per candidate (duplicates included), as the loss defines.
            scores, target_columns = row_scores.index_select(1, candidate_positions), None
            if self.logq_table is not None:
                shifted = candidates.clone()
                shifted[batch:] += self.n_items
                scores.sub_(self.logq_table.index_select(0, shifted))
        loss, d_scores, scale = loss_terms(self.loss, scores, target_columns, self.bpreg, self.elu_param)

        # Backward (d_scores * scale is the gradient; the scale goes onto the smaller factors) -----
        if not self.full:
            # Sum the columns of repeated items: one gradient column per touched row.
            d_scores = torch.zeros_like(row_scores).index_add_(1, candidate_positions, d_scores)
        d_input = torch.mm(d_scores, out_weight).mul_(scale)
        output_scaled = output * scale
        if self.full:
            d_out_weight = torch.mm(d_scores.t(), output_scaled, out=grads["item_weight"])
            torch.sum(d_scores, dim=0, out=grads["item_bias"]).mul_(scale)
        else:
            d_out_weight = torch.mm(d_scores.t(), output_scaled)
            d_out_bias = d_scores.sum(dim=0).mul_(scale)
        first_layer_rows = None
        for layer in range(len(state) - 1, -1, -1):
            layer_input, h, rz, n, gh_n, mask = caches[layer]
            if mask is not None:
                d_input = d_input.mul_(mask)
            d_gi, d_gh = gru_gates_backward(d_input, h, rz, n, gh_n)
            torch.mm(h.t(), d_gh, out=grads[f"gru_hidden_weights.{layer}"])
            torch.sum(d_gh, dim=0, out=grads[f"gru_hidden_biases.{layer}"])
            torch.sum(d_gi, dim=0, out=grads[f"gru_input_biases.{layer}"])
            if layer == 0 and mode == "none":
                first_layer_rows = d_gi
                d_input = None
            else:
                torch.mm(layer_input.t(), d_gi, out=grads[f"gru_input_weights.{layer}"])
                d_input = torch.mm(d_gi, model.gru_input_weights[layer].t())
        if embed_mask is not None:
            d_input = d_input.mul_(embed_mask)

        # Update (every gradient above was computed from the weights before this step) -----------
        if mode == "shared":
            d_out_weight.index_add_(0, input_rows, d_input)
        optimizer.update_dense("dense", self.dense_flat, self.dense_grad)
        if not self.full:
            if optimizer.sort_rows(item_weight):
                optimizer.update_unique_rows("item_weight", item_weight, rows, d_out_weight)
                optimizer.update_unique_rows("item_bias", item_bias, rows, d_out_bias, mask=is_candidate)
            else:
                optimizer.update_rows("item_weight", item_weight, rows, d_out_weight)
                bias_from = batch if mode == "shared" else 0  # input rows carry no bias gradient
                optimizer.update_rows("item_bias", item_bias, rows[bias_from:], d_out_bias[bias_from:])
        if mode == "separate":
            optimizer.update_rows("input_embedding", model.input_embedding, inputs, d_input)
        elif mode == "none":
            optimizer.update_rows("gru_input_weights.0", model.gru_input_weights[0], inputs, first_layer_rows)
        return loss
