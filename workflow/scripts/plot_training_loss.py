"""Mean training loss per epoch, one panel per loss."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.report.plots import plot_training_loss

plot_training_loss(snakemake.input.histories, snakemake.output.png)
