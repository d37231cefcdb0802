"""Training speed of GRU4Rec on RSC15-like synthetic data: events/s per loss, and the recall@20 reached.

Usage: python bench/bench_training.py [--events 1000000] [--threads 2] [--losses ce_sampled bpr_max]
       [--device cpu|cuda|auto] [--batch-size 32] [--profile]

On a GPU (``--device cuda``) training takes the engine graphs (the fixed-shape step replayed from CUDA graphs)
and each loss also prints the peak GPU memory; ``--profile`` adds kernels and host launches per step from
``torch.profiler``, for the engines graphs and eager and for the per-step loop. Needs only torch, numpy, pandas and
pyarrow with ``PYTHONPATH=src`` (numba, when present, speeds up the CPU parts).

The data: ~37k items with heavy-tailed (Zipf) popularity, session lengths like RSC15 (mean ~3.5, at least 2),
and a learnable next-item structure (each item has a few preferred successors). The last 5% of sessions
are held out; recall@20 is an exact full ranking of every held-out next item (one epoch of training).
The official PyTorch GRU4Rec trains about 4,200 events/s on a 2-core CPU at these settings.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gru4rec_pipeline.compute import resolve_device
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.model.folder import load_model
from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.training.job import RunOptions, TrainingJob
from gru4rec_pipeline.training.loop import TrainingInputs, train

OFFICIAL_EVENTS_PER_S = 4_200  # the official PyTorch GRU4Rec at these settings on a 2-core CPU


def train_in_memory(folder, train_arrays: SessionArrays, support: np.ndarray, settings: dict, run: RunOptions) -> dict:
    """One training of the hyperparameters ``settings`` on sessions in memory, as the training stage trains them
    (``training.loop.train``; the model written into ``folder``, no checkpoints); its summary."""
    run = RunOptions(**{**run.__dict__, "progress": False, "checkpoints": False})
    job = TrainingJob("", "", folder, Hyperparameters.from_dict(settings), run)
    return train(job, TrainingInputs(train_arrays, support))


def synthetic_sessions(n_events: int, n_items: int = 37_000, seed: int = 0) -> tuple[SessionArrays, np.ndarray]:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity /= popularity.sum()
    successors = rng.choice(n_items, size=(n_items, 4), p=popularity)
    lengths = np.minimum(2 + rng.geometric(0.4, size=n_events // 3), 60)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_events) + 1]
    n_sessions = len(lengths)
    offsets = np.zeros(n_sessions + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = np.empty(offsets[-1], dtype=np.int64)
    current = rng.choice(n_items, size=n_sessions, p=popularity)
    for k in range(lengths.max()):
        alive = np.flatnonzero(lengths > k)
        if k > 0:
            follow = rng.random(len(alive)) < 0.6
            pick = successors[current[alive], rng.integers(0, 4, size=len(alive))]
            fresh = rng.choice(n_items, size=len(alive), p=popularity)
            current[alive] = np.where(follow, pick, fresh)
        items[offsets[alive] + k] = current[alive]
    times = np.repeat(np.arange(n_sessions, dtype=np.float64), lengths)
    arrays = SessionArrays(offsets, items, times, np.arange(n_sessions, dtype=np.int64))
    return arrays, np.bincount(items, minlength=n_items)


def split_tail(arrays: SessionArrays, fraction: float) -> tuple[SessionArrays, SessionArrays]:
    cut = int(arrays.n_sessions * (1 - fraction))

    def part(lo: int, hi: int) -> SessionArrays:
        a, b = arrays.offsets[lo], arrays.offsets[hi]
        return SessionArrays(
            arrays.offsets[lo : hi + 1] - a, arrays.items[a:b], arrays.times[a:b], arrays.session_ids[lo:hi]
        )

    return part(0, cut), part(cut, arrays.n_sessions)


def recall_at_20(model, test: SessionArrays, batch: int = 512, max_sessions: int = 4000) -> float:
    """Exact full-ranking recall@20 over every next item of (the first ``max_sessions``) held-out sessions,
    on the model's device."""
    device = model.device
    if test.n_sessions > max_sessions:
        end = test.offsets[max_sessions]
        test = SessionArrays(
            test.offsets[: max_sessions + 1], test.items[:end], test.times[:end], test.session_ids[:max_sessions]
        )
    weight, bias = model.output_weights()
    hits = total = 0
    lengths = test.lengths()
    for lo in range(0, test.n_sessions, batch):
        hi = min(lo + batch, test.n_sessions)
        state = model.init_state(hi - lo)
        for k in range(int(lengths[lo:hi].max()) - 1):
            alive = lengths[lo:hi] > k + 1
            pos = test.offsets[lo:hi] + np.minimum(k, lengths[lo:hi] - 1)
            out, state = model.step(torch.as_tensor(test.items[pos], device=device), state)
            scores = out @ weight.T + bias
            target = test.items[np.minimum(pos + 1, test.offsets[lo + 1 : hi + 1] - 1)]
            target = torch.as_tensor(target, device=device)
            rank = (scores > scores.gather(1, target[:, None])).sum(1)
            mask = torch.as_tensor(alive, device=device)
            hits += int(((rank < 20) & mask).sum())
            total += int(mask.sum())
    return hits / max(total, 1)


class AutogradBaseline(torch.nn.Module):
    """The same algorithm written the plain way, like the official PyTorch GRU4Rec: sparse embeddings,
    ``torch.nn.GRUCell``, autograd, and a sparse Adagrad-with-momentum step. For speed comparison only
    (cross-entropy with logQ, shared embedding, one layer)."""

    def __init__(self, n_items: int, size: int, support: np.ndarray, config: Hyperparameters):
        super().__init__()
        self.items = torch.nn.Embedding(n_items, size, sparse=True)
        self.bias = torch.nn.Embedding(n_items, 1, sparse=True)
        torch.nn.init.zeros_(self.bias.weight)
        self.cell = torch.nn.GRUCell(size, size)
        self.config = config
        self.log_support = torch.log(torch.as_tensor(np.maximum(support, 1), dtype=torch.float32))
        self.state = {p: (torch.zeros_like(p), torch.zeros_like(p)) for p in self.parameters()}

    def train_step(self, inputs, targets, samples, hidden):
        config = self.config
        candidates = torch.cat([targets, samples])
        x = torch.nn.functional.dropout(self.items(inputs), config.dropout_embed, True)
        h = torch.nn.functional.dropout(self.cell(x, hidden), config.dropout_hidden, True)
        scores = h @ self.items(candidates).T + self.bias(candidates).T
        correction = torch.cat([self.log_support[targets], config.sample_alpha * self.log_support[samples]])
        scores = scores - config.logq * correction
        loss = -torch.log_softmax(scores, dim=1).diagonal().mean()
        self.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param, (acc, mom) in self.state.items():
                grad = param.grad
                if grad.is_sparse:
                    grad = grad.coalesce()
                    rows, values = grad._indices()[0], grad._values()
                    acc_rows = acc[rows] + values * values
                    acc.index_copy_(0, rows, acc_rows)
                    mom_rows = mom[rows] * config.momentum - config.learning_rate * values / torch.sqrt(acc_rows + 1e-6)
                    mom.index_copy_(0, rows, mom_rows)
                    param.index_add_(0, rows, mom_rows)
                else:
                    acc += grad * grad
                    mom.mul_(config.momentum).addcdiv_(grad, torch.sqrt(acc + 1e-6), value=-config.learning_rate)
                    param += mom
        return loss.detach(), h.detach()


def run_baseline(train: SessionArrays, support: np.ndarray, test: SessionArrays, threads: int) -> float:
    from gru4rec_pipeline.model.network import GRU4Rec
    from gru4rec_pipeline.training.iterator import SessionParallelIterator
    from gru4rec_pipeline.training.sampler import NegativeSampler

    torch.set_num_threads(threads)
    config = Hyperparameters.from_dict({"loss": "ce_sampled", "epochs": 1})
    torch.manual_seed(0)
    net = AutogradBaseline(len(support), 100, support, config)
    start = GRU4Rec(len(support), [100], seed=config.seed)  # the same initial weights as our training
    with torch.no_grad():
        net.items.weight.copy_(start.item_weight)
        net.cell.weight_ih.copy_(start.gru_input_weights[0].T)
        net.cell.weight_hh.copy_(start.gru_hidden_weights[0].T)
        net.cell.bias_ih.zero_()
        net.cell.bias_hh.zero_()
    sampler = NegativeSampler(support, config.n_sample, config.sample_alpha, config.sample_store_size)
    items = torch.as_tensor(train.items)
    hidden = torch.zeros(config.batch_size, 100)
    events = 0
    started = time.perf_counter()
    for block in SessionParallelIterator(train.offsets, config.batch_size).blocks(1024):
        positions = torch.as_tensor(block.positions)
        keep = torch.as_tensor(~block.new_session).float().unsqueeze(2)
        for t in range(block.n_steps):
            _, hidden = net.train_step(items[positions[t]], items[positions[t] + 1], sampler.next(), hidden * keep[t])
        events += block.positions.size
    seconds = time.perf_counter() - started
    model = GRU4Rec(len(support), [100])
    with torch.no_grad():
        model.item_weight.copy_(net.items.weight)
        model.item_bias.copy_(net.bias.weight[:, 0])
        model.gru_input_weights[0].copy_(net.cell.weight_ih.T)
        model.gru_hidden_weights[0].copy_(net.cell.weight_hh.T)
        model.gru_input_biases[0].copy_(net.cell.bias_ih)
        model.gru_hidden_biases[0].copy_(net.cell.bias_hh)
    print(
        f"  autograd baseline (ce_sampled): {events / seconds:,.0f} events/s ({events:,} events, {seconds:.1f} s, "
        f"threads {torch.get_num_threads()}), recall@20 {recall_at_20(model, test):.4f}"
    )
    return events / seconds


def head(arrays: SessionArrays, n_events: int) -> SessionArrays:
    """The first sessions of ``arrays`` holding about ``n_events`` events."""
    count = max(1, int(np.searchsorted(arrays.offsets, n_events)))
    end = arrays.offsets[count]
    return SessionArrays(
        arrays.offsets[: count + 1], arrays.items[:end], arrays.times[:end], arrays.session_ids[:count]
    )


def profile_steps(config: Hyperparameters, train: SessionArrays, support: np.ndarray, steps: int = 512) -> str:
    """Kernels and host launches per step, counted by ``torch.profiler`` over one epoch of about ``steps`` steps
    of the beginning of ``train`` on the CUDA device: the engine graphs and eager (the kernels a graph holds), and
    the per-step loop of ``TrainStep``."""
    from torch.profiler import ProfilerActivity, profile

    from gru4rec_pipeline.training.graphs import FixedShapeEngine
    from gru4rec_pipeline.training.iterator import SessionParallelIterator
    from gru4rec_pipeline.training.loop import build_step

    device = torch.device("cuda")
    part = head(train, int(steps * config.batch_size * 1.2))

    def build():
        step, sampler = build_step(config, support, device, 42, use_kernels=False)
        return step, sampler, SessionParallelIterator(part.offsets, config.batch_size)

    def count(run) -> tuple[float, float]:
        run()  # once unprofiled: the sample store drawn, lazy initialisation done
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            n_steps = run()
            torch.cuda.synchronize()
        kernels = launches = 0
        for event in prof.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                kernels += not event.name.startswith(("Memcpy", "Memset"))
            elif "LaunchKernel" in event.name or "GraphLaunch" in event.name:
                launches += 1
        return kernels / n_steps, launches / n_steps

    figures = {}
    for name, graphs in (("graphs", True), ("eager", False)):
        step, sampler, iterator = build()
        runner = FixedShapeEngine(step, sampler, part.items, iterator, graphs=graphs)
        figures[name] = count(lambda runner=runner: runner.run_epoch()[1])
    step, sampler, iterator = build()
    items = torch.as_tensor(part.items, device=device)

    def loop() -> int:
        state, n_steps = step.model.init_state(config.batch_size), 0
        for block in iterator.blocks(1024):
            positions = torch.as_tensor(block.positions, device=device)
            keep = torch.as_tensor(~block.new_session, device=device).float().unsqueeze(2)
            for t in range(block.n_steps):
                for h in state:
                    h.mul_(keep[t])
                samples = sampler.next() if sampler is not None else None
                step(items[positions[t]], items[positions[t] + 1], samples, state)
            n_steps += block.n_steps
        return n_steps

    figures["loop"] = count(loop)
    return (
        f"graphs: {figures['graphs'][0]:.1f} kernels and {figures['graphs'][1]:.2f} host launches a step "
        f"(eager: {figures['eager'][0]:.1f} kernels, {figures['eager'][1]:.1f} launches); "
        f"per-step loop: {figures['loop'][0]:.1f} kernels, {figures['loop'][1]:.1f} launches a step"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--losses", nargs="+", default=["ce_sampled", "bpr_max"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--baseline", action="store_true", help="also time a plain autograd implementation (CPU)")
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the published 32")
    parser.add_argument("--profile", action="store_true", help="kernels and launches per step (CUDA)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    arrays, _ = synthetic_sessions(args.events)
    train, test = split_tail(arrays, 0.05)
    support = np.bincount(train.items, minlength=len(_))
    print(
        f"data: {train.n_events:,} training events, {train.n_sessions:,} sessions, {len(support):,} items; "
        f"{test.n_events:,} held-out events"
    )
    speeds = {}
    with tempfile.TemporaryDirectory() as folder:
        for loss in args.losses:
            settings = {"loss": loss, "epochs": args.epochs}
            if args.batch_size is not None:
                settings["batch_size"] = args.batch_size
            config = Hyperparameters.from_dict(settings)
            model_path = Path(folder) / loss / "model.pt"
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            run = RunOptions(device=device.type, threads=args.threads)
            summary = train_in_memory(Path(folder) / loss, train, support, settings, run)
            started = time.perf_counter()
            recall = recall_at_20(load_model(model_path, device=device.type), test)
            evaluation = time.perf_counter() - started
            speeds[loss] = summary["events_per_s"]
            if device.type == "cpu":
                print(
                    f"{loss:>10}: {summary['events_per_s']:,.0f} events/s ({summary['events']:,} events, "
                    f"{summary['train_seconds']:.1f} s, threads {summary['threads']}, "
                    f"engine {summary['engine']}), "
                    f"loss {summary['final_loss']:.4f}, recall@20 {recall:.4f} (eval {evaluation:.1f} s)"
                )
                continue
            peak = torch.cuda.max_memory_allocated() / 2**30
            print(
                f"{loss:>10}: {summary['events_per_s']:,.0f} events/s ({summary['events']:,} events, "
                f"{summary['train_seconds']:.1f} s, {torch.cuda.get_device_name(device)}, batch {config.batch_size}, "
                f"engine {summary['engine']}), "
                f"loss {summary['final_loss']:.4f}, recall@20 {recall:.4f}, peak GPU memory {peak:.2f} GiB "
                f"(eval {evaluation:.1f} s)"
            )
            if args.profile:
                print(f"{'':>12}{profile_steps(config, train, support)}")
    if device.type != "cpu":
        return
    for loss, speed in speeds.items():
        print(
            f"{loss}: {speed / OFFICIAL_EVENTS_PER_S:.1f}x the official implementation's ~{OFFICIAL_EVENTS_PER_S:,} "
            "events/s on a 2-core CPU (a figure measured separately, not in this run)"
        )
    if args.baseline:
        baseline = run_baseline(train, support, test, args.threads)
        if "ce_sampled" in speeds:
            print(f"ce_sampled: {speeds['ce_sampled'] / baseline:.2f}x the autograd baseline, measured side by side")


if __name__ == "__main__":
    main()
