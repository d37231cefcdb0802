"""Apply the configured protocol (protocol.preset): filters, last-day split of train_full/test and of
train_tr/valid, statistics."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.presets import run_preset_split
from gru4rec_pipeline.names import SPLITS

run_preset_split(
    snakemake.input.clicks,
    {name: snakemake.output[name] for name in SPLITS},
    snakemake.output.stats,
    min_test_predictions=snakemake.params.min_test_predictions,
    test_clicks_path=snakemake.input.get("test_clicks") or None,
    **snakemake.params.protocol,
)
