"""Data-parallel training speed: P processes x 1 thread against 1 process x 1 thread at the same global minibatch.

Usage: python bench/bench_data_parallel.py [--events 300000] [--loss ce_sampled] [--processes 2]
       [--lanes 64 256] [--rounds 1]

The data of bench_training.py (~37k items, RSC15-like sessions), the loss's published settings otherwise, one
epoch. For each global minibatch (``--lanes``) it trains with one process and with ``--processes`` (through
``run_training``, as the workflow does: torchrun, gloo on 127.0.0.1), alternating them ``--rounds`` times, and
prints events/s of each, their ratio, and where the rest goes: the all-reduce's bytes and seconds per step
(measured inside the step) against the step time, and the replicated part (the update of the dense weights and
of every touched item row, which every process applies in full).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import synthetic_sessions  # noqa: E402
from gru4rec_pipeline.model.training import run_training  # noqa: E402


def write_inputs(folder: Path, events: int) -> None:
    arrays, support = synthetic_sessions(events)
    arrays.save(folder / "train.npz")
    items = np.arange(len(support))
    pd.DataFrame({"ItemId": items + 1, "ItemIdx": items, "Support": support}).to_parquet(folder / "vocab.parquet")
    print(f"data: {arrays.n_events:,} events, {arrays.n_sessions:,} sessions, {len(support):,} items")


def train(folder: Path, loss: str, lanes: int, processes: int, run: str) -> dict:
    out = folder / run
    return run_training(
        folder / "train.npz",
        folder / "vocab.parquet",
        loss,
        {"epochs": 1, "batch_size": lanes},
        out / "model.pt",
        out / "history.csv",
        out / "training.json",
        device="cpu",
        threads=1,
        processes=processes,
        progress=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--loss", default="ce_sampled")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--lanes", type=int, nargs="+", default=[64, 256], help="global minibatch sizes")
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the two runs per size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_inputs(folder, args.events)
        for lanes in args.lanes:
            speeds: dict[int, list[float]] = {1: [], args.processes: []}
            reduce = None
            for round_ in range(args.rounds):
                for processes in (1, args.processes):
                    summary = train(folder, args.loss, lanes, processes, f"{lanes}-{processes}-{round_}")
                    speeds[processes].append(summary["events_per_s"])
                    reduce = summary.get("all_reduce", reduce)
            one, many = np.mean(speeds[1]), np.mean(speeds[args.processes])
            step_one, step_many = lanes / one, lanes / many  # seconds per step
            print(
                f"{args.loss}, {lanes} lanes: 1 x 1 thread {one:,.0f} events/s, {args.processes} x 1 thread "
                f"{many:,.0f} events/s: {many / one:.2f}x (rounds: {[round(v) for v in speeds[1]]} / "
                f"{[round(v) for v in speeds[args.processes]]})"
            )
            ideal = step_one / args.processes
            print(
                f"  step: {1e3 * step_one:.2f} ms on one process, {1e3 * step_many:.2f} ms on {args.processes} "
                f"(ideal {1e3 * ideal:.2f} ms); all-reduce {reduce['bytes_per_step'] / 1e6:.2f} MB a step, "
                f"{1e3 * reduce['seconds_per_step']:.2f} ms a step (waits for the slower process included); "
                f"the rest, {1e3 * (step_many - ideal - reduce['seconds_per_step']):.2f} ms, is the replicated "
                "part (every process updates the dense weights and all touched rows, gathers all candidates)"
            )


if __name__ == "__main__":
    main()
