"""The day-by-day evaluation of one loss: table, figure and summary lines."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.report.rolling import write_rolling_report

write_rolling_report(
    list(snakemake.input.records),
    snakemake.output.tsv,
    snakemake.output.png,
    snakemake.output.md,
    loss=snakemake.wildcards.loss,
)
