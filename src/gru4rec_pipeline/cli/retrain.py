"""The retraining command: ``gru4rec-pipeline retrain``, the training job the workflow's ``retrain_model`` rule runs."""

from __future__ import annotations

import argparse

from gru4rec_pipeline.cli.common import positive_int
from gru4rec_pipeline.names import DEVICES, ENGINES, PROTOCOL_DEFAULTS, RETRAIN_DEFAULTS, THREAD_DEFAULTS
from gru4rec_pipeline.names import MODEL_FOLDER_FILES as FOLDER

FILES = ("model", "history", "summary", "vocab", "state")  # what a retrain writes into its folder


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "retrain",
        help="continue a trained model on new clicks",
        description="Continue a trained GRU4Rec on new clicks (yoochoose .dat or an event Parquet file): its "
        "weights, optimizer state and random streams continue; items never seen before get new rows at the end of "
        f"the vocabulary. Writes an ordinary model folder ({', '.join(FOLDER[role] for role in FILES)}) that "
        "evaluate, recommend and a further retrain accept.",
    )
    parser.add_argument("--model", required=True, help="the parent model (model.pt, with training_state.pt beside it)")
    parser.add_argument("--vocab", required=True, help="the vocabulary it was trained with (vocab.parquet)")
    parser.add_argument("--clicks", required=True, help="the new clicks (.dat in the yoochoose format, or .parquet)")
    parser.add_argument("--out", required=True, help="folder of the retrained model (not the parent's)")
    parser.add_argument(
        "--epochs", type=positive_int, default=RETRAIN_DEFAULTS["epochs"], help="epochs on the new clicks (default 1)"
    )
    parser.add_argument(
        "--support-decay",
        type=float,
        default=RETRAIN_DEFAULTS["support_decay"],
        help="weight of the parent's item support in the sampler's, in [0, 1] (default 0: the new clicks only)",
    )
    for key in ("min_session_length", "min_item_support"):
        parser.add_argument(
            f"--{key.replace('_', '-')}",
            type=positive_int,
            default=PROTOCOL_DEFAULTS[key],
            help=f"the protocol's {key} applied to the new clicks (default {PROTOCOL_DEFAULTS[key]})",
        )
    threads = THREAD_DEFAULTS["training"]
    parser.add_argument(
        "--threads", type=positive_int, default=threads, help=f"CPU threads for PyTorch (default {threads})"
    )
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default auto: CUDA when available")
    parser.add_argument(
        "--engine", choices=ENGINES, default="auto", help="how the epochs drive the step (default auto)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(run=run_retrain_command)


def run_retrain_command(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.training.job import TrainingJob
    from gru4rec_pipeline.training.run import run_training

    run_training(TrainingJob.from_args(args))
    return 0
