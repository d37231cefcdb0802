"""Vocabulary from the training split; session arrays for training and evaluation."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.sessions import build_sessions

build_sessions(
    snakemake.input.train,
    snakemake.input.evaluation,
    vocab_path=snakemake.output.vocab,
    train_out=snakemake.output.train,
    eval_out=snakemake.output.evaluation,
    counts_path=snakemake.output.counts,
    min_session_length=snakemake.params.min_session_length,
)
