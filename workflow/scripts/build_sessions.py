"""Vocabulary from the training split; session arrays for training and evaluation."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

import json

from gru4rec_pipeline.data.events import read_events
from gru4rec_pipeline.data.sessions import build_vocabulary, to_session_arrays, write_vocabulary

min_length = snakemake.params.min_session_length
train = read_events(snakemake.input.train)
vocab = build_vocabulary(train)
train_arrays, train_counts = to_session_arrays(train, vocab, min_length)
eval_arrays, eval_counts = to_session_arrays(read_events(snakemake.input.evaluation), vocab, min_length)
train_arrays.save(snakemake.output.train)
eval_arrays.save(snakemake.output.evaluation)
write_vocabulary(vocab, snakemake.output.vocab)
# What the conversion dropped (unknown items, short sessions) is recorded, never silent.
with open(snakemake.output.counts, "w") as handle:
    json.dump({"items": len(vocab), "train": train_counts, "evaluation": eval_counts}, handle, indent=2)
