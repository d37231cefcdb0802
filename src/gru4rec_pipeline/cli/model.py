"""The training command: ``gru4rec-pipeline train``, the driver the workflow's ``train_model`` rule runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from gru4rec_pipeline.cli.common import key_value, positive_int
from gru4rec_pipeline.names import DEVICES, EXCHANGES, LOSSES, THREAD_DEFAULTS, TRAINING_STATE_FILE


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train GRU4Rec on session arrays",
        description="Train GRU4Rec with one loss. Hyperparameters not given with --set take the loss's defaults "
        "(src/gru4rec_pipeline/model/hyperparameters.py).",
    )
    parser.add_argument("--train", required=True, help="training session arrays (train.npz)")
    parser.add_argument("--vocab", required=True, help="their vocabulary (vocab.parquet)")
    parser.add_argument("--loss", required=True, choices=LOSSES)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="a hyperparameter (repeatable)")
    parser.add_argument("--model", required=True, help="model file to write (.pt)")
    parser.add_argument("--history", help="per-epoch history to write (default: history.csv beside the model)")
    parser.add_argument("--summary", help="training summary to write (default: training.json beside the model)")
    add_training_run_arguments(parser)
    parser.add_argument(
        "--processes", type=positive_int, default=1, help="data-parallel processes per node (default 1: one process)"
    )
    parser.add_argument("--nodes", type=positive_int, default=1, help="nodes of a data-parallel training (SLURM)")
    parser.add_argument(
        "--exchange",
        choices=EXCHANGES,
        default="auto",
        help="how data-parallel processes combine their gradients (default auto: shared memory on one CPU node)",
    )
    parser.set_defaults(run=run_train)


def add_training_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How a training runs (checkpoints, seed, threads, device, progress): ``train`` and ``tune-train``."""
    parser.add_argument(
        "--checkpoint-dir", help="folder for per-epoch checkpoints (a rerun resumes; removed once the model is written)"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of weights, dropout and sampling (default 42)")
    threads = THREAD_DEFAULTS["training"]
    parser.add_argument(
        "--threads", type=positive_int, default=threads, help=f"CPU threads for PyTorch (default {threads})"
    )
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default auto: CUDA when available")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run_train(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.training.loop import run_training

    folder = Path(args.model).parent
    run_training(
        args.train,
        args.vocab,
        args.loss,
        dict(key_value(text) for text in args.set or []),
        model_path=args.model,
        history_path=args.history or folder / "history.csv",
        summary_path=args.summary or folder / "training.json",
        checkpoint_root=args.checkpoint_dir,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        progress=not args.quiet,
        processes=args.processes,
        nodes=args.nodes,
        exchange=args.exchange,
        state_path=folder / TRAINING_STATE_FILE,
    )
    return 0
