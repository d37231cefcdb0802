"""The published figures a summary shows beside this run's, for the configured data set: measured on the REAL data.

- rsc15: :data:`PUBLISHED_RSC15` (the published RSC15 protocol); under ``protocol.preset: yoochoose`` also the
  official implementation's on the Yoochoose protocol of the GRU4Rec authors' 2023 comparison;
- another data set: the official implementation's recall@20 and MRR@20 on it, as its registry entry
  (``data/datasets/registry.py``, which the stage script passes) holds them: the paper's (Hidasi & Czapp, RecSys
  2023) and GRU4Rec_PyTorch_Official's README's.
"""

from __future__ import annotations

from dataclasses import dataclass

from gru4rec_pipeline.names import DEFAULT_DATASET

# Figures published for the REAL RSC15 data (train_full / test of the original preprocessing).
# They are a reference for runs on the full dataset only: synthetic or subsampled data give
# different numbers by construction.
PUBLISHED_RSC15 = [
    {
        "id": "official_pytorch_xe",
        "source": "GRU4Rec, official PyTorch implementation (README results table)",
        "setting": "cross-entropy, 100 units, 2048 extra negatives",
        "recall": {1: 0.1845, 5: 0.4906, 10: 0.6218, 20: 0.7283},
        "mrr": {1: 0.1845, 5: 0.2954, 10: 0.3130, 20: 0.3205},
    },
    {
        "id": "hidasi2018_bpr_max",
        "source": "Hidasi & Karatzoglou, CIKM 2018 (original code, examples/rsc15)",
        "setting": "BPR-max, 100 units, 2048 extra negatives",
        "recall": {20: 0.7197},
        "mrr": {20: 0.3157},
    },
    {
        "id": "paddle_ce_full",
        "source": "PaddlePaddle GRU4Rec port",
        "setting": "cross-entropy over all items",
        "recall": {20: 0.67},
        "mrr": {},
    },
    {
        "id": "paddle_bpr_sampled",
        "source": "PaddlePaddle GRU4Rec port",
        "setting": "BPR with sampled negatives",
        "recall": {20: 0.606},
        "mrr": {},
    },
    {
        "id": "paddle_ce_sampled",
        "source": "PaddlePaddle GRU4Rec port",
        "setting": "cross-entropy with sampled negatives",
        "recall": {20: 0.605},
        "mrr": {},
    },
]
PUBLISHED_HEADING = "Published figures on the real RSC15 dataset (reference only)"
PUBLISHED_NOTE = (
    "Reported by the sources below for the full real RSC15 data (train_full / test of the original "
    "preprocessing). They are comparable to the table above only when the pipeline ran on the full real "
    "dataset with the same protocol; runs on synthetic, subsampled or other data give different numbers "
    "by construction."
)

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


def official_id(source: str) -> str:
    """The row id of a figure published in ``source`` (a key of OFFICIAL_SOURCES)."""
    return f"official_{source}"


def official_entries(spec) -> list[dict]:
    """The official implementation's published recall@20 and MRR@20 on a data set (``spec``: its registry entry,
    a ``data.datasets.registry.Dataset``), as summary rows."""
    return [
        {
            "id": official_id(source),
            "source": OFFICIAL_SOURCES[source],
            "setting": f"{spec.loss}, {spec.parameter_file}",
            "recall": {20: figures["recall@20"]},
            "mrr": {20: figures["mrr@20"]},
        }
        for source, figures in spec.published.items()
    ]


def published_figures(spec=None, preset: str = "rsc15") -> PublishedFigures:
    """What the summary of a data set shows as published (``spec``: its registry entry; None, or rsc15's: RSC15's
    figures, under protocol ``preset`` yoochoose with the official implementation's on that protocol)."""
    if spec is None or spec.name == DEFAULT_DATASET:
        entries, note = list(PUBLISHED_RSC15), PUBLISHED_NOTE
        if spec is not None and preset == "yoochoose":
            entries += official_entries(spec)
            note += (
                " The official implementation's rows last are measured with the yoochoose protocol of the GRU4Rec "
                "authors' comparison (protocol.preset: yoochoose) and its best setting for it."
            )
        return PublishedFigures(entries, PUBLISHED_HEADING, note, "published_rsc15")
    note = (
        f"Measured by the GRU4Rec authors with their official implementation and the setting of "
        f"{spec.parameter_file} on the real {spec.title} data, preprocessed by their script, which this pipeline "
        "follows. They compare with the table above only when this run used the real data set and that setting; "
        "synthetic or subsampled data give different numbers by construction."
    )
    return PublishedFigures(
        official_entries(spec), f"Published figures on the real {spec.short_title} data (reference only)", note,
        f"published_{spec.name}",
    )  # fmt: skip
