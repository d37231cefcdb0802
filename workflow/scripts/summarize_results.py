"""Results table of every model (TSV, markdown, HTML for the report, the headline for the report's first page)."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.datasets.registry import dataset as registry_entry
from gru4rec_pipeline.data.source import DataSource
from gru4rec_pipeline.report.published import published_figures
from gru4rec_pipeline.report.summary import describe_dataset, write_summary

source = DataSource.load(snakemake.input.source).as_record()
write_summary(
    snakemake.input.metrics,
    snakemake.output.tsv,
    snakemake.output.md,
    snakemake.output.html,
    dataset=describe_dataset(source, snakemake.config["setting"]),
    significance_path=snakemake.input.significance,
    data_source=source,
    headline_path=snakemake.output.headline,
    headline_figure=snakemake.input.figure,
    published=published_figures(registry_entry(snakemake.config["dataset"]), snakemake.config["protocol"]["preset"]),
)
