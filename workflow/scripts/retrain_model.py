"""Continue a trained GRU4Rec on new clicks; resumes from the checkpoint of an interrupted identical retrain."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from pathlib import Path

from gru4rec_pipeline.training.retraining import run_retrain

run_retrain(
    snakemake.input.model,
    snakemake.input.vocab,
    snakemake.input.clicks,
    Path(snakemake.output.model).parent,
    epochs=snakemake.params.epochs,
    protocol=snakemake.params.protocol,
    support_decay=snakemake.params.support_decay,
    device=snakemake.params.device,
    threads=snakemake.threads,
    progress=False,
)
