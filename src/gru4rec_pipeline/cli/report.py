"""Commands of the report stage: the summary table and the figures."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "summary", help="table of recall/MRR/NDCG for every model, with published RSC15 figures"
    )
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics JSON files (results/metrics/final/*.json)")
    parser.add_argument("--tsv", required=True, help="output TSV (one row per model)")
    parser.add_argument("--md", required=True, help="output markdown")
    parser.add_argument("--html", help="also write the summary as an HTML page")
    parser.add_argument("--dataset", help="name of the dataset the models were evaluated on, shown in the heading")
    parser.set_defaults(run=run_summary)

    parser = subparsers.add_parser("plots", help="figures of training, accuracy, speed and the dataset")
    figures = parser.add_subparsers(dest="figure", required=True)

    loss = figures.add_parser("training-loss", help="mean training loss per epoch, one panel per loss")
    loss.add_argument("--history", nargs="+", required=True, help="results/models/final/{loss}/history.csv files")
    loss.add_argument("--out", required=True, help="PNG to write")
    loss.set_defaults(run=run_plot)

    metrics = figures.add_parser("metrics", help="recall@k and MRR@k by cut-off for every model")
    metrics.add_argument("--metrics", nargs="+", required=True, help="results/metrics/final/*.json files")
    metrics.add_argument("--out", required=True, help="PNG to write")
    metrics.set_defaults(run=run_plot)

    speed = figures.add_parser("speed", help="training and evaluation events per second")
    speed.add_argument("--metrics", nargs="+", required=True, help="results/metrics/final/*.json files")
    speed.add_argument("--out", required=True, help="PNG to write")
    speed.set_defaults(run=run_plot)

    dataset = figures.add_parser("dataset", help="session lengths, item popularity, events per day, split sizes")
    dataset.add_argument("--stats", required=True, help="results/data/stats.json")
    dataset.add_argument("--train", required=True, help="results/data/train_full.parquet")
    dataset.add_argument("--test", required=True, help="results/data/test.parquet")
    dataset.add_argument("--out", required=True, help="PNG to write")
    dataset.set_defaults(run=run_plot)


def run_summary(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.report.summary import write_summary

    write_summary(args.metrics, args.tsv, args.md, args.html, args.dataset)
    print(Path(args.md).read_text())
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from gru4rec_pipeline.report import plots

    if args.figure == "training-loss":
        plots.plot_training_loss(args.history, args.out)
    elif args.figure == "metrics":
        plots.plot_metrics_by_cutoff(args.metrics, args.out)
    elif args.figure == "speed":
        plots.plot_training_speed(args.metrics, args.out)
    else:
        plots.plot_dataset_statistics(args.stats, args.train, args.test, args.out)
    return 0
