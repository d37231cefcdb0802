"""Evaluate a trained GRU4Rec on the evaluation sessions: recall@k and MRR@k against all items."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.source import DataSource
from gru4rec_pipeline.evaluation.model_evaluation import run_model_evaluation
from gru4rec_pipeline.evaluation.stage import EvaluationSettings

run_model_evaluation(
    snakemake.wildcards.loss,
    snakemake.input.model,
    snakemake.input.evaluation,
    snakemake.input.vocab,
    snakemake.output.recall,
    snakemake.output.metrics,
    settings=EvaluationSettings.from_dict(snakemake.params.evaluation),
    device=snakemake.params.device,
    threads=snakemake.threads,
    training_summary_path=snakemake.input.training,
    hyperparameters=snakemake.params.hyperparameters,
    seed=snakemake.params.seed,
    config=snakemake.config,
    ranks_path=snakemake.output.ranks,
    dataset=DataSource.load(snakemake.input.source).as_record(),
)
