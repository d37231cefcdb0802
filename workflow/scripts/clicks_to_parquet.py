"""Turn the raw click log (yoochoose .dat, or a log of one's own) into typed Parquet."""

import sys

sys.path.insert(0, snakemake.scriptdir)
from _prologue import start

start(snakemake)

from gru4rec_pipeline.data.clicks import clicks_to_parquet
from gru4rec_pipeline.data.owndata import own_clicks_to_parquet

own = snakemake.params.own_data
if snakemake.params.log_format == "own":
    own_clicks_to_parquet(
        snakemake.input.clicks,
        snakemake.output.parquet,
        session_col=own["session_column"],
        item_col=own["item_column"],
        time_col=own["time_column"],
        time_format=own["time_format"],
        sep=own["separator"],
        ids=own["ids"],
    )
else:
    clicks_to_parquet(snakemake.input.clicks, snakemake.output.parquet)
