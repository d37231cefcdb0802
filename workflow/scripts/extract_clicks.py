"""Extract yoochoose-clicks.dat from the archive, and nothing else."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from pathlib import Path

from gru4rec_pipeline.data.extract import extract_members

clicks = Path(snakemake.output.clicks)
extract_members(snakemake.input.archive, clicks.parent, [clicks.name], max_bytes=snakemake.params.max_bytes)
