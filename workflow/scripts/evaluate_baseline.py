"""Evaluate a non-neural baseline (popularity, item-kNN, session kNNs) with the model's evaluation code."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.source import DataSource
from gru4rec_pipeline.evaluation.scorer_evaluation import run_baseline_evaluation
from gru4rec_pipeline.evaluation.stage import EvaluationSettings

name = snakemake.wildcards.baseline
run_baseline_evaluation(
    name,
    snakemake.input.train,
    snakemake.input.evaluation,
    snakemake.input.vocab,
    snakemake.output.recall,
    snakemake.output.metrics,
    settings=EvaluationSettings.from_dict(snakemake.params.evaluation),
    options=snakemake.params.options,
    threads=snakemake.threads,
    config=snakemake.config,
    ranks_path=snakemake.output.ranks,
    dataset=DataSource.load(snakemake.input.source).as_record(),
)
