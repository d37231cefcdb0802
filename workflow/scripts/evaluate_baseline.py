"""Evaluate a non-neural baseline (most popular, session popularity, item-kNN) with the model's evaluation code."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

import time

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.evaluation.baselines import build_baseline
from gru4rec_pipeline.evaluation.evaluate import evaluate_scorer, write_metrics_json, write_recall_txt
from gru4rec_pipeline.report.provenance import collect_provenance

settings = snakemake.params.evaluation
name = snakemake.wildcards.baseline
train = SessionArrays.load(snakemake.input.train)
evaluation = SessionArrays.load(snakemake.input.evaluation)
started = time.perf_counter()
options = snakemake.params.itemknn if name == "itemknn" else {}
scorer, n_items = build_baseline(name, train, snakemake.input.vocab, **options)
fit_seconds = time.perf_counter() - started
metrics = evaluate_scorer(scorer, evaluation, n_items, cutoffs=settings["cutoffs"], tie_mode=settings["tie_mode"])
write_recall_txt(metrics, snakemake.output.recall, title=f"baseline {name}")
write_metrics_json(
    metrics,
    snakemake.output.metrics,
    extra={
        "model": name,
        "kind": "baseline",
        "hyperparameters": options,
        "device": "cpu",
        "timings": {
            "train_seconds": fit_seconds,
            "eval_seconds": metrics.get("seconds"),
            "eval_events_per_s": metrics.get("events_per_s"),
        },
        "provenance": collect_provenance(snakemake.config),
    },
)
