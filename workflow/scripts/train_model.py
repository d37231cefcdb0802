"""Train GRU4Rec with one loss; resumes from the last checkpoint of an interrupted identical run."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pandas as pd

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.model.training import TrainConfig, train_model

log = logging.getLogger("train_model")
settings = dict(snakemake.params.hyperparameters)
settings.update(
    loss=snakemake.wildcards.loss,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
config = TrainConfig.from_dict(settings)
train = SessionArrays.load(snakemake.input.train)
vocab = pd.read_parquet(snakemake.input.vocab)
item_support = vocab.sort_values("ItemIdx")["Support"].to_numpy()

# Checkpoints are kept per (settings, training data, code): a run resumes only from a checkpoint of the
# very same training, never from one made with other hyperparameters, data or model code.
fingerprint = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
for path in [snakemake.input.train, *snakemake.input.code]:
    fingerprint.update(Path(path).read_bytes())
checkpoint_dir = Path(snakemake.params.checkpoint_root) / fingerprint.hexdigest()[:16]
log.info("checkpoints in %s", checkpoint_dir)

summary = train_model(
    train,
    item_support,
    config,
    model_path=snakemake.output.model,
    history_path=snakemake.output.history,
    checkpoint_dir=checkpoint_dir,
)
with open(snakemake.output.summary, "w") as handle:
    json.dump(summary, handle, indent=2)
log.info("training summary: %s", json.dumps(summary))
# The model is written: checkpoints only serve an interrupted run, and a forced rerun must train anew.
shutil.rmtree(snakemake.params.checkpoint_root, ignore_errors=True)
