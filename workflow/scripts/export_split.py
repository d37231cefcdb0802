"""Export a split in the official GRU4Rec TSV and the PaddlePaddle port's one-line-per-session text."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.export import export_split

export_split(
    snakemake.input.events,
    tsv_path=snakemake.output.tsv,
    paddle_path=snakemake.output.paddle,
    vocab_path=snakemake.input.vocab,
)
