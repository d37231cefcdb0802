"""Apply the RSC15 protocol: filters, last-day split of train_full/test and of train_tr/valid, statistics."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.protocol import run_split
from gru4rec_pipeline.names import SPLITS

run_split(
    snakemake.input.clicks,
    {name: snakemake.output[name] for name in SPLITS},
    snakemake.output.stats,
    min_test_predictions=snakemake.params.min_test_predictions,
    **snakemake.params.protocol,
)
