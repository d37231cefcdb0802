"""Train GRU4Rec with one loss; resumes from the last checkpoint of an interrupted identical run. With
training.eval_every_epoch the model is evaluated on the setting's evaluation split after every epoch (the
learning curve in history.csv), and in the tuning setting training.early_stopping may stop it early."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.evaluation.epoch_evaluation import EpochEvaluation
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.training.loop import run_training

epoch_evaluation = None
if snakemake.params.eval_every_epoch:
    epoch_evaluation = EpochEvaluation(
        SessionArrays.load(snakemake.input.evaluation),
        EvaluationSettings.from_dict(snakemake.params.evaluation),
        split=snakemake.params.eval_split,
        early_stopping=snakemake.params.early_stopping,
    )

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
    exchange=snakemake.params.exchange,
    state_path=snakemake.output.state,
    epoch_evaluation=epoch_evaluation,
)
