"""Train GRU4Rec on train_full with the best setting a study found (best.yaml)."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.tuning.retrain import run_tuned_training

run_tuned_training(
    snakemake.input.best,
    snakemake.input.train,
    snakemake.input.vocab,
    snakemake.wildcards.loss,
    model_path=snakemake.output.model,
    history_path=snakemake.output.history,
    summary_path=snakemake.output.summary,
    checkpoint_root=snakemake.params.checkpoint_root,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
