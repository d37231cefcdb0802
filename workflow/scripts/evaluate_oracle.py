"""Evaluate the synthetic data's Bayes-optimal oracle: the ceiling for every model."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

import pandas as pd

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.evaluation.baselines import OracleScorer
from gru4rec_pipeline.evaluation.evaluate import evaluate_scorer, write_metrics_json, write_recall_txt
from gru4rec_pipeline.report.provenance import collect_provenance
from gru4rec_pipeline.synthetic.oracle import Oracle

settings = snakemake.params.evaluation
vocab = pd.read_parquet(snakemake.input.vocab)
evaluation = SessionArrays.load(snakemake.input.evaluation)
scorer = OracleScorer(Oracle.load(snakemake.input.process), vocab)
metrics = evaluate_scorer(scorer, evaluation, len(vocab), cutoffs=settings["cutoffs"], tie_mode=settings["tie_mode"])
write_recall_txt(metrics, snakemake.output.recall, title="oracle (Bayes-optimal on the synthetic process)")
write_metrics_json(
    metrics,
    snakemake.output.metrics,
    extra={
        "model": "oracle",
        "kind": "oracle",
        "device": "cpu",
        "timings": {"eval_seconds": metrics.get("seconds"), "eval_events_per_s": metrics.get("events_per_s")},
        "provenance": collect_provenance(snakemake.config),
    },
)
