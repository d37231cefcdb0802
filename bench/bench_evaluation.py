"""Evaluation speed at RSC15 scale: events/s of each exact ranking method, checked against brute force.

A GRU (d=100) over 37,000 items is evaluated on sessions it generated itself: each next item is
drawn from the model's own softmax, so targets rank the way a trained model's would (recall@20
around 0.5-0.7) rather than uniformly at random. The output layer has the structure a trained one
tends to have: items in categories (clustered vectors) and popularity in the bias. ``--scenario random``
uses an untrained model and uniform targets instead.

    python bench/bench_evaluation.py                 # ~40,000 events, all methods
    python bench/bench_evaluation.py --events 20000 --scenario random
    python bench/bench_evaluation.py --model results/models/xe/model.pt --eval results/data/eval.npz

Each method's metrics must equal brute force's on the same events (checked on a subset).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model
from gru4rec_pipeline.names import DEFAULT_TIE_MODE, TIE_MODES


class BenchGRU(torch.nn.Module):
    """The model's evaluation interface (init_state, step, output_weights, n_items) on a GRU cell."""

    def __init__(self, n_items: int, dim: int, scenario: str, sharpness: float, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.n_items = n_items
        self.embedding = torch.nn.Embedding(n_items, dim)
        self.cell = torch.nn.GRUCell(dim, dim)
        with torch.no_grad():
            if scenario == "random":
                weights = torch.randn(n_items, dim, generator=generator) * 0.05
                bias = torch.zeros(n_items)
            else:
                n_categories = 400
                spread = torch.linspace(1.0, 0.2, dim)  # decaying spectrum
                categories = torch.randn(n_categories, dim, generator=generator) * spread
                category = torch.randint(0, n_categories, (n_items,), generator=generator)
                weights = categories[category] + 0.5 * torch.randn(n_items, dim, generator=generator) * spread
                popularity = torch.arange(1, n_items + 1, dtype=torch.float32) ** -1.0
                bias = torch.log(popularity[torch.randperm(n_items, generator=generator)])
                # inputs point to their category, so a session stays near one category
                self.embedding.weight.copy_(
                    categories[category] * 2.0 + 0.3 * torch.randn(n_items, dim, generator=generator)
                )
            self.weights = torch.nn.Parameter(weights * sharpness)
            self.bias = torch.nn.Parameter(bias * (1.0 if scenario == "random" else 0.5))

    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        return [torch.zeros(batch_size, self.cell.hidden_size)]

    def step(self, inputs, state):
        hidden = self.cell(self.embedding(inputs), state[0])
        return hidden, [hidden]

    def output_weights(self):
        return self.weights, self.bias


@torch.no_grad()
def sample_sessions(model: BenchGRU, n_events: int, scenario: str, seed: int) -> SessionArrays:
    """Sessions of 2-20 events; each next item drawn from the model's softmax (uniformly for random)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = []
    while sum(lengths) < n_events:
        lengths.append(int(min(20, 2 + np.random.default_rng(len(lengths) + seed).geometric(0.3) - 1)))
    lengths = np.array(lengths)
    n_sessions = len(lengths)
    items = torch.zeros(n_sessions, lengths.max(), dtype=torch.long)
    items[:, 0] = torch.randint(0, model.n_items, (n_sessions,), generator=generator)
    state = model.init_state(n_sessions)
    weights, bias = model.output_weights()
    running = torch.arange(n_sessions)
    for position in range(1, lengths.max()):
        going_on = torch.as_tensor(lengths)[running] > position
        running = running[going_on]
        state = [layer[going_on] for layer in state]
        output, state = model.step(items[running, position - 1], state)
        if scenario == "random":
            items[running, position] = torch.randint(0, model.n_items, (len(running),), generator=generator)
            continue
        for start in range(0, len(running), 2048):
            probabilities = torch.softmax(torch.addmm(bias, output[start : start + 2048], weights.T), dim=1)
            rows = running[start : start + 2048]
            items[rows, position] = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
    flat = np.concatenate([items[s, : lengths[s]].numpy() for s in range(n_sessions)])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SessionArrays(offsets, flat.astype(np.int64), np.zeros(len(flat)), np.arange(n_sessions, dtype=np.int64))


def first_sessions(arrays: SessionArrays, n_events: int) -> SessionArrays:
    n = int(np.searchsorted(arrays.offsets, n_events)) or 1
    end = arrays.offsets[n]
    return SessionArrays(arrays.offsets[: n + 1], arrays.items[:end], arrays.times[:end], arrays.session_ids[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=37_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--events", type=int, default=40_000, help="evaluation events (sessions' first items included)")
    parser.add_argument("--check-events", type=int, default=5_000, help="events on which brute force runs")
    parser.add_argument("--scenario", choices=["calibrated", "random"], default="calibrated")
    parser.add_argument(
        "--sharpness", type=float, default=2.0, help="scale of the output vectors (2: recall@20 about 0.64)"
    )
    parser.add_argument("--tie-mode", default=DEFAULT_TIE_MODE, choices=TIE_MODES)
    parser.add_argument("--methods", nargs="+", default=["certified"])
    parser.add_argument("--model", help="a trained model.pt to measure instead of the synthetic one (needs --eval)")
    parser.add_argument("--eval", help="evaluation sessions (.npz) for --model")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (1 gives steadier figures on a busy machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.model:
        from gru4rec_pipeline.model.folder import load_model

        model = load_model(args.model)
        arrays = first_sessions(SessionArrays.load(args.eval), args.events)
        print(
            f"{args.model}: {model.n_items} items, {arrays.n_sessions} sessions, "
            f"{arrays.n_events - arrays.n_sessions} predictions"
        )
    else:
        model = BenchGRU(args.items, args.dim, args.scenario, args.sharpness, seed=0)
        started = time.perf_counter()
        arrays = sample_sessions(model, args.events, args.scenario, seed=1)
        print(
            f"{args.scenario}: {args.items} items, d={args.dim}, {arrays.n_sessions} sessions, "
            f"{arrays.n_events - arrays.n_sessions} predictions (sampled in {time.perf_counter() - started:.1f} s)"
        )

    check = first_sessions(arrays, args.check_events)
    reference = timed_evaluation(model, check, args.tie_mode, "brute-force")
    report("brute-force", reference)
    for method in args.methods:
        same = timed_evaluation(model, check, args.tie_mode, method)
        exact = same["recall"] == reference["recall"] and all(
            math.isclose(same["mrr"][k], reference["mrr"][k], rel_tol=1e-12) for k in same["mrr"]
        )
        report(
            method, timed_evaluation(model, arrays, args.tie_mode, method), f"; same metrics as brute force: {exact}"
        )


def timed_evaluation(model, arrays: SessionArrays, tie_mode: str, method: str) -> dict:
    """evaluate_model, plus the CPU seconds it used: steadier than wall time on a shared machine."""
    cpu_started = time.process_time()
    metrics = evaluate_model(model, arrays, tie_mode=tie_mode, batch_size=512, progress=False, method=method)
    metrics["cpu_seconds"] = time.process_time() - cpu_started
    return metrics


def report(method: str, metrics: dict, tail: str = "") -> None:
    per_cpu_second = metrics["events"] / max(metrics["cpu_seconds"], 1e-9)
    print(
        f"{method:>12}: {metrics['events_per_s']:>9,.0f} events/s wall, {per_cpu_second:>9,.0f} events per CPU-second, "
        f"{metrics['events']} events (recall@20 {metrics['recall']['20']:.4f}, MRR@20 {metrics['mrr']['20']:.4f}){tail}"
    )


if __name__ == "__main__":
    main()
