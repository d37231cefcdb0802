"""Test one strategy's model for one day on the day's sessions (a cell of the rolling table)."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.evaluation.rolling import evaluate_day
from gru4rec_pipeline.evaluation.stage import EvaluationSettings

evaluate_day(
    snakemake.input.model,
    snakemake.input.vocab,
    snakemake.input.day,
    snakemake.output.record,
    strategy=snakemake.wildcards.strategy,
    day=int(snakemake.wildcards.day),
    training_summary_path=snakemake.input.get("training"),
    settings=EvaluationSettings.from_dict(snakemake.params.evaluation),
    min_session_length=snakemake.params.min_session_length,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
