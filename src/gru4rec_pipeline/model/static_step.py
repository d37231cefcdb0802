"""The training step with static shapes and no host work: what a CUDA graph captures and replays.

``StaticStep.run_chunk(k)`` runs ``k`` consecutive steps of ``TrainStep`` (same forward, backward and
Adagrad-momentum update, on the same parameter and optimizer tensors) reading everything from buffers that
live on the device for the whole run:

- ``block`` [capacity, 3B]: per step the targets, the inputs and the keep flags (0 where a slot starts a new
  session) of the current piece of an epoch, uploaded once per piece;
- ``store`` [rows, n_sample]: a copy of the negative sampler's store, refreshed when the sampler refills;
- ``cursor`` [2]: the step within ``block`` and the row of ``store`` the next step reads; each chunk
  advances both by ``k``, so a replayed graph reads new data on every replay.

Every shape is fixed by the batch size and the sample count. The gradients of item rows that a step touches
more than once (a popular item among the shared samples, a target that is also a sample or an input) are
summed by scattering all entry gradients into a buffer with one row per item, reading the touched rows back
and zeroing them again (three fixed-size operations, no sort, no data-dependent shape). Each entry then
computes the update of its row; copies of one row compute identical values, so writing all of them back is
well defined, and rows not touched keep their values, accumulators and momentum.

During an epoch the output weights and bias live side by side in one table [n_items, d + 1] (and their
accumulators and momenta in one [n_items, 2, d + 1]), so that a step gathers, updates and writes back an item
row with its bias at once; ``begin`` and ``finish`` move them from and to the model and the optimizer. The
bias is written back on the candidate entries only (a prefix): an item that is only an input keeps its bias.

Deliberate differences in the order of floating-point operations from ``TrainStep`` (the results agree to
rounding; tests/test_static_step.py compares them): the loss-gradient scale is applied inside the matrix
products, the output bias enters the scores and its gradient leaves them through the same matrix products as
the weights (a column of ones next to the output), and the losses with the most work have leaner forms
(``static_losses``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gru4rec_pipeline.model.network import gru_gates
from gru4rec_pipeline.model.static_losses import StaticLoss
from gru4rec_pipeline.model.train_step import TrainStep


class StaticStep:
    """Steps of ``step`` (a ``TrainStep``) over device buffers; ``n_sample`` extra negatives a step
    (0 for none), ``store_rows`` rows in the sampler's store, chunks of at most ``max_chunk`` steps and
    pieces of at most ``capacity`` steps."""

    def __init__(self, step: TrainStep, n_sample: int, store_rows: int, max_chunk: int, capacity: int):
        model = step.model
        device = step.device
        batch = step.batch_size
        self.step, self.model, self.device, self.batch = step, model, device, batch
        self.mode, self.full = model.embedding, step.full
        self.n_sample = 0 if self.full else int(n_sample)
        self.n_candidates = batch + self.n_sample
        shared_inputs = self.mode == "shared" and not self.full
        self.n_entries = self.n_candidates + (batch if shared_inputs else 0)
        optimizer = step.optimizer
        self.learning_rate, self.momentum, self.eps = optimizer.learning_rate, optimizer.momentum, optimizer.eps
        self.opt_state = optimizer.state

        def zeros(*shape, dtype=torch.float32):
            return torch.zeros(*shape, dtype=dtype, device=device)

        self.block = zeros(capacity, 3 * batch, dtype=torch.int64)
        self.store = zeros(store_rows, self.n_sample, dtype=torch.int64) if self.n_sample else None
        self.cursor = zeros(2, dtype=torch.int64)
        self.chunk_offsets = torch.arange(max_chunk, device=device)
        self.state = [zeros(batch, size) for size in model.layers]
        self.loss_sum = zeros(())
        columns = model.n_items if self.full else self.n_candidates
        self.loss = StaticLoss(step.loss, batch, columns, max_chunk, device, step.bpreg, step.elu_param)
        self.one, self.zero = torch.ones((), device=device), torch.zeros((), device=device)
        d_out = model.output_size
        self.d_output = zeros(batch, d_out)
        if not self.full:
            self.item_table = zeros(model.n_items, d_out + 1)
            self.item_state = zeros(model.n_items, 2, d_out + 1)
            # The output with a column of ones: one product gives the scores with the bias, one the weight and
            # bias gradients of every candidate. The input entries' bias gradient column stays 0.
            self.output_ones = torch.ones(batch, d_out + 1, device=device)
            self.entry_grads = zeros(self.n_entries, d_out + 1)
            self.item_sums = zeros(model.n_items, d_out + 1)
        self.input_sums = None
        if self.mode == "separate":
            self.input_sums = zeros(model.n_items, model.embedding_dim)
        elif self.mode == "none":
            self.input_sums = zeros(model.n_items, 3 * model.layers[0])
        self.logq_table = self.logq_side = None
        if step.logq_target_table is not None:
            # Negated, to be added to the scores. Targets read the first half, samples the second.
            self.logq_table = torch.cat([step.logq_target_table, step.logq_sample_table]).neg_()
            side = torch.zeros(self.n_candidates, dtype=torch.int64, device=device)
            side[batch:] = model.n_items
            self.logq_side = side

    def mutable_tensors(self) -> list[Tensor]:
        """Everything a step changes that outlives it (what a trial run must restore)."""
        params = [param for param in self.model.parameters()]
        tables = [] if self.full else [self.item_table, self.item_state]
        return params + list(self.opt_state.values()) + tables + self.state + [self.loss_sum, self.cursor]

    def _item_pairs(self) -> list[tuple[Tensor, Tensor]]:
        """(view of the epoch's tables, the model's or optimizer's tensor it mirrors)."""
        d_out = self.model.output_size
        weight_state, bias_state = self.opt_state["item_weight"], self.opt_state["item_bias"]
        return [
            (self.item_table[:, :d_out], self.model.item_weight),
            (self.item_table[:, d_out], self.model.item_bias),
            (self.item_state[:, 0, :d_out], weight_state[:, :d_out]),
            (self.item_state[:, 1, :d_out], weight_state[:, d_out:]),
            (self.item_state[:, :, d_out], bias_state),
        ]

    def begin(self) -> None:
        """Take the output weights, bias and their optimizer state from the model (before steps)."""
        for table, source in [] if self.full else self._item_pairs():
            table.copy_(source)

    def finish(self) -> None:
        """Give the output weights, bias and their optimizer state back (after steps)."""
        for table, source in [] if self.full else self._item_pairs():
            source.copy_(table)

    # -- a chunk of steps -----------------------------------------------------------------------
    def run_chunk(self, steps: int) -> None:
        batch, n_candidates = self.batch, self.n_candidates
        where = self.cursor.unsqueeze(1) + self.chunk_offsets[:steps]
        block = self.block.index_select(0, where[0])
        targets, inputs = block[:, :batch], block[:, batch : 2 * batch]
        keep = block[:, 2 * batch :].to(torch.float32).unsqueeze(2)
        touched = corrections = None
        if not self.full:
            parts = [targets]
            if self.n_sample:
                parts.append(self.store.index_select(0, where[1]))
            if self.mode == "shared":
                parts.append(inputs)
            touched = torch.cat(parts, dim=1)
            if self.logq_table is not None:
                side = touched[:, :n_candidates] + self.logq_side
                corrections = self.logq_table.index_select(0, side.view(-1)).view(steps, n_candidates)
        for j in range(steps):
            self._step(
                j,
                targets[j],
                inputs[j],
                keep[j],
                None if touched is None else touched[j],
                None if corrections is None else corrections[j],
            )
        self.loss.add_chunk_loss(self.loss_sum, steps)
        self.cursor.add_(steps)

    def _dropout_mask(self, shape, p: float) -> Tensor:
        """1 where a unit is kept, else 0; applied with the scale 1 / (1 - p) by ``_apply_mask``. The draws of
        TrainStep._dropout_mask, in the same order: the same masks from the same generator."""
        uniform = torch.rand(shape, device=self.device, generator=self.step.dropout_generator)
        return uniform.ge_(p)

    def _apply_mask(self, x: Tensor, mask: Tensor, p: float, out: Tensor | None = None) -> Tensor:
        # 0 + (scale * x) * mask: the product TrainStep rounds, x * (mask * scale), in one operation.
        return torch.addcmul(self.zero, x, mask, value=1.0 / (1.0 - p), out=out)

    def _step(self, slot, targets, inputs, keep, touched, correction) -> None:
        model, step, mode, full = self.model, self.step, self.mode, self.full
        n_candidates = self.n_candidates
        grads = step.dense_grads
        for h in self.state:
            h.mul_(keep)
        rows = None
        if full:
            out_weight = model.item_weight
        else:
            rows = self.item_table.index_select(0, touched)  # [entries, d + 1]: weights and bias
            out_weight = rows[:n_candidates, :-1]

        # Forward ------------------------------------------------------------------------------
        layer_input = input_rows = None
        if mode == "shared":
            layer_input = model.item_weight.index_select(0, inputs) if full else rows[n_candidates:, :-1]
        elif mode == "separate":
            layer_input = input_rows = model.input_embedding.index_select(0, inputs)
        embed_mask = None
        if layer_input is not None and step.embed_dropout > 0:
            embed_mask = self._dropout_mask(layer_input.shape, step.embed_dropout)
            layer_input = self._apply_mask(layer_input, embed_mask, step.embed_dropout)
        caches, outputs = [], []
        last = len(self.state) - 1
        for layer, h in enumerate(self.state):
            bias = model.gru_input_biases[layer]
            if layer == 0 and mode == "none":
                gi = model.gru_input_weights[0].index_select(0, inputs).add_(bias)
            else:
                gi = torch.addmm(bias, layer_input, model.gru_input_weights[layer])
            h_new, rz, n, gh = gru_gates(
                gi, h, model.gru_hidden_weights[layer], model.gru_hidden_biases[layer], use_kernels=False
            )
            p = step.layer_dropout[layer]
            mask = self._dropout_mask(h_new.shape, p) if p > 0 else None
            into = self.output_ones[:, :-1] if layer == last and not full else None
            if mask is not None:
                h_new = self._apply_mask(h_new, mask, p, out=into)
            elif into is not None:
                h_new = into.copy_(h_new)
            caches.append((layer_input, h, rz, n, gh, mask, p))
            outputs.append(h_new)
            layer_input = h_new
        output = layer_input
        if full:
            scores = torch.addmm(model.item_bias, output, out_weight.t())
        elif correction is None:
            scores = torch.mm(self.output_ones, rows[:n_candidates].t())
        else:
            scores = torch.addmm(correction, self.output_ones, rows[:n_candidates].t())
        grad, scale = self.loss.gradient(scores, slot, targets if full else None)

        # Backward -----------------------------------------------------------------------------
        d_input = self.d_output.addmm_(grad, out_weight, beta=0.0, alpha=scale)
        if full:
            grads["item_weight"].addmm_(grad.t(), output, beta=0.0, alpha=scale)
            torch.sum(grad, dim=0, out=grads["item_bias"]).mul_(scale)
        else:
            self.entry_grads[:n_candidates].addmm_(grad.t(), self.output_ones, beta=0.0, alpha=scale)
        first_layer_rows = None
        for layer in range(last, -1, -1):
            layer_input, h, rz, n, gh, mask, p = caches[layer]
            if mask is not None:
                d_input = self._apply_mask(d_input, mask, p)
            d_gi, d_gh = self._gates_backward(d_input, h, rz, n, gh)
            torch.mm(h.t(), d_gh, out=grads[f"gru_hidden_weights.{layer}"])
            torch.sum(d_gh, dim=0, out=grads[f"gru_hidden_biases.{layer}"])
            torch.sum(d_gi, dim=0, out=grads[f"gru_input_biases.{layer}"])
            if layer == 0 and mode == "none":
                first_layer_rows, d_input = d_gi, None
                continue
            torch.mm(layer_input.t(), d_gi, out=grads[f"gru_input_weights.{layer}"])
            weight_t = model.gru_input_weights[layer].t()
            if layer == 0 and mode == "shared" and not full:
                d_input = torch.mm(d_gi, weight_t, out=self.entry_grads[n_candidates:, :-1])
            else:
                d_input = torch.mm(d_gi, weight_t)
        if embed_mask is not None:
            if mode == "shared" and not full:  # the gradient rows of the input entries, in place
                d_input = self._apply_mask(d_input, embed_mask, step.embed_dropout, out=d_input)
            else:
                d_input = self._apply_mask(d_input, embed_mask, step.embed_dropout)

        # Update (every gradient above came from the weights before this step) -------------------
        if full and mode == "shared":
            grads["item_weight"].index_add_(0, inputs, d_input)
        self._adagrad_dense()
        if not full:
            self._update_items(touched, rows)
        if mode == "separate":
            self._update_input_rows("input_embedding", model.input_embedding, inputs, d_input, input_rows)
        elif mode == "none":
            weight = model.gru_input_weights[0]
            rows_before = weight.index_select(0, inputs)
            self._update_input_rows("gru_input_weights.0", weight, inputs, first_layer_rows, rows_before)
        for h, h_new in zip(self.state, outputs):
            h.copy_(h_new)

    # -- pieces ---------------------------------------------------------------------------------
    def _gates_backward(self, d_h: Tensor, h: Tensor, rz: Tensor, n: Tensor, gh: Tensor) -> tuple[Tensor, Tensor]:
        """``gru_gates_backward`` in fewer operations (the same formulas): d_gi, d_gh [B, 3H]."""
        size = h.shape[1]
        d_gi = torch.empty_like(gh)
        d_pre_n = d_gi[:, 2 * size :]
        # dn = dh' (1 - z); d(pre-activation of n) = dn (1 - n^2)
        d_n = torch.addcmul(d_h, d_h, rz[:, size:], value=-1.0)
        torch.mul(d_n, torch.addcmul(self.one, n, n, value=-1.0), out=d_pre_n)
        torch.mul(d_pre_n, gh[:, 2 * size :], out=d_gi[:, :size])
        torch.mul(d_h, h - n, out=d_gi[:, size : 2 * size])
        d_gi[:, : 2 * size].mul_(torch.addcmul(rz, rz, rz, value=-1.0))
        d_gh = torch.empty_like(gh)
        d_gh[:, : 2 * size].copy_(d_gi[:, : 2 * size])
        torch.mul(d_pre_n, rz[:, :size], out=d_gh[:, 2 * size :])
        return d_gi, d_gh

    @staticmethod
    def _merge(sums: Tensor, rows: Tensor, grads: Tensor) -> Tensor:
        """Per entry of ``rows``, the sum of the gradients of every entry with the same row; ``sums``
        (one row per item) is zero before and after."""
        sums.index_add_(0, rows, grads.reshape(rows.shape[0], -1))
        summed = sums.index_select(0, rows)
        sums.index_fill_(0, rows, 0.0)
        return summed

    def _adagrad(self, state_rows: Tensor, grad: Tensor, param_rows: Tensor) -> Tensor:
        """``AdagradMomentum`` on gathered rows: updates ``state_rows`` [k, 2, ...] (accumulator, momentum)
        in place and returns the new parameter rows. ``grad`` holds summed gradients, so every copy of a row
        computes the same new values."""
        acc, mom = state_rows[:, 0], state_rows[:, 1]
        acc.addcmul_(grad, grad)
        inv_root = acc.add(self.eps).rsqrt_()
        change = mom.mul_(self.momentum).addcmul_(grad, inv_root, value=-self.learning_rate)
        return param_rows.add(change.view_as(param_rows))

    def _update_items(self, touched: Tensor, rows: Tensor) -> None:
        table, state = self.item_table, self.item_state
        summed = self._merge(self.item_sums, touched, self.entry_grads)
        state_rows = state.index_select(0, touched)
        new_rows = self._adagrad(state_rows, summed, rows)
        if self.n_entries == self.n_candidates:
            table.index_copy_(0, touched, new_rows)
            state.index_copy_(0, touched, state_rows)
            return
        # Weights on every entry, the bias on the candidate entries only (the inputs come after them).
        candidates = touched[: self.n_candidates]
        table[:, :-1].index_copy_(0, touched, new_rows[:, :-1])
        table[:, -1].index_copy_(0, candidates, new_rows[: self.n_candidates, -1])
        state[:, :, :-1].index_copy_(0, touched, state_rows[:, :, :-1])
        state[:, :, -1].index_copy_(0, candidates, state_rows[: self.n_candidates, :, -1])

    def _update_input_rows(self, name: str, param: Tensor, rows: Tensor, grad: Tensor, param_rows: Tensor) -> None:
        state = self.opt_state[name]  # [n, 2 * width]: accumulator, then momentum
        summed = self._merge(self.input_sums, rows, grad)
        state_rows = state.index_select(0, rows)
        new_rows = self._adagrad(state_rows.view(rows.shape[0], 2, -1), summed, param_rows)
        state.index_copy_(0, rows, state_rows)
        param.index_copy_(0, rows, new_rows)

    def _adagrad_dense(self) -> None:
        step = self.step
        acc, mom = self.opt_state["dense"][0], self.opt_state["dense"][1]
        grad = step.dense_grad
        acc.addcmul_(grad, grad)
        inv_root = acc.add(self.eps).rsqrt_()
        step.dense_flat.add_(mom.mul_(self.momentum).addcmul_(grad, inv_root, value=-self.learning_rate))
