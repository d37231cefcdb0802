"""Download yoochoose-data.7z (resumable, checksum-verified, atomic)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

from gru4rec_pipeline.data.download import download

download(snakemake.params.url, snakemake.output.archive, sha256=snakemake.params.sha256 or None)
