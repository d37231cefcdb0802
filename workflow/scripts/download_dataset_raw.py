"""Download the configured data set's public raw files (resumable, checked to be gzip data, atomic)."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.datasets.stage import download_raw

download_raw(
    snakemake.params.dataset,
    Path(snakemake.output.raw[0]).parent,
    min_rate=snakemake.params.min_rate,
)
