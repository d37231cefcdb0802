"""Apply the RSC15 protocol: filters, last-day split of train_full/test and of train_tr/valid, statistics."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/../../src")  # the workflow's own package, also in copies of it

from gru4rec_pipeline.progress import configure_logging

configure_logging(snakemake.log[0])

import json
import logging

import pandas as pd

from gru4rec_pipeline.protocol import build_splits, split_statistics, write_splits

protocol = snakemake.params.protocol
clicks = pd.read_parquet(snakemake.input.clicks, columns=["SessionId", "ItemId", "Time"])
splits = build_splits(
    clicks,
    min_session_length=protocol["min_session_length"],
    min_item_support=protocol["min_item_support"],
    seconds=protocol["split_seconds"],
)
write_splits(splits, {name: snakemake.output[name] for name in splits})
stats = split_statistics(splits, raw=clicks)
with open(snakemake.output.stats, "w") as handle:
    json.dump(stats, handle, indent=2)
logging.getLogger("split_sessions").info("statistics: %s", json.dumps(stats))
