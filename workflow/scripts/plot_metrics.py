"""Recall@k, MRR@k and NDCG@k by cut-off for every model."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.report.plots import plot_metrics_by_cutoff

plot_metrics_by_cutoff(snakemake.input.metrics, snakemake.output.png)
