"""Export a split in the official GRU4Rec TSV and the PaddlePaddle port's one-line-per-session text."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

from gru4rec_pipeline.data.events import read_events
from gru4rec_pipeline.data.sessions import read_vocabulary, to_session_arrays, write_gru4rec_tsv, write_paddle_text

events = read_events(snakemake.input.events)
vocab = read_vocabulary(snakemake.input.vocab)
write_gru4rec_tsv(events, snakemake.output.tsv)
arrays, _ = to_session_arrays(events, vocab)
write_paddle_text(arrays, vocab, snakemake.output.paddle)
