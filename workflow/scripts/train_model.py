"""Train GRU4Rec with one loss; resumes from the last checkpoint of an interrupted identical run."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.model.training import run_training

run_training(
    snakemake.input.train,
    snakemake.input.vocab,
    snakemake.wildcards.loss,
    snakemake.params.hyperparameters,
    model_path=snakemake.output.model,
    history_path=snakemake.output.history,
    summary_path=snakemake.output.summary,
    checkpoint_root=snakemake.params.checkpoint_root,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    # The job's threads are shared by its processes on this node.
    threads=max(1, snakemake.threads // snakemake.params.processes),
    processes=snakemake.params.processes,
    nodes=snakemake.params.nodes,
    state_path=snakemake.output.state,
)
