"""Turn the raw click log (yoochoose .dat, or a log of one's own) into typed Parquet."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

import logging

from gru4rec_pipeline.data.clicks import clicks_to_parquet
from gru4rec_pipeline.data.owndata import own_clicks_to_parquet

log = logging.getLogger("clicks_to_parquet")
if snakemake.params.log_format == "own":
    own = snakemake.params.own_data
    rows = own_clicks_to_parquet(
        snakemake.input.clicks,
        snakemake.output.parquet,
        session_col=own["session_column"],
        item_col=own["item_column"],
        time_col=own["time_column"],
        time_format=own["time_format"],
        sep=own["separator"],
    )
else:
    rows = clicks_to_parquet(snakemake.input.clicks, snakemake.output.parquet)
log.info("wrote %s clicks to %s", f"{rows:,}", snakemake.output.parquet)
