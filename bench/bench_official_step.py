"""This project's training step against the official PyTorch GRU4Rec's, step by step on the same data: the loss,
the gradient of the scores and the update, from the same weights, optimizer state, minibatch, negative samples
and dropout masks.

Usage:
  python bench/bench_official_step.py --official PATH/GRU4Rec_PyTorch_Official \
      --train PATH/yoochoose-clicks-100k_train_full.txt [--losses ce_sampled bpr_max] [--every 10] [--steps N]
      [--seed 1] [--dropout P] [--tensors]

The official training runs one epoch as its ``fit`` does (its iterator, sample store, model, optimizer; its
initial weights from its fixed numpy seed; torch seeded with ``--seed``). Every ``--every``-th step, and every
step of the epoch's end where the official minibatch shrinks, the project's ``TrainStep`` is set to the official
state just before the step (weights and Adagrad-momentum state copied, the hidden state of the official lanes)
and given the same inputs, targets, samples and dropout masks (a shrunken official minibatch becomes the
project's full minibatch with the finished lanes retired). Printed per loss: the steps compared, the largest
relative difference of the loss, of the score gradient (this project's loss on the official scores) and of each
parameter's update (the largest difference over the largest update), and the steps where a difference exceeds
1e-3. Settings: this project's defaults for the loss (``--dropout`` replaces the hidden dropout); ``--tensors``
uses the tensor code instead of the compiled kernels. The data and the official code: see bench_official.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import numpy as np
import torch

from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.model.losses import loss_terms
from gru4rec_pipeline.model.network import GRU4Rec
from gru4rec_pipeline.training.step import StepSetup, TrainStep
from official_gru4rec import import_official, official_params, read_clicks

PARAMETERS = ("item_weight", "item_bias", "gru_input_weights.0", "gru_hidden_weights.0")
PARAMETERS += ("gru_input_biases.0", "gru_hidden_biases.0")
REPORTED = 1e-3  # steps with a larger relative difference are listed


class SharedDropout(torch.nn.Module):
    """The official model's dropout, replaced by the mask both sides use for the step."""

    def __init__(self):
        super().__init__()
        self.mask = None

    def forward(self, x):
        return x * self.mask[: x.shape[0]]


def official_tensors(model) -> dict[str, torch.Tensor]:
    """The official parameters under this project's names and layouts (GRU matrices transposed)."""
    cell = model.G[0]
    return {
        "item_weight": model.Wy.weight,
        "item_bias": model.By.weight[:, 0],
        "gru_input_weights.0": cell.weight_ih.t(),
        "gru_hidden_weights.0": cell.weight_hh.t(),
        "gru_input_biases.0": cell.bias_ih,
        "gru_hidden_biases.0": cell.bias_hh,
    }


def copy_official_state(step: TrainStep, model, optimizer) -> None:
    """The official weights and Adagrad-momentum state into the project's step."""
    cell = model.G[0]
    with torch.no_grad():
        current = step.model.state_dict()
        for name, value in official_tensors(model).items():
            current[name].copy_(value)
        state, official = step.optimizer.state, optimizer.state
        width = step.model.item_weight.shape[1]
        state["item_weight"][:, :width] = official[model.Wy.weight]["acc"]
        state["item_weight"][:, width:] = official[model.Wy.weight]["mom"]
        state["item_bias"][:, 0] = official[model.By.weight]["acc"][:, 0]
        state["item_bias"][:, 1] = official[model.By.weight]["mom"][:, 0]
        dense = [cell.weight_ih, cell.bias_ih, cell.weight_hh, cell.bias_hh]  # the project's dense order
        for row, key in enumerate(("acc", "mom")):
            parts = [official[p][key].t() if p.dim() == 2 else official[p][key] for p in dense]
            state["dense"][row] = torch.cat([part.reshape(-1) for part in parts])


def compare_loss(args: argparse.Namespace, loss: str, gru4rec_pytorch) -> list[str]:
    settings = official_params(loss, 1)
    if args.dropout is not None:
        settings["dropout_p_hidden"] = args.dropout
    batch, dropout = settings["batch_size"], settings["dropout_p_hidden"]
    if len(settings["layers"]) != 1:
        raise SystemExit("one GRU layer expected")
    train = read_clicks(args.train)
    torch.manual_seed(args.seed)
    gru = gru4rec_pytorch.GRU4Rec(device=torch.device("cpu"), **settings)
    with contextlib.redirect_stdout(io.StringIO()):
        iterator = gru4rec_pytorch.SessionDataIterator(
            train, batch, n_sample=settings["n_sample"], sample_alpha=settings["sample_alpha"], device=gru.device
        )
    support = train.groupby("ItemId").size()[iterator.itemidmap.index.values].to_numpy()
    gru.P0 = torch.tensor(support, dtype=torch.float32)
    model = gru4rec_pytorch.GRU4RecModel(iterator.n_items, settings["layers"], 0.0, dropout, 0, True)
    model._reset_weights_to_compatibility_mode()
    shared = SharedDropout()
    model.D[0] = shared
    optimizer = gru4rec_pytorch.IndexedAdagradM(model.parameters(), settings["learning_rate"], settings["momentum"])

    project = GRU4Rec(iterator.n_items, settings["layers"], "shared")
    hyperparameters = Hyperparameters(
        loss=loss, layers=list(settings["layers"]), batch_size=batch, learning_rate=settings["learning_rate"],
        momentum=settings["momentum"], dropout_embed=0.0, dropout_hidden=dropout, n_sample=settings["n_sample"],
        sample_alpha=settings["sample_alpha"], logq=settings["logq"], bpreg=settings["bpreg"],
        elu_param=settings["elu_param"],
    )  # fmt: skip
    step = TrainStep(project, hyperparameters, support, StepSetup(use_kernels=not args.tensors))
    step._dropout_mask = lambda shape, p: shared.mask  # the step draws the official step's mask

    hidden = [torch.zeros(batch, settings["layers"][0])]

    def reset(n_valid, finished, valid):
        with torch.no_grad():
            hidden[0][torch.as_tensor(finished)] = 0
        if n_valid < len(valid):
            hidden[0] = hidden[0][torch.as_tensor(valid)]
        return False

    worst = {"loss": 0.0, "score gradient": 0.0, **{name: 0.0 for name in PARAMETERS}}
    flagged, compared = [], 0
    for index, (inputs, targets) in enumerate(iterator(enable_neg_samples=True, reset_hook=reset)):
        if args.steps is not None and index >= args.steps:
            break
        lanes = inputs.shape[0]
        check = index % args.every == 0 or lanes < batch
        hidden[0] = hidden[0].detach()
        shared.mask = (torch.rand(batch, hidden[0].shape[1]) >= dropout).float() / (1.0 - dropout)
        if check:
            copy_official_state(step, model, optimizer)
            before = {name: value.detach().clone() for name, value in official_tensors(model).items()}
            state = [hidden[0].clone()]
        model.zero_grad()
        scores = model.forward(inputs, hidden, targets, training=True)
        scores.retain_grad()
        official_loss = gru.loss_function(scores, targets, lanes) / batch
        official_loss.backward()
        optimizer.step()
        if not check:
            continue
        compared += 1
        correction = None  # the official cross-entropy's logQ correction of the scores (this project's: in the bias)
        if settings["logq"] > 0 and loss == "ce_sampled":
            frequency = torch.cat([gru.P0[targets[:lanes]], gru.P0[targets[lanes:]] ** settings["sample_alpha"]])
            correction = settings["logq"] * torch.log(frequency)
        differences = compare_step(
            step, state, inputs, targets, lanes, batch, scores, correction, official_loss, model, before
        )
        for name, value in differences.items():
            worst[name] = max(worst[name], value)
        if max(differences.values()) > REPORTED:
            flagged.append(index)
    path = "tensors" if args.tensors else "kernels"
    lines = [f"{loss}: {compared} steps compared of {index + 1} (dropout {dropout}, the project's {path})"]
    lines.append("  largest relative difference: " + ", ".join(f"{name} {value:.1e}" for name, value in worst.items()))
    lines.append(f"  steps above {REPORTED:g}: {len(flagged)}" + (f" (first: {flagged[:10]})" if flagged else ""))
    return lines


def compare_step(step, state, inputs, targets, lanes, batch, scores, correction, official_loss, model, before) -> dict:
    """One project step from the official state; the relative differences to the official step."""
    active = None
    inputs, targets, samples = inputs.long(), targets[:lanes].long(), targets[lanes:].long()
    if lanes < batch:  # the official minibatch shrank: the project's keeps its lanes, the finished ones retired
        active = np.arange(batch) < lanes
        inputs = torch.cat([inputs, inputs[:1].repeat(batch - lanes)])
        targets = torch.cat([targets, targets[:1].repeat(batch - lanes)])
        state = [torch.cat([state[0], state[0][:1].repeat(batch - lanes, 1)])]
    with torch.no_grad():
        corrected = scores.detach().clone() if correction is None else scores.detach() - correction
        _, gradient, scale = loss_terms(
            step.loss, corrected, None, step.bpreg, step.elu_param, step.use_kernels, total_rows=batch
        )
    gradient_difference = (gradient * scale - scores.grad).abs().max() / scores.grad.abs().max()
    loss = float(step(inputs, targets, samples, state, active))
    official_loss = float(official_loss.detach())
    differences = {
        "loss": abs(loss - official_loss) / max(abs(official_loss), 1e-12),
        "score gradient": float(gradient_difference),
    }
    after = {name: value.detach() for name, value in official_tensors(model).items()}
    current = step.model.state_dict()
    for name in PARAMETERS:
        update = (after[name] - before[name]).abs().max().clamp_min(1e-30)
        differences[name] = float((current[name] - after[name]).abs().max() / update)
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="checkout of GRU4Rec_PyTorch_Official")
    parser.add_argument("--train", type=Path, required=True, help="yoochoose-clicks-100k_train_full.txt")
    parser.add_argument("--losses", nargs="+", choices=["ce_sampled", "bpr_max"], default=["ce_sampled", "bpr_max"])
    parser.add_argument("--every", type=int, default=10, help="compare every N-th step (and the epoch's end)")
    parser.add_argument("--steps", type=int, help="stop after this many steps (default: one epoch)")
    parser.add_argument("--seed", type=int, default=1, help="torch's seed: the official samples and dropout masks")
    parser.add_argument("--dropout", type=float, help="hidden dropout instead of the loss's default")
    parser.add_argument("--tensors", action="store_true", help="this project's tensor code, not the kernels")
    args = parser.parse_args()
    if not args.train.is_file():
        raise SystemExit(f"--train {args.train}: no such file (see bench_official.py for where to get it)")
    if not (args.official / "gru4rec_pytorch.py").is_file():
        raise SystemExit(f"--official {args.official}: no gru4rec_pytorch.py; expected GRU4Rec_PyTorch_Official")
    torch.set_num_threads(1)
    gru4rec_pytorch = import_official(args.official)
    for loss in args.losses:
        print("\n".join(compare_loss(args, loss, gru4rec_pytorch)), flush=True)


if __name__ == "__main__":
    main()
