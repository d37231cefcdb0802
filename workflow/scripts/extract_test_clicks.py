"""Extract yoochoose-test.dat's clicks from the archive (the yoochoose protocol adds them to the clicks)."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.yoochoose import extract_test_clicks

extract_test_clicks(snakemake.input.archive, snakemake.output.clicks)
