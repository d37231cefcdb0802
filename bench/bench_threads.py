"""Threads per job: training and evaluation speed with 1 and 2 torch threads, on an idle machine and beside
a competing busy process, measured side by side in one run.

Usage: python bench/bench_threads.py [--events 200000] [--threads 1 2] [--losses bpr_max ce_sampled]

Each measurement runs in a fresh process (torch fixes its thread pools once per process). The competitor is
another Python process spinning on one core, as a second job or another tenant would. Training: one epoch at
the published settings (batch 32, 100 units, 2048 negatives) on bench_training.py's synthetic sessions
(37,000 items). Evaluation: the exact ranking of every held-out next item against all items, with a model
trained once beforehand. What the figures decide is the default `threads` of each stage in config/config.yaml.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def worker(args: argparse.Namespace) -> None:
    """One measurement, in this process: prints a JSON line."""
    import numpy as np
    import torch

    from bench_training import split_tail, synthetic_sessions, train_in_memory
    from gru4rec_pipeline.compute import configure_threads
    from gru4rec_pipeline.model.folder import load_model
    from gru4rec_pipeline.training.job import RunOptions

    threads = args.threads[0]
    configure_threads(threads)
    arrays, _ = synthetic_sessions(args.events)
    train, test = split_tail(arrays, 0.1)
    support = np.bincount(train.items, minlength=37_000)
    model_path = Path(args.folder) / "model.pt"
    if args.worker == "train":
        run = RunOptions(device="cpu", threads=threads)
        summary = train_in_memory(Path(args.model_out).parent, train, support, {"loss": args.loss, "epochs": 1}, run)
        print(json.dumps({"events_per_s": summary["events_per_s"], "threads": torch.get_num_threads()}))
        return
    from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model

    metrics = evaluate_model(load_model(model_path), test, progress=False)
    print(json.dumps({"seconds": metrics["seconds"], "events": metrics["events"], "threads": torch.get_num_threads()}))


def measure(kind: str, threads: int, competing: bool, args: argparse.Namespace, folder: str, loss: str) -> dict:
    competitor = None
    if competing:
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
    try:
        command = [sys.executable, __file__, "--worker", kind, "--threads", str(threads), "--events", str(args.events)]
        command += ["--folder", folder, "--loss", loss, "--model-out", str(Path(folder) / f"scratch-{loss}.pt")]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"measurement failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--losses", nargs="+", default=["bpr_max", "ce_sampled"])
    parser.add_argument("--worker", choices=["train", "evaluate"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--loss", default="bpr_max", help=argparse.SUPPRESS)
    parser.add_argument("--model-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as folder:
        # The model evaluation ranks with: trained once, with the first loss.
        command = [sys.executable, __file__, "--worker", "train", "--threads", "1", "--events", str(args.events)]
        command += ["--folder", folder, "--loss", args.losses[0], "--model-out", str(Path(folder) / "model.pt")]
        subprocess.run(command, capture_output=True, check=True)
        print(f"{args.events:,} synthetic events, 37,000 items; 1 epoch per training; one process per line")
        print(f"{'stage':<22} {'machine':<18}" + "".join(f"{f'{t} thread(s)':>14}" for t in args.threads))
        rows = [(f"train {loss}", "train", loss) for loss in args.losses] + [("evaluate", "evaluate", args.losses[0])]
        for label, kind, loss in rows:
            for competing in (False, True):
                figures = []
                for threads in args.threads:
                    result = measure(kind, threads, competing, args, folder, loss)
                    if kind == "train":
                        figures.append(f"{result['events_per_s']:>9,.0f} ev/s")
                    else:
                        figures.append(f"{result['seconds']:>12.2f} s")
                machine = "beside a busy core" if competing else "idle"
                print(f"{label:<22} {machine:<18}" + "".join(f"{figure:>14}" for figure in figures), flush=True)


if __name__ == "__main__":
    main()
