"""The CPU training step of two checkouts side by side: events/s of each, alternately, in fresh processes.

Usage: python bench/bench_step_ab.py --before /path/to/old/checkout [--after .] [--events 100000]
       [--rounds 5] [--losses ce_sampled bpr_max] [--threads 1] [--env NAME=VALUE ...]

Each round trains every loss once per tree (one epoch of ``bench_training.py``'s synthetic data, the same
seed), each run a fresh process with ``PYTHONPATH`` set to that tree's ``src``; the order of the two trees
alternates from round to round so that a drift in the machine's load falls on both. Only the training's own
epoch time counts (numba's compilation and the data's synthesis are outside it). ``--threads`` is the training's
``threads`` (torch's intra-op threads); ``--env`` sets environment variables of every run (``OMP_WAIT_POLICY``,
``GOMP_SPINCOUNT``, ...), to see what a thread setting does.

Prints each run's events/s with what the machine was doing around it: the 1-minute load average when it started
(``/proc/loadavg``; the benchmark's own run adds about 1 per thread), the CPU seconds of its training call
(the epoch, and building the model and the sampler's store) over all its threads, its involuntary context
switches (a thread taken off its core: what a busy machine does to a training that waits for all its threads),
and the share of the machine's CPU time that its virtual machine's host gave to others during the run (``steal``
in ``/proc/stat``: a quiet guest on a busy host). Then per loss the medians, the spread, the ratio after/before,
and how many of the after tree's runs are within 5% of the before tree's median.
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
TOLERANCE = 0.05  # a run "within" the before tree's median: at most this much slower

CHILD = """
import json, resource, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch
sys.path.insert(0, {bench!r})
from bench_training import split_tail, synthetic_sessions
import gru4rec_pipeline
from gru4rec_pipeline.model import kernels
kernels.warm_up()  # compiled (or loaded from numba's cache) before the CPU time is taken
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
        train_once = lambda: run(job, TrainingInputs(train, support))
    except ImportError:  # a tree from before it: the training loop in model/
        from gru4rec_pipeline.model.hyperparameters import TrainConfig
        from gru4rec_pipeline.model.training import train_model
        config = TrainConfig.from_dict({{**settings, "threads": {threads}, "device": "cpu"}})
        train_once = lambda: train_model(
            train, support, config, Path(folder) / "m.pt", Path(folder) / "h.csv", progress=False
        )
    usage, cpu = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    summary = train_once()
    cpu, switches = time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - usage.ru_nivcsw
print(json.dumps({{
    "package": gru4rec_pipeline.__file__, "events_per_s": summary["events_per_s"], "wall_s": summary["train_seconds"],
    "cpu_s": cpu, "switches": switches, "threads": torch.get_num_threads(), "loss": summary["final_loss"],
}}))
"""


def cpu_ticks() -> list[int]:
    """The machine's CPU time in ticks (``/proc/stat``): user, nice, system, idle, iowait, irq, softirq, steal."""
    try:
        return [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return []


def load_average() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def run_tree(tree: Path, loss: str, events: int, threads: int, env: dict[str, str]) -> dict:
    """One training in a fresh process on ``tree``'s package: its figures."""
    child_env = {**os.environ, **env, "PYTHONPATH": str(tree / "src")}
    # The tree's own bench_training (the synthetic data, alike in both): it imports the tree's package, whose
    # modules may have moved since.
    bench = tree / "bench" if (tree / "bench" / "bench_training.py").exists() else BENCH
    code = CHILD.format(bench=str(bench), events=events, loss=loss, threads=threads)
    load, ticks = load_average(), cpu_ticks()
    done = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, text=True)
    spent = [after - before for before, after in zip(ticks, cpu_ticks())]
    steal = spent[7] / sum(spent) if len(spent) == 8 and sum(spent) > 0 else float("nan")
    if done.returncode != 0:
        raise SystemExit(f"training on {tree} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = (tree / "src" / "gru4rec_pipeline" / "__init__.py").resolve()
    if Path(result["package"]).resolve() != expected:
        raise SystemExit(f"the run for {tree} imported {result['package']}, not {expected}")
    if result["threads"] != threads:
        raise SystemExit(f"the run for {tree} trained with {result['threads']} threads, not {threads}")
    return {**result, "load": load, "steal": steal}


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env {pair!r}: expected NAME=VALUE")
        env[name] = value
    return env


def summary_lines(loss: str, runs: dict[str, list[dict]]) -> list[str]:
    speeds = {name: [run["events_per_s"] for run in runs[name]] for name in ("before", "after")}
    before, after = statistics.median(speeds["before"]), statistics.median(speeds["after"])
    within = sum(speed >= (1 - TOLERANCE) * before for speed in speeds["after"])
    lines = [
        f"{loss}: median before {before:,.0f} (runs {min(speeds['before']):,.0f} to {max(speeds['before']):,.0f}), "
        f"after {after:,.0f} (runs {min(speeds['after']):,.0f} to {max(speeds['after']):,.0f}) events/s, "
        f"after/before {after / before:.3f}; after's runs within {TOLERANCE:.0%} of before's median: "
        f"{within} of {len(speeds['after'])}"
    ]
    losses = {name: {round(run["loss"], 6) for run in runs[name]} for name in runs}
    lines.append(f"{'':>{len(loss)}}  final losses: before {sorted(losses['before'])}, after {sorted(losses['after'])}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the older tree")
    parser.add_argument("--after", type=Path, default=BENCH.parent, help="default: this checkout")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--losses", nargs="+", default=["ce_sampled", "bpr_max"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE", help="environment of every run")
    args = parser.parse_args()
    env = parse_env(args.env)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for name, tree in trees.items():
        if not (tree / "src" / "gru4rec_pipeline").is_dir():
            raise SystemExit(f"--{name} {tree}: expected a checkout with src/gru4rec_pipeline")
    print(f"threads {args.threads}, {args.events:,} events, environment {env or 'as inherited'}", flush=True)
    runs = {loss: {"before": [], "after": []} for loss in args.losses}
    for round_ in range(args.rounds):
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for loss in args.losses:
            for name in order:
                run = run_tree(trees[name], loss, args.events, args.threads, env)
                runs[loss][name].append(run)
                print(
                    f"round {round_ + 1} {loss:>10} {name:>6}: {run['events_per_s']:,.0f} events/s "
                    f"(load {run['load']:.2f}; epoch {run['wall_s']:.1f} s wall; training {run['cpu_s']:.1f} s CPU, "
                    f"{run['switches']:,} involuntary switches; host steal {run['steal']:.1%})",
                    flush=True,
                )
    for loss in args.losses:
        print("\n".join(summary_lines(loss, runs[loss])))


if __name__ == "__main__":
    main()
