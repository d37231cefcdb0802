"""Evaluate a trained GRU4Rec on the evaluation sessions: recall@k and MRR@k against all items."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

import json

import torch

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.evaluation.evaluate import evaluate_model, write_metrics_json, write_recall_txt
from gru4rec_pipeline.model.training import load_model, resolve_device
from gru4rec_pipeline.report.provenance import collect_provenance

torch.set_num_threads(snakemake.threads)
settings = snakemake.params.evaluation
device = resolve_device(snakemake.params.device)
model = load_model(snakemake.input.model, device=device)
evaluation = SessionArrays.load(snakemake.input.evaluation)
metrics = evaluate_model(
    model,
    evaluation,
    cutoffs=settings["cutoffs"],
    tie_mode=settings["tie_mode"],
    batch_size=settings["batch_size"],
    device=device,
)
with open(snakemake.input.training) as handle:
    training = json.load(handle)
name = snakemake.wildcards.loss
write_recall_txt(metrics, snakemake.output.recall, title=f"GRU4Rec, loss {name}")
write_metrics_json(
    metrics,
    snakemake.output.metrics,
    extra={
        "model": name,
        "kind": "gru4rec",
        "hyperparameters": snakemake.params.hyperparameters,
        "seed": snakemake.params.seed,
        "device": str(device),
        "epochs": training.get("epochs"),
        "timings": {
            "train_seconds": training.get("train_seconds"),
            "train_events_per_s": training.get("events_per_s"),
            "eval_seconds": metrics.get("seconds"),
            "eval_events_per_s": metrics.get("events_per_s"),
        },
        "provenance": collect_provenance(snakemake.config),
    },
)
