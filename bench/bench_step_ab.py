"""The CPU training step of two checkouts side by side: events/s of each, alternately, in fresh processes.

Usage: python bench/bench_step_ab.py --before /path/to/old/checkout [--after .] [--events 100000]
       [--rounds 5] [--losses ce_sampled bpr_max] [--threads 1]

Each round trains every loss once per tree (one epoch of ``bench_training.py``'s synthetic data, the same
seed), each run a fresh process with ``PYTHONPATH`` set to that tree's ``src``; the order of the two trees
alternates from round to round so that a drift in the machine's load falls on both. Prints each run's
events/s, then per loss the medians and the ratio after/before. Only the training's own epoch time counts
(numba's compilation and the data's synthesis are outside it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent

CHILD = """
import json, sys, tempfile
from pathlib import Path
import numpy as np
sys.path.insert(0, {bench!r})
from bench_training import split_tail, synthetic_sessions
import gru4rec_pipeline
arrays, support = synthetic_sessions({events})
train, _ = split_tail(arrays, 0.05)
support = np.bincount(train.items, minlength=len(support))
settings = {{"loss": {loss!r}, "epochs": 1}}
with tempfile.TemporaryDirectory() as folder:
    try:  # a tree with the training package: a training job on sessions in memory
        from gru4rec_pipeline.model.hyperparameters import Hyperparameters
        from gru4rec_pipeline.training.job import RunOptions, TrainingJob
        from gru4rec_pipeline.training.loop import TrainingInputs, train as run
        options = RunOptions(device="cpu", threads={threads}, progress=False, checkpoints=False)
        job = TrainingJob("", "", folder, Hyperparameters.from_dict(settings), options)
        summary = run(job, TrainingInputs(train, support))
    except ImportError:  # a tree from before it: the training loop in model/
        from gru4rec_pipeline.model.hyperparameters import TrainConfig
        from gru4rec_pipeline.model.training import train_model
        config = TrainConfig.from_dict({{**settings, "threads": {threads}, "device": "cpu"}})
        summary = train_model(train, support, config, Path(folder) / "m.pt", Path(folder) / "h.csv", progress=False)
print(json.dumps({{"package": gru4rec_pipeline.__file__, "events_per_s": summary["events_per_s"]}}))
"""


def run_tree(tree: Path, loss: str, events: int, threads: int) -> float:
    """One training in a fresh process on ``tree``'s package; its events/s."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    code = CHILD.format(bench=str(BENCH), events=events, loss=loss, threads=threads)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"training on {tree} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = (tree / "src" / "gru4rec_pipeline" / "__init__.py").resolve()
    if Path(result["package"]).resolve() != expected:
        raise SystemExit(f"the run for {tree} imported {result['package']}, not {expected}")
    return float(result["events_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the older tree")
    parser.add_argument("--after", type=Path, default=BENCH.parent, help="default: this checkout")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--losses", nargs="+", default=["ce_sampled", "bpr_max"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for name, tree in trees.items():
        if not (tree / "src" / "gru4rec_pipeline").is_dir():
            raise SystemExit(f"--{name} {tree}: expected a checkout with src/gru4rec_pipeline")
    speeds = {loss: {"before": [], "after": []} for loss in args.losses}
    for round_ in range(args.rounds):
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for loss in args.losses:
            for name in order:
                speed = run_tree(trees[name], loss, args.events, args.threads)
                speeds[loss][name].append(speed)
                print(f"round {round_ + 1} {loss:>10} {name:>6}: {speed:,.0f} events/s", flush=True)
    for loss, runs in speeds.items():
        before, after = statistics.median(runs["before"]), statistics.median(runs["after"])
        print(f"{loss}: median before {before:,.0f}, after {after:,.0f} events/s, after/before {after / before:.3f}")


if __name__ == "__main__":
    main()
