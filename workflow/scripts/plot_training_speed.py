"""Training and evaluation events per second of every model."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.report.plots import plot_training_speed

plot_training_speed(snakemake.input.metrics, snakemake.output.png)
