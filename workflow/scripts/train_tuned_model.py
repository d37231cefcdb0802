"""Train GRU4Rec on train_full with the best setting a study found (best.yaml); its learning curve is measured on
test, for reading (the epoch count came from the study)."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.training.job import TrainingJob
from gru4rec_pipeline.training.run import run_training
from gru4rec_pipeline.tuning.best import BestSetting

best = BestSetting.load(snakemake.input.best, snakemake.wildcards.loss)
run_training(TrainingJob.from_snakemake(snakemake, hyperparameters=best.hyperparameters))
