"""A finished study: the best setting (best.yaml, study.json), every trial (trials.tsv) and two figures."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.tuning.report import run_study_report

run_study_report(
    snakemake.wildcards.loss,
    snakemake.input.workers,
    snakemake.params.folder,
    best_path=snakemake.output.best,
    study_path=snakemake.output.study,
    trials_path=snakemake.output.trials,
    history_path=snakemake.output.history,
    importances_path=snakemake.output.importances,
    tuning=snakemake.params.tuning,
    space=snakemake.params.space,
    hyperparameters=snakemake.params.hyperparameters,
)
