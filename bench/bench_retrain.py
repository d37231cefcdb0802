"""A warm retrain on one new day against a training from scratch: seconds, and recall@20 on the next day.

On the synthetic data of ``--preset`` (generated once under ``--workdir``, as bench_preprocess.py does), the
last two days are split off (``data.rolling.split_days``): day 1 and day 2. Then, in one run, on one thread:

- parent:  a training from scratch on everything before day 1 (the loss's epochs of config/config.yaml);
- scratch: a training from scratch on everything before day 2 (what a nightly retraining from scratch costs);
- warm:    the parent retrained on day 1's sessions for ``--epochs-warm`` epochs (``model.retrain``);

and scratch, warm and the parent (frozen) are tested on day 2 (``evaluation.rolling.evaluate_day``: every
prediction of the day, a target a model does not know counted as a miss).

At RSC15 scale (``--preset full``: ~30M training events) a training from scratch takes hours on one thread.
``--parent-sessions N`` trains the parent on the last N sessions before day 1 only and skips the scratch
training: its seconds are then extrapolated from the parent's measured events/s (printed as such) and its
recall is not measured. ``--side-by-side`` trains the parent and the scratch model at the same time in two
processes (one thread each, so two cores are busy): the full comparison at RSC15 scale in the time of one
training. The warm day is always measured in full.

    .venv/bin/python bench/bench_retrain.py --preset default
    .venv/bin/python bench/bench_retrain.py --preset full --parent-sessions 500000
    .venv/bin/python bench/bench_retrain.py --preset full --side-by-side

Floor: a warm day at least 20x cheaper than a scratch training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import yaml

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
FLOOR = 20.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=["tiny", "default", "full"])
    parser.add_argument("--workdir", type=Path, default=BENCH_DIR / "data")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--loss", default="bpr_max")
    parser.add_argument("--epochs-warm", type=int, default=1)
    parser.add_argument("--parent-sessions", type=int, default=0, help="0: all sessions before day 1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--side-by-side", action="store_true", help="train the parent and the scratch model at once, in two processes"
    )
    return parser.parse_args()


def train(run: Path, name: str, sessions: str, loss: str, hyperparameters: dict, threads: int) -> dict:
    """One training from scratch on ``run/sessions``, written to ``run/name``; its summary and wall seconds."""
    from gru4rec_pipeline.compute import configure_threads
    from gru4rec_pipeline.model.hyperparameters import Hyperparameters
    from gru4rec_pipeline.training.job import RunOptions, TrainingJob
    from gru4rec_pipeline.training.run import run_training

    configure_threads(threads)
    setting = Hyperparameters.from_dict({**hyperparameters, "loss": loss})
    options = RunOptions(device="cpu", threads=threads, progress=False)
    started = time.perf_counter()
    summary = run_training(
        TrainingJob(run / sessions / "train.npz", run / sessions / "vocab.parquet", run / name, setting, options)
    )
    summary["wall_s"] = time.perf_counter() - started
    return summary


def main() -> None:
    args = parse_args()
    from bench_preprocess import synthetic_clicks
    from gru4rec_pipeline.compute import configure_threads
    from gru4rec_pipeline.data.arrays import SessionArrays
    from gru4rec_pipeline.data.clicks import clicks_to_parquet
    from gru4rec_pipeline.data.rolling import split_days
    from gru4rec_pipeline.data.sessions import build_sessions
    from gru4rec_pipeline.evaluation.rolling import evaluate_day
    from gru4rec_pipeline.training.job import RunOptions, WarmStart, retraining_job
    from gru4rec_pipeline.training.run import run_training

    configure_threads(args.threads)
    hyperparameters = yaml.safe_load((BENCH_DIR.parent / "config" / "config.yaml").read_text())["training"]
    hyperparameters = dict(hyperparameters["losses"][args.loss])
    dat = synthetic_clicks(args.preset, args.workdir, args.seed)
    run = args.workdir / f"retrain-{args.preset}-seed{args.seed}"
    run.mkdir(parents=True, exist_ok=True)
    clicks = run / "clicks.parquet"
    if not clicks.exists():
        clicks_to_parquet(dat, clicks)
    days = split_days(
        clicks, [run / "before_1.parquet", run / "before_2.parquet"], [run / "day_1.parquet", run / "day_2.parquet"],
        run / "days.json",
    )  # fmt: skip
    for day in (1, 2):
        build_sessions(
            run / f"before_{day}.parquet", run / f"day_{day}.parquet", run / f"s{day}" / "vocab.parquet",
            run / f"s{day}" / "train.npz", run / f"s{day}" / "eval.npz", run / f"s{day}" / "counts.json",
        )  # fmt: skip
    if args.parent_sessions:
        full = SessionArrays.load(run / "s1" / "train.npz")
        first = max(full.n_sessions - args.parent_sessions, 0)
        offsets = full.offsets[first:] - full.offsets[first]
        events = slice(full.offsets[first], None)
        SessionArrays(offsets, full.items[events], full.times[events], full.session_ids[first:], full.vocabulary).save(
            run / "s1" / "train.npz"
        )

    trainings = {"parent": "s1"} if args.parent_sessions else {"parent": "s1", "scratch": "s2"}
    if args.side_by_side and len(trainings) == 2:
        # spawn, not fork: each worker sets its own thread count before torch and numba start their pools.
        with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
            futures = {
                name: pool.submit(train, run, name, sessions, args.loss, hyperparameters, args.threads)
                for name, sessions in trainings.items()
            }
            timings = {name: future.result() for name, future in futures.items()}
    else:
        timings = {
            name: train(run, name, sessions, args.loss, hyperparameters, args.threads)
            for name, sessions in trainings.items()
        }
    started = time.perf_counter()
    options = RunOptions(device="cpu", threads=args.threads, progress=False)
    warm = WarmStart(str(run / "parent" / "model.pt"))
    job = retraining_job(
        warm, run / "day_1.parquet", run / "s1" / "vocab.parquet", run / "warm", args.epochs_warm, options
    )
    timings["warm"] = run_training(job)
    timings["warm"]["wall_s"] = time.perf_counter() - started
    tested = {
        "scratch": (run / "scratch" / "model.pt", run / "s2" / "vocab.parquet"),
        "warm": (run / "warm" / "model.pt", run / "warm" / "vocab.parquet"),
        "frozen": (run / "parent" / "model.pt", run / "s1" / "vocab.parquet"),
    }
    results = {}
    for name, (model, vocab) in tested.items():
        if model.exists():
            results[name] = evaluate_day(
                model, vocab, run / "day_2.parquet", run / f"{name}_day2.json", name, 2, device="cpu",
                threads=args.threads,
            )  # fmt: skip

    rows = []
    before_2 = days["days"][1]["events_before"]
    parent_rate = timings["parent"]["events_per_s"]
    epochs = int(hyperparameters["epochs"])
    if "scratch" in timings:
        scratch_seconds, scratch_note = timings["scratch"]["train_seconds"], "measured"
    else:
        scratch_seconds = before_2 * epochs / parent_rate
        scratch_note = f"extrapolated: {before_2:,} events x {epochs} epochs at {parent_rate:,.0f} events/s"
    warm_seconds = timings["warm"]["train_seconds"]
    alongside = ", parent and scratch trained side by side" if args.side_by_side and "scratch" in timings else ""
    days_json = json.dumps(days["days"])
    print(f"preset {args.preset}, loss {args.loss}, {args.threads} thread(s){alongside}; days: {days_json}")
    print(f"{'model':<8} {'trained on':>26} {'train s':>10} {'recall@20':>10} {'MRR@20':>8} {'items':>7}")
    described = {
        "scratch": (f"{before_2:,} ev x {epochs} ep", scratch_seconds),
        "warm": (f"{timings['warm']['events']:,} ev total", warm_seconds),
        "frozen": (f"{timings['parent']['events']:,} ev total", 0.0),
    }
    for name, (what, seconds) in described.items():
        result = results.get(name)
        recall = f"{result['recall']['20']:.4f}" if result else "-"
        mrr = f"{result['mrr']['20']:.4f}" if result else "-"
        items = result["items"] if result else "-"
        rows.append(f"{name:<8} {what:>26} {seconds:>10.1f} {recall:>10} {mrr:>8} {items:>7}")
    print("\n".join(rows))
    ratio = scratch_seconds / warm_seconds if warm_seconds > 0 else float("inf")
    print(f"scratch training {scratch_seconds:.1f} s ({scratch_note}); warm day {warm_seconds:.1f} s "
          f"({timings['warm']['events']:,} events, {timings['warm']['epochs']} epoch(s))")  # fmt: skip
    print(f"warm day is {ratio:.1f}x cheaper (floor >= {FLOOR:.0f}x): {'met' if ratio >= FLOOR else 'NOT met'}")
    if "scratch" in results and "warm" in results:
        share = results["warm"]["recall"]["20"] / results["scratch"]["recall"]["20"]
        print(f"warm recall@20 on day 2 is {share:.1%} of scratch's")
    (run / "summary.json").write_text(json.dumps({"timings": timings, "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
