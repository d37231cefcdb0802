"""Generate the synthetic yoochoose-data.7z and the process parameters its oracle needs."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.synthetic.archive import write_synthetic_archive

write_synthetic_archive(
    snakemake.output.archive,
    snakemake.output.process,
    preset=snakemake.params.preset,
    seed=snakemake.params.seed,
)
