"""Train GRU4Rec with one loss; resumes from the last checkpoint of an interrupted identical run. With
training.eval_every_epoch the model is evaluated on the setting's evaluation split after every epoch (the
learning curve in history.csv), and in the tuning setting training.early_stopping may stop it early."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.training.job import TrainingJob
from gru4rec_pipeline.training.run import run_training

run_training(TrainingJob.from_snakemake(snakemake))
