"""Train GRU4Rec on train_full with the best setting a study found (best.yaml)."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.evaluation.epoch_evaluation import EpochEvaluation
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.tuning.tuned import run_tuned_training

# The learning curve on test: for reading; the epoch count came from the study (best.yaml).
epoch_evaluation = None
if snakemake.params.eval_every_epoch:
    epoch_evaluation = EpochEvaluation(
        SessionArrays.load(snakemake.input.evaluation),
        EvaluationSettings.from_dict(snakemake.params.evaluation),
        split="test",
    )

run_tuned_training(
    snakemake.input.best,
    snakemake.input.train,
    snakemake.input.vocab,
    snakemake.wildcards.loss,
    model_path=snakemake.output.model,
    history_path=snakemake.output.history,
    summary_path=snakemake.output.summary,
    state_path=snakemake.output.state,
    checkpoint_root=snakemake.params.checkpoint_root,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
    epoch_evaluation=epoch_evaluation,
)
