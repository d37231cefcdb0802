"""The last days of the clicks for the day-by-day evaluation: what came before each day, and each day."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.rolling import split_days

split_days(
    snakemake.input.clicks,
    list(snakemake.output.before),
    list(snakemake.output.days),
    snakemake.output.record,
    protocol=snakemake.params.protocol,
    min_test_predictions=snakemake.params.min_test_predictions,
)
