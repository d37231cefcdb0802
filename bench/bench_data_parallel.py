"""Data-parallel training speed: P processes x 1 thread against 1 process x 1 thread at the same global minibatch.

Usage: python bench/bench_data_parallel.py [--events 300000] [--loss ce_sampled] [--processes 2]
       [--lanes 64 256] [--rounds 1] [--exchanges shared_memory all_reduce]

The data of bench_training.py (~37k items, RSC15-like sessions), the loss's published settings otherwise, one
epoch. For each global minibatch (``--lanes``) it trains with one process and with ``--processes`` for each
gradient exchange (``training.exchange``: shared_memory, all_reduce), all through ``run_training`` as the workflow
does (torchrun on 127.0.0.1), alternating the runs ``--rounds`` times, and prints events/s of each (and of each
round), the ratio to one process (and each round's, to the single process of that round), and where the rest
goes: per step, the ideal (one process's step divided by P), the exchange's
seconds as measured inside the step (barrier waits and this process's share of the update for shared_memory; the
all-reduce for all_reduce; waiting for the slower process included) and the remainder.
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
from gru4rec_pipeline.model.hyperparameters import Hyperparameters  # noqa: E402
from gru4rec_pipeline.names import EXCHANGES  # noqa: E402
from gru4rec_pipeline.training.job import ParallelOptions, RunOptions, TrainingJob  # noqa: E402
from gru4rec_pipeline.training.run import run_training  # noqa: E402


def write_inputs(folder: Path, events: int) -> None:
    arrays, support = synthetic_sessions(events)
    arrays.save(folder / "train.npz")
    items = np.arange(len(support))
    pd.DataFrame({"ItemId": items + 1, "ItemIdx": items, "Support": support}).to_parquet(folder / "vocab.parquet")
    print(f"data: {arrays.n_events:,} events, {arrays.n_sessions:,} sessions, {len(support):,} items")


def train(folder: Path, loss: str, lanes: int, processes: int, exchange: str | None, run: str) -> dict:
    setting = Hyperparameters.from_dict({"loss": loss, "epochs": 1, "batch_size": lanes})
    options = RunOptions(device="cpu", threads=1, progress=False)
    parallel = ParallelOptions(processes, 1, exchange or "auto")
    return run_training(
        TrainingJob(folder / "train.npz", folder / "vocab.parquet", folder / run, setting, options, parallel)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--loss", default="ce_sampled")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--lanes", type=int, nargs="+", default=[64, 256], help="global minibatch sizes")
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the runs per size")
    parser.add_argument("--exchanges", nargs="+", default=["shared_memory", "all_reduce"], choices=EXCHANGES[1:])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_inputs(folder, args.events)
        for lanes in args.lanes:
            runs = [(1, None)] + [(args.processes, exchange) for exchange in args.exchanges]
            speeds: dict = {run: [] for run in runs}
            figures: dict = {}
            for round_ in range(args.rounds):
                for processes, exchange in runs:
                    summary = train(folder, args.loss, lanes, processes, exchange, f"{lanes}-{exchange}-{round_}")
                    speeds[processes, exchange].append(summary["events_per_s"])
                    figures[processes, exchange] = summary.get("exchange")
            one = np.mean(speeds[1, None])
            step_one = lanes / one
            print(
                f"{args.loss}, {lanes} lanes: 1 x 1 thread {one:,.0f} events/s (rounds "
                f"{[round(v) for v in speeds[1, None]]}), a step {1e3 * step_one:.2f} ms"
            )
            for processes, exchange in runs[1:]:
                many = np.mean(speeds[processes, exchange])
                step_many, ideal = lanes / many, step_one / processes
                spent = figures[processes, exchange]
                detail = f"exchange {1e3 * spent['seconds_per_step']:.2f} ms"
                if exchange == "shared_memory":
                    detail += (
                        f" (barrier waits {1e3 * spent['wait_seconds_per_step']:.2f} ms, this process's share of the "
                        f"update {1e3 * spent['update_seconds_per_step']:.2f} ms)"
                    )
                # Each round's ratio to the single process of the same round, so that the spread shows.
                ratios = [f"{a / b:.2f}x" for a, b in zip(speeds[processes, exchange], speeds[1, None])]
                print(
                    f"  {processes} x 1 thread, {exchange}: {many:,.0f} events/s, {many / one:.2f}x "
                    f"(rounds {[round(v) for v in speeds[processes, exchange]]}, each round's ratio "
                    f"{', '.join(ratios)}); a step {1e3 * step_many:.2f} ms "
                    f"against an ideal {1e3 * ideal:.2f} ms; {spent['bytes_per_step'] / 1e6:.2f} MB a process a "
                    f"step; {detail}; the rest {1e3 * (step_many - ideal - spent['seconds_per_step']):.2f} ms"
                )


if __name__ == "__main__":
    main()
