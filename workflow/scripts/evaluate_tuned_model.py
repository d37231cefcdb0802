"""Evaluate the tuned GRU4Rec on test; its metrics record names the study and the best trial."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.source import DataSource
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.tuning.tuned import run_tuned_evaluation

run_tuned_evaluation(
    snakemake.input.best,
    snakemake.input.study,
    snakemake.input.model,
    snakemake.input.training,
    snakemake.input.evaluation,
    snakemake.input.vocab,
    snakemake.output.recall,
    snakemake.output.metrics,
    snakemake.wildcards.loss,
    settings=EvaluationSettings.from_dict(snakemake.params.evaluation),
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
    config=snakemake.config,
    ranks_path=snakemake.output.ranks,
    dataset=DataSource.load(snakemake.input.source).as_record(),
)
