"""The published figures a summary shows beside this run's, for the configured data set: measured on the REAL data.

- rsc15: the RSC15 figures of :data:`~gru4rec_pipeline.report.summary.PUBLISHED_RSC15` (the published RSC15
  protocol); under ``protocol.preset: yoochoose`` also the official implementation's on the Yoochoose protocol of
  the GRU4Rec authors' 2023 comparison;
- another data set: the official implementation's recall@20 and MRR@20 on it, from the registry
  (``data/datasets/registry.py``): the paper's (Hidasi & Czapp, RecSys 2023) and GRU4Rec_PyTorch_Official's README.
"""

from __future__ import annotations

from dataclasses import dataclass

from gru4rec_pipeline.data.datasets.registry import dataset
from gru4rec_pipeline.names import DEFAULT_DATASET

# Where the registry's two figures of each set were published.
OFFICIAL_SOURCES = {
    "paper": "GRU4Rec, official implementation (Hidasi & Czapp, RecSys 2023)",
    "readme": "GRU4Rec, official implementation (GRU4Rec_PyTorch_Official README)",
}


@dataclass(frozen=True)
class PublishedFigures:
    """Rows (``id``, ``source``, ``setting``, and ``recall`` / ``mrr`` by cut-off), the heading and the note of the
    summary's published section, and the ``kind`` its rows have in summary.tsv."""

    entries: list[dict]
    heading: str
    note: str
    kind: str


def official_entries(name: str) -> list[dict]:
    """The official implementation's published recall@20 and MRR@20 on data set ``name``, as summary rows."""
    spec = dataset(name)
    return [
        {
            "id": f"official_{source}",
            "source": OFFICIAL_SOURCES[source],
            "setting": f"{spec.loss}, {spec.parameter_file}",
            "recall": {20: figures["recall@20"]},
            "mrr": {20: figures["mrr@20"]},
        }
        for source, figures in spec.published.items()
    ]


def published_figures(name: str = DEFAULT_DATASET, preset: str = "rsc15") -> PublishedFigures:
    """What the summary of data set ``name`` (under protocol ``preset``, rsc15's) shows as published."""
    from gru4rec_pipeline.report.summary import PUBLISHED_HEADING, PUBLISHED_NOTE, PUBLISHED_RSC15

    if name == DEFAULT_DATASET:
        entries, note = list(PUBLISHED_RSC15), PUBLISHED_NOTE
        if preset == "yoochoose":
            entries += official_entries(name)
            note += (
                " The official implementation's rows last are measured with the yoochoose protocol of the GRU4Rec "
                "authors' comparison (protocol.preset: yoochoose) and its best setting for it."
            )
        return PublishedFigures(entries, PUBLISHED_HEADING, note, "published_rsc15")
    spec = dataset(name)
    note = (
        f"Measured by the GRU4Rec authors with their official implementation and the setting of "
        f"{spec.parameter_file} on the real {spec.title} data, preprocessed by their script, which this pipeline "
        "follows. They compare with the table above only when this run used the real data set and that setting; "
        "synthetic or subsampled data give different numbers by construction."
    )
    return PublishedFigures(
        official_entries(name), f"Published figures on the real {spec.short_title} data (reference only)", note,
        f"published_{name}",
    )  # fmt: skip
