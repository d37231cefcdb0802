"""Split the configured data set's raw files as its authors' script does: train_full/test, train_tr/valid and the
statistics of every step (and, for a set whose items are strings, their map)."""

import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.datasets.stage import run_dataset_split
from gru4rec_pipeline.names import SPLITS

run_dataset_split(
    snakemake.params.dataset,
    Path(snakemake.input.raw[0]).parent,
    {name: snakemake.output[name] for name in SPLITS},
    snakemake.output.stats,
    item_map_path=snakemake.output.get("item_map"),
    min_test_predictions=snakemake.params.min_test_predictions,
    **snakemake.params.protocol,
)
