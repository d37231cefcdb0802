"""Commands of the evaluation stage (evaluate, baseline, oracle) and of recommending with a trained model."""

from __future__ import annotations

import argparse
import re
import sys

from gru4rec_pipeline.cli.common import positive_int, provenance_config
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.names import (
    BASELINES,
    DEFAULT_CUTOFFS,
    DEFAULT_TIE_MODE,
    DEVICES,
    ITEMKNN_DEFAULTS,
    KNN_TIES,
    POSITION_WEIGHTS,
    RANKING_METHODS,
    SESSION_KNN_DEFAULTS,
    SKNN_SIMILARITIES,
    THREAD_DEFAULTS,
    TIE_MODES,
)
from gru4rec_pipeline.names import MODEL_FOLDER_FILES as FOLDER

INTEGER = re.compile(r"[+-]?\d+")


def add_evaluation_arguments(parser: argparse.ArgumentParser, needs_train: bool = False) -> None:
    """What every evaluation command reads and writes (the files of the workflow's evaluate_* rules)."""
    if needs_train:
        parser.add_argument("--train", required=True, help="training sessions (train.npz)")
    parser.add_argument("--eval", required=True, help="evaluation sessions (eval.npz)")
    parser.add_argument("--vocab", required=True, help="their vocabulary (vocab.parquet)")
    parser.add_argument("--recall", required=True, help="recall@k / MRR@k text file to write")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write (with provenance and timings)")
    parser.add_argument(
        "--ranks", help="every evaluated event's rank to write (default: METRICS with .ranks.npz for .json)"
    )
    parser.add_argument("--cutoffs", type=positive_int, nargs="+", default=list(DEFAULT_CUTOFFS), help="cut-offs k")
    parser.add_argument(
        "--tie-mode", default=DEFAULT_TIE_MODE, choices=TIE_MODES, help=f"ranking of ties (default {DEFAULT_TIE_MODE})"
    )
    threads = THREAD_DEFAULTS["evaluation"]
    parser.add_argument("--threads", type=positive_int, default=threads, help=f"CPU threads (default {threads})")
    parser.add_argument("--data-source", help="the data source record (results/data/source.json) the outputs name")


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="recall@k and MRR@k of a trained model on evaluation sessions")
    parser.add_argument("--model", required=True, help="trained model (model.pt)")
    parser.add_argument("--loss", help="name of the model in the outputs (default: its folder's name)")
    parser.add_argument("--training", help=f"its training summary ({FOLDER['summary']}), for the timings")
    add_evaluation_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=512, help="sessions evaluated side by side")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="default auto: CUDA when available")
    parser.add_argument("--method", default="auto", choices=RANKING_METHODS, help="exact ranking method")
    parser.set_defaults(run=run_evaluate)

    parser = subparsers.add_parser(
        "baseline", help="fit and evaluate a non-neural baseline (" + ", ".join(BASELINES) + ")"
    )
    parser.add_argument("name", choices=BASELINES)
    add_evaluation_arguments(parser, needs_train=True)
    parser.add_argument(
        "--neighbors", type=positive_int, default=ITEMKNN_DEFAULTS["neighbors"], help="itemknn: neighbours per item"
    )
    parser.add_argument(
        "--shrink", type=float, default=ITEMKNN_DEFAULTS["lambda"], help="itemknn: lambda added to the supports"
    )
    knn = "sknn, vsknn, stan (defaults: config/config.yaml's baselines)"
    parser.add_argument("--k", type=positive_int, help=f"{knn}: neighbour sessions")
    parser.add_argument("--sample-size", type=positive_int, help=f"{knn}: recent sessions the neighbours come from")
    parser.add_argument("--similarity", choices=SKNN_SIMILARITIES, help="sknn: session similarity")
    parser.add_argument("--weighting", choices=POSITION_WEIGHTS, help="vsknn: weight of a session item by position")
    parser.add_argument("--weighting-score", choices=POSITION_WEIGHTS, help="vsknn: decay of a neighbour's items")
    parser.add_argument(
        "--ties", choices=KNN_TIES, help="vsknn: tie rule, recency (default) or session_rec (session-rec's set order)"
    )
    for name, what in (("spw", "position in the session"), ("snh", "neighbour age, days"), ("inh", "item distance")):
        parser.add_argument(f"--lambda-{name}", type=float, help=f"stan: decay constant of the {what}")
    parser.set_defaults(run=run_baseline)

    parser = subparsers.add_parser("oracle", help="evaluate the synthetic data's Bayes-optimal predictor")
    parser.add_argument("--process", required=True, help="the synthetic process (process.npz)")
    add_evaluation_arguments(parser)
    parser.set_defaults(run=run_oracle)

    parser = subparsers.add_parser(
        "recommend",
        help="top-k next items for sessions with a trained model",
        description="Top-k next items after each session. Items not in the training vocabulary are reported "
        "and skipped for the hidden state.",
    )
    parser.add_argument("--model", required=True, help="trained model (results/models/final/{loss}/model.pt)")
    parser.add_argument(
        "--vocab",
        help="vocabulary the model was trained with (default: the vocab.parquet in the model's folder, which every "
        "training writes)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--session", nargs="+", metavar="ITEM", help="one session: its ItemIds in order")
    source.add_argument(
        "--sessions-file",
        help="one session per line (ItemIds separated by spaces or commas; the line number is the SessionId), "
        "or a .parquet file with SessionId, ItemId, Time",
    )
    parser.add_argument("-k", "--top-k", type=positive_int, default=20, help="number of items to recommend (20)")
    parser.add_argument("--exclude-seen", action="store_true", help="never recommend an item already in the session")
    parser.add_argument("--out", help="write a TSV (SessionId, rank, ItemId, score); required with --sessions-file")
    parser.add_argument(
        "--item-map",
        help="item map written by own-data (<clicks>.item_map.parquet): sessions hold the original item ids "
        "and the output adds them as OriginalItemId",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="sessions scored together")
    parser.set_defaults(run=run_recommend)


def settings_of(args: argparse.Namespace):
    from gru4rec_pipeline.evaluation.stage import EvaluationSettings

    return EvaluationSettings(tuple(args.cutoffs), args.tie_mode, getattr(args, "batch_size", 512))


def dataset_of(args: argparse.Namespace) -> dict | None:
    """The data source record ``--data-source`` names, as the outputs hold it."""
    if not args.data_source:
        return None
    from gru4rec_pipeline.data.source import DataSource

    return DataSource.load(args.data_source).as_record()


def ranks_of(args: argparse.Namespace) -> str:
    """Where an evaluation command writes its per-event ranks (as the rules do: beside the metrics JSON)."""
    if args.ranks:
        return args.ranks
    metrics = str(args.metrics)
    return (metrics[: -len(".json")] if metrics.endswith(".json") else metrics) + ".ranks.npz"


def print_recall(path) -> None:
    with open(path, encoding="utf-8") as handle:
        sys.stdout.write(handle.read())


def run_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gru4rec_pipeline.evaluation.model_evaluation import run_model_evaluation

    run_model_evaluation(
        args.loss or Path(args.model).parent.name,
        args.model,
        args.eval,
        args.vocab,
        args.recall,
        args.metrics,
        settings=settings_of(args),
        device=args.device,
        threads=args.threads,
        training_summary_path=args.training,
        method=args.method,
        config=provenance_config(args),
        ranks_path=ranks_of(args),
        dataset=dataset_of(args),
    )
    print_recall(args.recall)
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.evaluation.scorer_evaluation import run_baseline_evaluation

    options = {"neighbors": args.neighbors, "lambda": args.shrink} if args.name == "itemknn" else {}
    if args.name in SESSION_KNN_DEFAULTS:
        keys = [*SESSION_KNN_DEFAULTS[args.name], *(["ties"] if args.name == "vsknn" else [])]
        given = {key: getattr(args, key) for key in keys}
        options = {key: value for key, value in given.items() if value is not None}
    run_baseline_evaluation(
        args.name,
        args.train,
        args.eval,
        args.vocab,
        args.recall,
        args.metrics,
        settings=settings_of(args),
        options=options,
        threads=args.threads,
        config=provenance_config(args),
        ranks_path=ranks_of(args),
        dataset=dataset_of(args),
    )
    print_recall(args.recall)
    return 0


def run_oracle(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.evaluation.scorer_evaluation import run_oracle_evaluation

    run_oracle_evaluation(
        args.process,
        args.eval,
        args.vocab,
        args.recall,
        args.metrics,
        settings=settings_of(args),
        threads=args.threads,
        config=provenance_config(args),
        ranks_path=ranks_of(args),
        dataset=dataset_of(args),
    )
    print_recall(args.recall)
    return 0


def run_recommend(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.evaluation.recommend import (
        listed_ids,
        parse_item_ids,
        read_sessions_file,
        recommend_from_files,
        sessions_from_ids,
        write_recommendations,
    )

    if args.sessions_file and not args.out:
        raise DataFormatError(args.sessions_file, "batch mode writes its recommendations to --out; give --out")
    integer_ids = args.item_map is None
    if args.session:
        bad = [token for token in args.session if not INTEGER.fullmatch(token)]
        if integer_ids and bad:
            raise DataFormatError("--session", f"ItemIds must be integers, found {listed_ids(bad)}")
        ids = parse_item_ids(args.session, "--session") if integer_ids else list(args.session)
        batch = sessions_from_ids(ids, label="--session")
    else:
        batch = read_sessions_file(args.sessions_file, integer_ids)
    rows = recommend_from_files(
        args.model,
        args.vocab,
        batch,
        args.top_k,
        args.exclude_seen,
        args.batch_size,
        item_map_path=args.item_map,
        device=args.device,
        source=args.sessions_file or "--session",
    )
    if args.out:
        write_recommendations(rows, args.out)
        print(f"{len(rows)} recommendations for {rows['SessionId'].nunique()} sessions written to {args.out}")
    if args.session:
        shown = [column for column in rows.columns if column != "SessionId"]
        sys.stdout.write(rows[shown].to_csv(sep="\t", index=False, float_format="%.4f"))
    return 0
