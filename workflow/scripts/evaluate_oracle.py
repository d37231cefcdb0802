"""Evaluate the synthetic data's Bayes-optimal oracle: the ceiling for every model."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.source import DataSource
from gru4rec_pipeline.evaluation.scorer_evaluation import run_oracle_evaluation
from gru4rec_pipeline.evaluation.stage import EvaluationSettings

run_oracle_evaluation(
    snakemake.input.process,
    snakemake.input.evaluation,
    snakemake.input.vocab,
    snakemake.output.recall,
    snakemake.output.metrics,
    settings=EvaluationSettings.from_dict(snakemake.params.evaluation),
    threads=snakemake.threads,
    config=snakemake.config,
    ranks_path=snakemake.output.ranks,
    dataset=DataSource.load(snakemake.input.source).as_record(),
)
