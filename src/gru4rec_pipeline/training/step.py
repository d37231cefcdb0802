"""The training step of GRU4Rec, written once: forward, hand-written backward, Adagrad-momentum update.

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

What differs between devices is a strategy, not a second copy of the math (``StepSetup.use_kernels``):
- compiled (the CPU's engine ``loop``): numba loops (``model/kernels``) for the losses with the most work, the
  GRU cell and the row update, which merges duplicate item rows of a step dynamically;
- fixed-shape (``use_kernels`` False: the engines ``eager`` and ``graphs``, and any engine on a GPU): torch
  operations only, with duplicate rows merged by a fixed-size scatter (``model/optim``), so that a CUDA graph can
  hold the step.
How epochs drive the step (one call per minibatch, or chunks replayed from CUDA graphs) is ``engines`` and
``graphs``.

Data-parallel (``parallel/``): with a process's ``share`` the step computes only its lanes of the minibatch,
against the whole minibatch's candidates (every lane's target and the shared samples, the same on every
process); the share's exchange sums the gradients of the dense weights and of the fixed-size block of touched
item rows (and the loss) across processes in one call, and every process then applies the same update (or the
exchange applies it, sharded, where it ``owns_update``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.model.losses import loss_terms, loss_terms_of_active_rows
from gru4rec_pipeline.model.network import GRU4Rec, gru_gates, gru_gates_backward
from gru4rec_pipeline.model.optim import AdagradMomentum


@dataclass(frozen=True)
class StepSetup:
    """How a process runs the step: the dropout stream's seed, the CPU's compiled kernels or the fixed-shape code,
    and (data-parallel) the process's ``share`` of the minibatch (``parallel.group.ProcessShare``: its lanes and
    the exchange of the gradients; None: one process trains every lane)."""

    dropout_seed: int = 0
    use_kernels: bool = True
    share: object = None


class TrainStep:
    """Callable ``(inputs, targets, samples, state) -> loss`` that also updates the model in place."""

    def __init__(
        self, model: GRU4Rec, hyperparameters: Hyperparameters, item_support: np.ndarray, setup: StepSetup = StepSetup()
    ):
        self.model = model
        self.share = setup.share
        self.use_kernels = setup.use_kernels
        # This process's lanes of the minibatch (None: all of them).
        self.lanes = None if setup.share is None else setup.share.lanes
        batch_size = hyperparameters.batch_size
        self.first_lane = 0 if self.lanes is None else self.lanes.start
        self.local_batch = batch_size if self.lanes is None else self.lanes.stop - self.lanes.start
        self.loss = loss = hyperparameters.loss
        self.full = loss == "ce_full"
        self.batch_size = batch_size
        self.bpreg = float(hyperparameters.bpreg)
        self.elu_param = float(hyperparameters.elu_param)
        self.mode = model.embedding
        device = model.device
        self.device = device
        self.dropout_generator = torch.Generator(device=device).manual_seed(int(setup.dropout_seed))
        n_layers = len(model.layers)
        # Dropout probability applied to the embedding and to each layer's output.
        dropout_embed, dropout_hidden = hyperparameters.dropout_embed, hyperparameters.dropout_hidden
        self.embed_dropout = dropout_embed if self.mode != "none" else 0.0
        self.layer_dropout = [dropout_hidden] * n_layers
        if self.mode == "none":
            self.layer_dropout[0] = dropout_embed

        self.optimizer = AdagradMomentum(hyperparameters.learning_rate, hyperparameters.momentum, self.use_kernels)
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
        self.dense_params = dense_params
        flat = torch.cat([p.detach().reshape(-1) for p in dense_params])
        self.bind_dense(flat, torch.zeros_like(flat))
        self.optimizer.add_dense("dense", self.dense_flat)
        # Parameters updated by rows (the rows a step touched), by their optimizer name.
        self.row_params: dict[str, Tensor] = {}
        if not self.full:
            self.row_params["item_weight"] = model.item_weight
            self.row_params["item_bias"] = model.item_bias
        if self.mode == "separate":
            self.row_params["input_embedding"] = model.input_embedding
        if self.mode == "none":
            self.row_params["gru_input_weights.0"] = model.gru_input_weights[0]
        for name, param in self.row_params.items():
            self.optimizer.add_rows(name, param)

        # logQ correction per candidate: logq * log(support) for the minibatch targets and
        # logq * log(support ** sample_alpha) for the extra samples.
        self.logq_target_table = self.logq_sample_table = None
        logq, sample_alpha = hyperparameters.logq, hyperparameters.sample_alpha
        if loss == "ce_sampled" and logq > 0:
            log_support = np.log(np.maximum(np.asarray(item_support, dtype=np.float64), 1.0))
            self.logq_target_table = torch.as_tensor((logq * log_support).astype(np.float32), device=device)
            self.logq_sample_table = torch.as_tensor(
                (logq * sample_alpha * log_support).astype(np.float32), device=device
            )
        self.n_items = model.n_items

    def bind_dense(self, flat: Tensor, grad: Tensor) -> None:
        """Make the dense parameters views of ``flat`` (holding their values) and their gradients views of
        ``grad``: one buffer each, so that a single update (or exchange) covers them all."""
        self.dense_flat, self.dense_grad = flat, grad
        self.dense_grads: dict[str, Tensor] = {}
        offset = 0
        for name, param in zip(self.dense_names, self.dense_params):
            size = param.numel()
            param.data = flat[offset : offset + size].view(param.shape)
            self.dense_grads[name] = grad[offset : offset + size].view(param.shape)
            offset += size

    def init_state(self) -> list[Tensor]:
        """Zero hidden states of this process's lanes."""
        return self.model.init_state(self.local_batch)

    def local(self, values):
        """This process's columns (lanes) of a minibatch-wide array [T, B, ...]: all of them in one process."""
        return values if self.lanes is None else values[:, self.lanes]

    # -- dropout ------------------------------------------------------------------------------
    def _dropout_mask(self, shape: tuple[int, int], p: float) -> Tensor:
        # Drawn for the whole minibatch, so that every process reads the stream as one process does.
        uniform = torch.rand((self.batch_size, shape[1]), device=self.device, generator=self.dropout_generator)
        if self.lanes is not None:
            uniform = uniform[self.lanes]
        return (uniform >= p).to(uniform.dtype).mul_(1.0 / (1.0 - p))

    # -- the step -----------------------------------------------------------------------------
    def __call__(
        self, inputs: Tensor, targets: Tensor, samples: Tensor | None, state: list[Tensor], active=None
    ) -> Tensor:
        """One step on the minibatch ``inputs``/``targets`` [B] with the shared ``samples`` (None: none);
        ``state`` (this process's lanes) is advanced in place. ``active`` (a host bool array [B], None: all): the
        lanes still training at the end of an epoch; the others add nothing. Returns the minibatch's loss, summed
        over its (active) lanes and divided by ``batch_size``, as the official GRU4Rec does."""
        rows = self._gather_rows(inputs, targets, samples)
        output, caches, embed_mask = self._forward(rows, inputs, state)
        scores = torch.addmm(rows.out_bias, output, rows.out_weight.t())
        local_targets = targets if self.lanes is None else targets[self.lanes]
        terms = (self.loss, scores, local_targets if self.full else None, self.bpreg, self.elu_param, self.use_kernels)
        if active is None:
            loss, d_scores, scale = loss_terms(*terms, first_column=self.first_lane, total_rows=self.batch_size)
        else:  # slots retired at the end of an epoch
            loss, d_scores, scale = loss_terms_of_active_rows(*terms, active, self.first_lane, self.batch_size)
        row_grads, bias_grads, input_grads = self._backward(rows, inputs, output, caches, embed_mask, d_scores, scale)
        if self.share is not None:
            exchange = self.share.exchange
            if exchange.owns_update:  # the processes share the update out
                return exchange.update(self, rows, inputs, (row_grads, bias_grads, input_grads), loss)
            exchange.sum_([self.dense_grad, row_grads, bias_grads, input_grads, loss])
        self._update(rows, inputs, row_grads, bias_grads, input_grads)
        return loss

    def _gather_rows(self, inputs: Tensor, targets: Tensor, samples: Tensor | None) -> "StepRows":
        """Item rows: all of them (ce_full), or those the step touches, gathered once. The candidates
        (targets, then the shared samples) come first and the inputs (shared embedding) last, so the bias is
        updated on the candidate entries (a prefix) only. Duplicates are kept here (one score column per
        candidate, as the loss defines) and merged by the optimizer."""
        model = self.model
        rows = StepRows()
        if self.full:
            rows.out_weight, rows.out_bias = model.item_weight, model.item_bias
            return rows
        batch = inputs.shape[0]
        parts = [targets] if samples is None or samples.numel() == 0 else [targets, samples]
        if self.mode == "shared":
            parts.append(inputs)
        rows.touched = touched = torch.cat(parts)
        rows.n_candidates = n_candidates = touched.shape[0] - (batch if self.mode == "shared" else 0)
        rows.touched_rows = model.item_weight.index_select(0, touched)
        rows.out_weight = rows.touched_rows[:n_candidates]
        out_bias = model.item_bias.index_select(0, touched[:n_candidates])
        if self.logq_target_table is not None:
            correction = [self.logq_target_table.index_select(0, targets)]
            if len(parts) > 1 and n_candidates > batch:
                correction.append(self.logq_sample_table.index_select(0, samples))
            out_bias = out_bias.sub_(torch.cat(correction))
        rows.out_bias = out_bias
        return rows

    def _forward(self, rows: "StepRows", inputs: Tensor, state: list[Tensor]):
        """The embedding of this process's inputs and the GRU layers (dropout on each output, which is also
        the state carried on). Returns the output, what the backward pass needs, and the embedding's mask."""
        model, mode = self.model, self.mode
        local_inputs = inputs if self.lanes is None else inputs[self.lanes]
        layer_input = None
        if mode == "shared":
            if self.full:
                layer_input = model.item_weight.index_select(0, local_inputs)
            else:
                first = rows.n_candidates + self.first_lane
                layer_input = rows.touched_rows[first : first + self.local_batch]
        elif mode == "separate":
            layer_input = model.input_embedding.index_select(0, local_inputs)
        embed_mask = None
        if layer_input is not None and self.embed_dropout > 0:
            embed_mask = self._dropout_mask(layer_input.shape, self.embed_dropout)
            layer_input = layer_input * embed_mask
        caches = []
        for layer, h in enumerate(state):
            bias = model.gru_input_biases[layer]
            if layer == 0 and mode == "none":
                gi = model.gru_input_weights[0].index_select(0, local_inputs).add_(bias)
            else:
                gi = torch.addmm(bias, layer_input, model.gru_input_weights[layer])
            h_new, rz, n, gh = gru_gates(
                gi, h, model.gru_hidden_weights[layer], model.gru_hidden_biases[layer], self.use_kernels
            )
            mask = None
            if self.layer_dropout[layer] > 0:
                mask = self._dropout_mask(h_new.shape, self.layer_dropout[layer])
                h_new = h_new.mul_(mask)
            caches.append((layer_input, h, rz, n, gh, mask))
            state[layer] = h_new
            layer_input = h_new
        return layer_input, caches, embed_mask

    def _backward(self, rows, inputs, output, caches, embed_mask, d_scores, scale):
        """Gradients into the dense buffer; returns the item rows' (one per touched entry), the candidate
        biases' and the input rows' (separate embedding or one-hot first layer; one per lane of the
        minibatch, zero for other processes' lanes). ``d_scores * scale`` is the gradient of the scores;
        the scale goes onto the smaller factors."""
        model, mode, grads = self.model, self.mode, self.dense_grads
        n_candidates = rows.n_candidates
        d_input = torch.mm(d_scores, rows.out_weight).mul_(scale)
        output_scaled = output * scale
        embedding_grad = row_grads = bias_grads = None  # embedding_grad: where the shared input rows' go
        if self.full:
            torch.mm(d_scores.t(), output_scaled, out=grads["item_weight"])
            torch.sum(d_scores, dim=0, out=grads["item_bias"]).mul_(scale)
        else:
            # One gradient row per touched entry: candidates from the scores, inputs (shared) below.
            # Across processes the input entries of other processes' lanes must add nothing: zeros.
            if self.share is not None:
                row_grads = self.share.exchange.row_grads_like(rows.touched_rows)
            else:
                row_grads = torch.empty_like(rows.touched_rows)
            torch.mm(d_scores.t(), output_scaled, out=row_grads[:n_candidates])
            bias_grads = d_scores.sum(dim=0).mul_(scale)
            if mode == "shared":
                first = n_candidates + self.first_lane
                embedding_grad = row_grads[first : first + self.local_batch]
        first_layer_rows = None
        for layer in range(len(caches) - 1, -1, -1):
            layer_input, h, rz, n, gh, mask = caches[layer]
            if mask is not None:
                d_input = d_input.mul_(mask)
            d_gi, d_gh = gru_gates_backward(d_input, h, rz, n, gh, self.use_kernels)
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
        if self.full and mode == "shared":
            local_inputs = inputs if self.lanes is None else inputs[self.lanes]
            grads["item_weight"].index_add_(0, local_inputs, d_input)
        input_grads = d_input if mode == "separate" else first_layer_rows
        if input_grads is not None and self.lanes is not None:
            lanes_grads = input_grads.new_zeros(self.batch_size, input_grads.shape[1])
            lanes_grads[self.lanes] = input_grads
            input_grads = lanes_grads
        return row_grads, bias_grads, input_grads

    def _update(self, rows, inputs, row_grads, bias_grads, input_grads) -> None:
        """Every gradient was computed from the weights before this step (and, across processes, summed)."""
        model, optimizer = self.model, self.optimizer
        optimizer.update_dense("dense", self.dense_flat, self.dense_grad)
        if not self.full:
            optimizer.update_rows_with_bias(
                "item_weight",
                model.item_weight,
                "item_bias",
                model.item_bias,
                rows.touched,
                row_grads,
                bias_grads,
                param_rows=rows.touched_rows,
            )
        if self.mode == "separate":
            optimizer.update_rows("input_embedding", model.input_embedding, inputs, input_grads)
        elif self.mode == "none":
            optimizer.update_rows("gru_input_weights.0", model.gru_input_weights[0], inputs, input_grads)


class StepRows:
    """The item rows of one step: ``touched`` (candidates, then shared inputs; None for ce_full), their
    gathered ``touched_rows``, ``n_candidates``, and the output layer the scores use."""

    __slots__ = ("touched", "touched_rows", "n_candidates", "out_weight", "out_bias")

    def __init__(self):
        self.touched = self.touched_rows = None
        self.n_candidates = 0
