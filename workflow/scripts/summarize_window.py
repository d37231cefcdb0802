"""The window preset's table: each model's recall@k / MRR@k averaged over the slices, and each slice's."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.report.window_summary import write_window_summary

write_window_summary(snakemake.input.metrics, snakemake.output.tsv, snakemake.output.md)
