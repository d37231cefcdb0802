"""Results table of every model (TSV, markdown, HTML for the report)."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.report.summary import describe_dataset, write_summary

write_summary(
    snakemake.input.metrics,
    snakemake.output.tsv,
    snakemake.output.md,
    snakemake.output.html,
    dataset=describe_dataset(snakemake.config),
    significance_path=snakemake.input.significance,
)
