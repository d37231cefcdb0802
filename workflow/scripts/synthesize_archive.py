"""Generate the synthetic yoochoose-data.7z and the process parameters its oracle needs."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

import logging

from gru4rec_pipeline.synthetic.archive import write_synthetic_archive

summary = write_synthetic_archive(
    snakemake.output.archive,
    snakemake.output.process,
    preset=snakemake.params.preset,
    seed=snakemake.params.seed,
)
logging.getLogger("synthesize_archive").info("wrote %s: %s", snakemake.output.archive, summary)
