"""Download yoochoose-data.7z (resumable, checksum-verified, atomic)."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.download import SEVEN_ZIP_SIGNATURE, download

download(
    snakemake.params.url,
    snakemake.output.archive,
    sha256=snakemake.params.sha256 or None,
    signature=SEVEN_ZIP_SIGNATURE,
    min_rate=snakemake.params.min_rate,
)
