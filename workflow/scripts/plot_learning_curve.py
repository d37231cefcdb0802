"""Recall@k, MRR@k and NDCG@k after every epoch of every training: the learning curve."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.report.learning_curve import plot_learning_curve

plot_learning_curve(snakemake.input.histories, snakemake.output.png, split=snakemake.params.split)
