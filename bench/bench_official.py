"""This project's GRU4Rec beside the official PyTorch GRU4Rec on the same real clicks: recall@20 and MRR@20 over
seeds, per loss, with Welch's test of the difference of the means.

Usage:
  python bench/bench_official.py --official PATH/GRU4Rec_PyTorch_Official \
      --train PATH/yoochoose-clicks-100k_train_full.txt --test PATH/yoochoose-clicks-100k_test.txt \
      [--seeds 10] [--epochs 3] [--losses ce_sampled bpr_max] [--official-init fixed|seeded]
      [--project-init own|official] [--jobs 1] [--record runs.json] [--table-only]

Nothing is downloaded. The data: the RSC15 sample prepared by session-rec (https://github.com/rn5l/session-rec,
``data/rsc15/prepared/yoochoose-clicks-100k_train_full.txt`` and ``yoochoose-clicks-100k_test.txt``), tab-separated
SessionId, ItemId, Time with a header line. The official code: a checkout of
https://github.com/hidasib/GRU4Rec_PyTorch_Official (``gru4rec_pytorch.py``, ``evaluation.py``), imported from
``--official`` in its own process and never copied here.

Both sides train on the same events with the same settings (this project's defaults for the loss, the published
RSC15 ones), on the CPU with one thread, every run in a fresh process, and are evaluated alike: each next item of
the test sessions (items unknown to the training split dropped) ranked against all training items, ties counted
against the target (the ``conservative`` mode, the default of the official ``batch_eval``). Seeds: this project's
``seed``; on the official side ``numpy.random.seed`` and ``torch.manual_seed`` before the model is built (they
drive its negative samples and dropout). The official training draws its initial weights with a fixed numpy seed
(42) whatever the other seeds (``--official-init fixed``, its published behaviour), so its spread is the
sampling's alone; ``--official-init seeded`` draws them, with the same formula, from the run's seed instead.
``--project-init official`` starts this project's training from the official code's initial weights (drawn by it
as ``--official-init`` says, rows matched by ItemId; through ``WarmStart``, with a fresh optimizer state), so that
the two sides differ only in their sampling streams.

The official code runs through ``official_gru4rec.py`` (which mends two library changes that stop it).

Prints one line per run as it finishes, then per loss the mean and standard deviation of each side, the
difference (project minus official) with twice its standard error, Welch's t and p, and whether the difference
is within max(0.01, two standard errors). ``--record`` keeps every run in a JSON file (runs already there are
not run again); ``--table-only`` prints the table of a record.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from official_gru4rec import LOSSES, TIE_MODE, official_start, read_clicks, run_official

SIDES = ("official", "project")
METRICS = ("recall@20", "mrr@20")
FLOOR = 0.01  # the differences of the means this comparison accepts (or two standard errors, if wider)
SOURCES = (
    "session-rec's data/rsc15/prepared/ (https://github.com/rn5l/session-rec): yoochoose-clicks-100k_train_full.txt "
    "and yoochoose-clicks-100k_test.txt"
)


# ----------------------------------------------------------------------------- one run, in its own process


def run_project(args: argparse.Namespace) -> dict:
    import pandas as pd

    from gru4rec_pipeline.data.sessions import to_session_arrays
    from gru4rec_pipeline.data.vocabulary import Vocabulary
    from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model
    from gru4rec_pipeline.model.folder import load_model
    from gru4rec_pipeline.model.hyperparameters import Hyperparameters
    from gru4rec_pipeline.training.job import RunOptions, TrainingJob
    from gru4rec_pipeline.training.loop import TrainingInputs
    from gru4rec_pipeline.training.loop import train as run_job

    train, test = read_clicks(args.train), read_clicks(args.test)
    vocabulary = Vocabulary.from_item_ids(train["ItemId"].to_numpy())
    train_arrays, _ = to_session_arrays(train, vocabulary)
    test_arrays, _ = to_session_arrays(test, vocabulary)
    hyperparameters = Hyperparameters.from_dict({"loss": args.loss, "epochs": args.epochs})
    parent = None
    if args.project_init == "official":
        init_seed = args.seed if args.official_init == "seeded" else None
        parent = official_start(args.official, init_seed, hyperparameters, args.seed, train, vocabulary)
    options = RunOptions(seed=args.seed, device="cpu", threads=1, progress=False, checkpoints=False)
    with tempfile.TemporaryDirectory() as folder:
        job = TrainingJob("", "", folder, hyperparameters, options)
        summary = run_job(job, TrainingInputs(train_arrays, vocabulary.support, parent=parent))
        losses = pd.read_csv(job.model_folder.history)["loss"].tolist()
        model = load_model(job.model_folder.model)
    metrics = evaluate_model(model, test_arrays, cutoffs=[20], tie_mode=TIE_MODE, progress=False)
    return {
        "recall@20": metrics["recall"]["20"],
        "mrr@20": metrics["mrr"]["20"],
        "epoch_losses": losses,
        "train_s": summary["train_seconds"],
        "predictions": metrics["events"],
    }


def worker(args: argparse.Namespace) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    if args.worker == "official":
        seeded = args.official_init == "seeded"
        result = run_official(args.official, args.train, args.test, args.loss, args.epochs, args.seed, seeded)
    else:
        result = run_project(args)
    record = {"side": args.worker, "loss": args.loss, "seed": args.seed, "init": init_name(args, args.worker)}
    print(json.dumps({**record, **result}))


def init_name(args: argparse.Namespace, side: str) -> str:
    """How a run's initial weights were drawn: ``fixed`` or ``seeded`` (the official code's draw, its numpy seed
    42 or the run's seed) or ``own`` (this project's, from the run's seed)."""
    if side == "official" or args.project_init == "official":
        return args.official_init
    return "own"


# ----------------------------------------------------------------------------- the comparison


def launch(args: argparse.Namespace, side: str, loss: str, seed: int) -> dict:
    command = [sys.executable, __file__, "--worker", side, "--loss", loss, "--seed", str(seed)]
    command += ["--official", str(args.official), "--train", str(args.train), "--test", str(args.test)]
    command += [
        "--epochs",
        str(args.epochs),
        "--official-init",
        args.official_init,
        "--project-init",
        args.project_init,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{side} {loss} seed {seed} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_line(record: dict) -> str:
    losses = ", ".join(f"{value:.4f}" for value in record["epoch_losses"])
    return (
        f"{record['loss']:<11} {record['side']:<9} seed {record['seed']:>3} ({record['init']} initial weights): "
        f"recall@20 {record['recall@20']:.4f} MRR@20 {record['mrr@20']:.4f}, epoch losses {losses}, "
        f"{record['predictions']} predictions, train {record['train_s']:.1f} s"
    )


def run_key(record: dict) -> tuple:
    """What identifies a run: its side, loss, seed and initial weights."""
    return record["side"], record["loss"], record["seed"], record["init"]


def summary_table(runs: list[dict], losses: list[str]) -> str:
    """Per loss: each side's mean and standard deviation, then the difference with Welch's test."""
    import numpy as np
    from scipy import stats

    lines = [
        f"{'loss':<11} {'side':<9} {'runs':>4}  {'recall@20':<17} {'MRR@20':<17} {'epoch-1 loss':<17} {'train s':>7}"
    ]
    for loss in losses:
        values = {}
        for side in SIDES:
            mine = [record for record in runs if record["loss"] == loss and record["side"] == side]
            if not mine:
                continue
            values[side] = {metric: np.array([record[metric] for record in mine]) for metric in METRICS}
            first = np.array([record["epoch_losses"][0] for record in mine])
            seconds = np.mean([record["train_s"] for record in mine])
            cells = [f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f}" for v in values[side].values()]
            cells.append(f"{first.mean():.4f} ± {first.std(ddof=1) if len(first) > 1 else 0:.4f}")
            lines.append(
                f"{loss:<11} {side:<9} {len(mine):>4}  {cells[0]:<17} {cells[1]:<17} {cells[2]:<17} {seconds:>7.1f}"
            )
        if len(values) < 2 or min(len(v["recall@20"]) for v in values.values()) < 2:
            continue
        for metric in METRICS:
            project, official = values["project"][metric], values["official"][metric]
            difference = project.mean() - official.mean()
            two_se = 2 * math.sqrt(project.var(ddof=1) / len(project) + official.var(ddof=1) / len(official))
            test = stats.ttest_ind(project, official, equal_var=False)
            verdict = "within" if abs(difference) <= max(FLOOR, two_se) else "OUTSIDE"
            lines.append(
                f"{'':<11} {metric} project - official {difference:+.4f} (2 SE {two_se:.4f}; "
                f"Welch t {test.statistic:+.2f}, p {test.pvalue:.3f}): {verdict} max({FLOOR}, 2 SE)"
            )
    return "\n".join(lines)


def compare(args: argparse.Namespace) -> None:
    for name in ("train", "test"):
        if not getattr(args, name).is_file():
            raise SystemExit(f"--{name} {getattr(args, name)}: no such file; get it from {SOURCES}")
    for name in ("gru4rec_pytorch.py", "evaluation.py"):
        if not (args.official / name).is_file():
            raise SystemExit(f"--official {args.official}: no {name}; expected a checkout of GRU4Rec_PyTorch_Official")
    record_path = args.record
    runs = json.loads(record_path.read_text()) if record_path is not None and record_path.is_file() else []
    done = {run_key(record) for record in runs}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    wanted = {side: init_name(args, side) for side in SIDES}
    jobs = [
        (side, loss, seed)
        for loss in args.losses
        for seed in seeds
        for side in (SIDES if seed % 2 else SIDES[::-1])
        if (side, loss, seed, wanted[side]) not in done
    ]
    if not args.table_only:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for record in pool.map(lambda job: launch(args, *job), jobs):
                runs.append(record)
                print(run_line(record), flush=True)
                if record_path is not None:
                    record_path.write_text(json.dumps(runs, indent=1))
    chosen = [r for r in runs if r["loss"] in args.losses and r["seed"] in seeds and r["init"] == wanted[r["side"]]]
    print(
        f"\n{args.epochs} epochs, seeds {seeds.start}..{seeds.stop - 1}; initial weights: official {wanted['official']}"
        f", project {wanted['project']} (fixed: the official numpy seed 42; seeded: the official draw from the run's "
        "seed; own: this project's draw)"
    )
    print(summary_table(chosen, args.losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="checkout of GRU4Rec_PyTorch_Official")
    parser.add_argument("--train", type=Path, required=True, help="yoochoose-clicks-100k_train_full.txt")
    parser.add_argument("--test", type=Path, required=True, help="yoochoose-clicks-100k_test.txt")
    parser.add_argument("--seeds", type=int, default=10, help="runs per side and loss")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--losses", nargs="+", choices=list(LOSSES), default=list(LOSSES))
    parser.add_argument("--official-init", choices=["fixed", "seeded"], default="fixed")
    parser.add_argument("--project-init", choices=["own", "official"], default="own")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each uses one thread)")
    parser.add_argument("--record", type=Path, help="JSON file keeping every run; runs already in it are skipped")
    parser.add_argument("--table-only", action="store_true", help="print the table of --record, run nothing")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--loss", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
