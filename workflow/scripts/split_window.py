"""Split the clicks into session-rec's sliding-window slices (protocol.preset: window)."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from pathlib import Path

from gru4rec_pipeline.data.window import split_window

protocol = dict(snakemake.params.protocol)
window = protocol.pop("window", {})
protocol.pop("preset", None)
protocol.pop("drop_duplicates", None)
protocol.pop("split_seconds", None)
# the slices' folders sit beside stats.json: results/data/window/{slice}/
split_window(
    snakemake.input.clicks, Path(snakemake.output.stats).parent, snakemake.output.stats, window=window, **protocol
)
