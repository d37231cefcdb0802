"""Vocabulary from the training split; session arrays for training and evaluation."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

import json
import logging

import pandas as pd

from gru4rec_pipeline.sessions import build_vocabulary, to_session_arrays

log = logging.getLogger("build_sessions")
train = pd.read_parquet(snakemake.input.train)
evaluation = pd.read_parquet(snakemake.input.evaluation)
vocab = build_vocabulary(train)
min_length = snakemake.params.min_session_length
train_arrays, train_dropped = to_session_arrays(train, vocab, min_session_length=min_length)
eval_arrays, eval_dropped = to_session_arrays(evaluation, vocab, min_session_length=min_length)
counts = {
    "items": len(vocab),
    "train": {"sessions": train_arrays.n_sessions, "events": train_arrays.n_events, "dropped": train_dropped},
    "evaluation": {"sessions": eval_arrays.n_sessions, "events": eval_arrays.n_events, "dropped": eval_dropped},
}
log.info("session arrays: %s", json.dumps(counts))
vocab.to_parquet(snakemake.output.vocab, index=False)
train_arrays.save(snakemake.output.train)
eval_arrays.save(snakemake.output.evaluation)
with open(snakemake.output.counts, "w") as handle:
    json.dump(counts, handle, indent=2)
