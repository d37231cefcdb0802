"""Generate the configured data set's raw files in its published format (synthetic.preset's size, seeded)."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.synthetic.datasets import write_synthetic_raw

write_synthetic_raw(
    snakemake.params.dataset,
    Path(snakemake.output.raw[0]).parent,
    preset=snakemake.params.preset,
    seed=snakemake.params.seed,
)
