"""Session lengths, item popularity, events per day and split sizes beside the published RSC15 figures."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

from gru4rec_pipeline.report.plots import plot_dataset_statistics

plot_dataset_statistics(snakemake.input.stats, snakemake.input.train, snakemake.input.test, snakemake.output.png)
