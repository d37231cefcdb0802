"""Apply the RSC15 protocol: filters, last-day split of train_full/test and of train_tr/valid, statistics."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

from gru4rec_pipeline.data.events import read_events
from gru4rec_pipeline.data.protocol import split_clicks
from gru4rec_pipeline.names import SPLITS

split_clicks(
    read_events(snakemake.input.clicks),
    {name: snakemake.output[name] for name in SPLITS},
    stats_path=snakemake.output.stats,
    **snakemake.params.protocol,
)
