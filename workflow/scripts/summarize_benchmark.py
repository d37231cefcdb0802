"""The table across data sets: every model's recall@20 and MRR@20 on each listed data set, beside the official
implementation's published figures."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.datasets.registry import dataset
from gru4rec_pipeline.data.source import DataSource
from gru4rec_pipeline.report.benchmark import write_benchmark_table

write_benchmark_table(
    {
        name: (
            snakemake.input[f"{name}_summary"],
            DataSource.load(snakemake.input[f"{name}_source"]).as_record(),
            dataset(name),
        )
        for name in snakemake.params.datasets
    },
    snakemake.output.tsv,
    snakemake.output.md,
    snakemake.output.html,
)
