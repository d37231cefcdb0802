"""Commands of the tuning stage: a study's worker and report, and the tuned model's training and evaluation.

The study's settings come from the workflow's own config files (``--config config/config.yaml [overlay ...]``,
merged like Snakemake's ``--configfile``): the ``tuning`` section, the loss's ``training.losses`` entry,
``training.early_stopping`` and ``training.engine``, the ``evaluation`` section, ``seed`` and ``device``. Run
``tune-worker`` in several shells, or on several machines sharing the folder, and they share one study.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gru4rec_pipeline.cli.common import positive_int, provenance_config
from gru4rec_pipeline.cli.evaluation import add_evaluation_arguments, dataset_of, print_recall, ranks_of, settings_of
from gru4rec_pipeline.cli.model import add_epoch_evaluation_arguments, add_training_run_arguments
from gru4rec_pipeline.names import DEVICES, LOSSES, THREAD_DEFAULTS
from gru4rec_pipeline.names import MODEL_FOLDER_FILES as FOLDER


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune-worker",
        help="run trials of a loss's hyperparameter study until it holds tuning.trials",
        description="One worker of a study: trials train on --train and are evaluated on --eval; start several "
        "(same --folder) to run trials side by side.",
    )
    add_study_arguments(parser)
    parser.add_argument("--worker", type=int, default=0, help="this worker's number, 0 .. tuning.workers - 1")
    parser.add_argument("--train", required=True, help="training sessions (results/sessions/tuning/train.npz)")
    parser.add_argument("--eval", required=True, help="validation sessions (results/sessions/tuning/eval.npz)")
    parser.add_argument("--vocab", required=True, help="their vocabulary (vocab.parquet)")
    parser.add_argument("--record", help="worker record to write (default: FOLDER/workers/WORKER.json)")
    threads = THREAD_DEFAULTS["training"]
    parser.add_argument(
        "--threads", type=positive_int, default=threads, help=f"CPU threads for PyTorch (default {threads})"
    )
    parser.add_argument("--device", choices=DEVICES, help="default: the config's device")
    parser.set_defaults(run=run_tune_worker)

    parser = subparsers.add_parser(
        "tune-report",
        help="a finished study's best setting (best.yaml), trials.tsv and figures",
        description="Writes best.yaml, study.json, trials.tsv, optimization_history.png and param_importances.png "
        "into --folder.",
    )
    add_study_arguments(parser)
    parser.add_argument("--workers", nargs="+", required=True, help="the study's worker records (workers/*.json)")
    parser.set_defaults(run=run_tune_report)

    parser = subparsers.add_parser("tune-train", help="train GRU4Rec with a study's best setting (best.yaml)")
    parser.add_argument("--best", required=True, help="the study's best.yaml")
    parser.add_argument("--loss", required=True, choices=LOSSES)
    parser.add_argument("--train", required=True, help="training sessions (results/sessions/final/train.npz)")
    parser.add_argument("--vocab", required=True, help="their vocabulary (vocab.parquet)")
    parser.add_argument("--out", required=True, help="the model folder to write")
    add_training_run_arguments(parser)
    add_epoch_evaluation_arguments(parser)
    parser.set_defaults(run=run_tune_train)

    parser = subparsers.add_parser("tune-evaluate", help="evaluate a tuned model; its record names the study")
    parser.add_argument("--best", required=True, help="the study's best.yaml")
    parser.add_argument("--study", required=True, help="the study's study.json")
    parser.add_argument("--loss", required=True, choices=LOSSES)
    parser.add_argument("--model", required=True, help="the tuned model (model.pt)")
    parser.add_argument("--training", help=f"its training summary ({FOLDER['summary']}), for the timings")
    add_evaluation_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=512, help="sessions evaluated side by side")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="default auto: CUDA when available")
    parser.set_defaults(run=run_tune_evaluate)


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", nargs="+", required=True, metavar="FILE", help="config files, later ones overriding earlier ones"
    )
    parser.add_argument("--loss", required=True, choices=LOSSES)
    parser.add_argument("--folder", required=True, help="the study's folder, e.g. results/tuning/LOSS")


def read_config(paths: list[str]) -> dict:
    """The config files merged in order, mappings key by key (as Snakemake merges --configfile)."""
    import yaml

    from gru4rec_pipeline.errors import DataFormatError

    def merge(base: dict, update: dict) -> dict:
        merged = dict(base)
        for key, value in update.items():
            both = isinstance(value, dict) and isinstance(merged.get(key), dict)
            merged[key] = merge(merged[key], value) if both else value
        return merged

    config: dict = {}
    for path in paths:
        try:
            values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DataFormatError(path, f"cannot read the config file: {exc}") from None
        if not isinstance(values, dict):
            raise DataFormatError(path, "expected a mapping of config keys")
        config = merge(config, values)
    return config


def study_arguments(args: argparse.Namespace) -> dict:
    """What a study's drivers take from the config, for ``args.loss``."""
    config = read_config(args.config)
    tuning = dict(config.get("tuning") or {})
    return {
        "tuning": tuning,
        "space": (tuning.get("spaces") or {}).get(args.loss),
        "hyperparameters": ((config.get("training") or {}).get("losses") or {}).get(args.loss, {}),
        "config": config,
    }


def run_tune_worker(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.tuning.worker import run_tune_worker

    study = study_arguments(args)
    config = study["config"]
    training = config.get("training") or {}
    record = run_tune_worker(
        args.loss,
        args.worker,
        args.train,
        args.eval,
        args.vocab,
        args.folder,
        args.record or Path(args.folder) / "workers" / f"{args.worker}.json",
        tuning=study["tuning"],
        space=study["space"],
        hyperparameters=study["hyperparameters"],
        evaluation=config.get("evaluation"),
        seed=config.get("seed", 42),
        device=args.device or config.get("device", "auto"),
        threads=args.threads,
        early_stopping=training.get("early_stopping"),
        engine=training.get("engine", "auto"),
    )
    print(f"worker {args.worker}: trials {record['trials']}; the study holds {record['finished_trials']} finished")
    return 0


def run_tune_report(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.tuning.report import run_study_report

    study = study_arguments(args)
    folder = Path(args.folder)
    run_study_report(
        args.loss,
        args.workers,
        folder,
        best_path=folder / "best.yaml",
        study_path=folder / "study.json",
        trials_path=folder / "trials.tsv",
        history_path=folder / "optimization_history.png",
        importances_path=folder / "param_importances.png",
        tuning=study["tuning"],
        space=study["space"],
        hyperparameters=study["hyperparameters"],
    )
    print((folder / "best.yaml").read_text(), end="")
    return 0


def run_tune_train(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.training.job import TrainingJob
    from gru4rec_pipeline.training.run import run_training
    from gru4rec_pipeline.tuning.best import BestSetting

    best = BestSetting.load(args.best, args.loss)
    run_training(TrainingJob.from_args(args, hyperparameters=best.hyperparameters))
    return 0


def run_tune_evaluate(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.tuning.tuned import run_tuned_evaluation

    run_tuned_evaluation(
        args.best,
        args.study,
        args.model,
        args.training,
        args.eval,
        args.vocab,
        args.recall,
        args.metrics,
        args.loss,
        settings=settings_of(args),
        device=args.device,
        threads=args.threads,
        config=provenance_config(args),
        ranks_path=ranks_of(args),
        dataset=dataset_of(args),
    )
    print_recall(args.recall)
    return 0
