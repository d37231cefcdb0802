"""Session lengths, item popularity, events per day and split sizes beside the published RSC15 figures."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.report.plots import plot_dataset_statistics

plot_dataset_statistics(snakemake.input.stats, snakemake.input.train, snakemake.input.test, snakemake.output.png)
