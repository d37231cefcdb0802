"""Continue a trained GRU4Rec on new clicks; resumes from the checkpoint of an interrupted identical retrain."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.training.job import TrainingJob
from gru4rec_pipeline.training.run import run_training

run_training(TrainingJob.from_snakemake(snakemake))
