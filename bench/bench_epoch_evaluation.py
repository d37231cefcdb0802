"""What the learning curve costs: the per-epoch evaluation's share of one training epoch.

For each item count, a GRU4Rec (bpr_max, batch 32, 100 units, 2048 shared negatives, one thread) trains one
epoch on a sample of ``--sample-events`` synthetic events (bench_training's data: Zipf popularity, RSC15-like
session lengths, learnable successors) and is then evaluated the way ``training.eval_every_epoch`` evaluates it
(:class:`~gru4rec_pipeline.evaluation.epoch_evaluation.EpochEvaluation`: every cut-off, the exact ranking against
all items) on ``test events`` held-out events. An epoch's time is the full training split's events divided by
the measured training speed, so the share needs no full epoch:

    share = evaluation seconds / (train events per epoch / training events per second)

    python bench/bench_epoch_evaluation.py            # the default data (3,585 items) and RSC15 (37,000 items)
    python bench/bench_epoch_evaluation.py --scales 37000:31600000:71000

A scale is ``items:train_events:test_events``. RSC15's train_full holds about 31.6M events and its test split
about 71k; the synthetic default dataset ranks 15,042 test events against 3,585 items, and its train_full holds
about 1M events (280,000 generated sessions of about 3.6 clicks; results/data/stats.json has the exact count).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import numpy as np

from bench_training import split_tail, synthetic_sessions, train_in_memory
from gru4rec_pipeline.compute import configure_threads
from gru4rec_pipeline.evaluation.epoch_evaluation import EpochEvaluation
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.model.folder import load_model
from gru4rec_pipeline.training.job import RunOptions

DEFAULT_SCALES = ("3585:1000000:15042", "37000:31600000:71000")


def measure(n_items: int, train_events: int, test_events: int, sample_events: int, threads: int) -> dict:
    data, _ = synthetic_sessions(sample_events + test_events, n_items=n_items, seed=1)
    train, test = split_tail(data, test_events / (sample_events + test_events))
    support = np.maximum(np.bincount(train.items, minlength=n_items), 1)
    settings = {"loss": "bpr_max", "epochs": 1, "n_sample": 2048}
    with tempfile.TemporaryDirectory() as scratch:
        summary = train_in_memory(scratch, train, support, settings, RunOptions(seed=3, device="cpu", threads=threads))
        model = load_model(f"{scratch}/model.pt")
    curve = EpochEvaluation(test, EvaluationSettings((1, 5, 10, 20), "standard", 512), split="test")
    started = time.perf_counter()
    columns = curve.measure(1, model, {"wall_s": float("nan")})
    eval_seconds = time.perf_counter() - started
    epoch_seconds = train_events / summary["events_per_s"]
    return {
        "items": n_items,
        "test_events": int((test.lengths() - 1).clip(min=0).sum()),
        "train_events_per_s": summary["events_per_s"],
        "epoch_s": epoch_seconds,
        "eval_s": eval_seconds,
        "share": eval_seconds / epoch_seconds,
        "recall@20": columns["recall@20"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=list(DEFAULT_SCALES), help="items:train_events:test_events")
    parser.add_argument("--sample-events", type=int, default=150_000, help="events trained to measure the speed")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    configure_threads(args.threads)
    print("items  train events/epoch  test events  train events/s  epoch (s)  evaluation (s)  share  recall@20")
    for scale in args.scales:
        n_items, train_events, test_events = (int(part) for part in scale.split(":"))
        row = measure(n_items, train_events, test_events, args.sample_events, args.threads)
        print(
            f"{row['items']:>5}  {train_events:>18,}  {row['test_events']:>11,}  {row['train_events_per_s']:>14,.0f}"
            f"  {row['epoch_s']:>9,.0f}  {row['eval_s']:>14.2f}  {100 * row['share']:>4.2f}%  {row['recall@20']:.3f}"
        )


if __name__ == "__main__":
    main()
