"""The training command: ``gru4rec-pipeline train``, the training job the workflow's ``train_model`` rule runs."""

from __future__ import annotations

import argparse

from gru4rec_pipeline.cli.common import key_value, positive_int
from gru4rec_pipeline.names import (
    DEFAULT_CUTOFFS,
    DEFAULT_TIE_MODE,
    DEVICES,
    ENGINES,
    EXCHANGES,
    LOSSES,
    SPLITS,
    THREAD_DEFAULTS,
    TIE_MODES,
)
from gru4rec_pipeline.names import MODEL_FOLDER_FILES as FOLDER


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train GRU4Rec on session arrays",
        description="Train GRU4Rec with one loss into a model folder (its files: "
        f"{', '.join(FOLDER[role] for role in ('model', 'history', 'summary', 'state'))}), as the workflow's "
        "train_model rule does. Hyperparameters not given with --set take the loss's defaults "
        "(src/gru4rec_pipeline/model/hyperparameters.py).",
    )
    parser.add_argument("--train", required=True, help="training session arrays (train.npz)")
    parser.add_argument("--vocab", required=True, help="their vocabulary (vocab.parquet)")
    parser.add_argument("--loss", required=True, choices=LOSSES)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="a hyperparameter (repeatable)")
    parser.add_argument("--out", required=True, help="the model folder to write")
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
    add_epoch_evaluation_arguments(parser)
    parser.set_defaults(run=run_train)


def add_training_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How a training runs (seed, threads, device, engine, progress, checkpoints): ``train`` and ``tune-train``."""
    parser.add_argument("--seed", type=int, default=42, help="seed of weights, dropout and sampling (default 42)")
    threads = THREAD_DEFAULTS["training"]
    parser.add_argument(
        "--threads", type=positive_int, default=threads, help=f"CPU threads for PyTorch (default {threads})"
    )
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default auto: CUDA when available")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="how the epochs drive the step (default auto: graphs on a GPU, loop on a CPU; config key training.engine)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--no-checkpoints",
        action="store_true",
        help="no per-epoch checkpoints (by default OUT/checkpoints/, which a rerun resumes; removed at the end)",
    )


def add_epoch_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """The per-epoch evaluation (the learning curve in history.csv) and early stopping: ``train``, ``tune-train``."""
    parser.add_argument("--eval", help="evaluate the model after every epoch on these sessions (eval.npz)")
    parser.add_argument(
        "--eval-split", choices=SPLITS, default="test", help="the split --eval holds (default test; valid for tuning)"
    )
    parser.add_argument("--cutoffs", type=positive_int, nargs="+", default=list(DEFAULT_CUTOFFS), help="cut-offs k")
    parser.add_argument(
        "--tie-mode", default=DEFAULT_TIE_MODE, choices=TIE_MODES, help=f"ranking of ties (default {DEFAULT_TIE_MODE})"
    )
    parser.add_argument("--eval-batch-size", type=positive_int, default=512, help="sessions evaluated side by side")
    parser.add_argument(
        "--early-stopping",
        type=int,
        default=0,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without improvement of --early-stopping-metric and keep the best epoch's "
        "weights (needs --eval on a valid split; default 0: off)",
    )
    parser.add_argument(
        "--early-stopping-metric", default="mrr@20", help="the metric early stopping watches (default mrr@20)"
    )


def run_train(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.training.job import TrainingJob
    from gru4rec_pipeline.training.run import run_training

    run_training(TrainingJob.from_args(args, hyperparameters=dict(key_value(text) for text in args.set or [])))
    return 0
