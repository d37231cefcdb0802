"""Paired significance of the differences between every two models: results/significance.tsv."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.evaluation.significance import compare_models

compare_models(
    dict(zip(snakemake.params.models, snakemake.input.ranks)),
    snakemake.output.table,
    cutoff=snakemake.params.cutoff,
    metrics_paths=snakemake.params.runs,
    resamples=snakemake.params.resamples,
    seed=snakemake.params.seed,
    model_metrics=dict(zip(snakemake.params.models, snakemake.input.metrics)),
)
