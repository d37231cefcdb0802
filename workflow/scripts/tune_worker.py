"""One worker of a loss's hyperparameter study: trials on train_tr -> valid until the study holds enough."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.tuning.worker import run_tune_worker

run_tune_worker(
    snakemake.wildcards.loss,
    int(snakemake.wildcards.worker),
    snakemake.input.train,
    snakemake.input.evaluation,
    snakemake.input.vocab,
    snakemake.params.folder,
    snakemake.output.record,
    tuning=snakemake.params.tuning,
    space=snakemake.params.space,
    hyperparameters=snakemake.params.hyperparameters,
    evaluation=snakemake.params.evaluation,
    early_stopping=snakemake.params.early_stopping,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
    engine=snakemake.params.engine,
)
