"""Training and evaluation events per second of every model."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

from gru4rec_pipeline.report.plots import plot_training_speed

plot_training_speed(snakemake.input.metrics, snakemake.output.png)
