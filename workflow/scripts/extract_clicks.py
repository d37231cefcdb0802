"""Extract yoochoose-clicks.dat from the archive, and nothing else."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

from pathlib import Path

from gru4rec_pipeline.data.extract import extract_members

target = Path(snakemake.output.clicks)
extracted = extract_members(snakemake.input.archive, target.parent, [target.name])
assert Path(extracted[target.name]) == target, extracted
