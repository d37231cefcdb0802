"""Recall@k and MRR@k by cut-off for every model."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

from gru4rec_pipeline.report.plots import plot_metrics_by_cutoff

plot_metrics_by_cutoff(snakemake.input.metrics, snakemake.output.png)
