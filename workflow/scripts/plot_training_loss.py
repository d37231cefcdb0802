"""Mean training loss per epoch, one panel per loss."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

from gru4rec_pipeline.report.plots import plot_training_loss

plot_training_loss(snakemake.input.histories, snakemake.output.png)
