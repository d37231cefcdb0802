"""Results table of every model (TSV, markdown, HTML for the report)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

from gru4rec_pipeline.report.summary import describe_dataset, write_summary

write_summary(
    snakemake.input.metrics,
    snakemake.output.tsv,
    snakemake.output.md,
    snakemake.output.html,
    dataset=describe_dataset(snakemake.config),
)
