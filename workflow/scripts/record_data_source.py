"""Record which data the clicks come from: the configured source and the SHA-256 of its file."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.source import record_data_source

record_data_source({**snakemake.params.source, "file": snakemake.input.data}, snakemake.output.record)
