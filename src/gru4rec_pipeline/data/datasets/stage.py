"""The stages a workflow runs per public data set: get the raw files, and split them as the authors' scripts do.

- :func:`run_dataset_split`: the raw folder (files under their published names) to the four split files
  (``train_full``, ``test``, ``train_tr``, ``valid``: SessionId int64, ItemId int64, Time float64 seconds) and
  ``stats.json`` (every step's removals), plus the item map for a set whose items are strings (Coveo);
- :func:`raw_paths`: the files it reads (for a rule's input);
- :func:`download_raw`: the public files, resumable and verified like the RSC15 archive's download; for a set
  behind a sign-up, an error naming where to get it and the ``raw`` key that takes the local folder;

The split stage imports neither pandas nor torch, and holds the raw files' columns it needs in compact arrays, never
their table (``raw.py``, ``columns.py``); where its time and memory go is logged phase by phase (``phases.py``).

A set's synthetic raw files: ``synthetic/datasets.py``.

RSC15 keeps its own stages (``data/clicks.py``, ``data/yoochoose.py``); the other sets are read here.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from gru4rec_pipeline.data.datasets.protocol import SessionEvents, SplitRule
from gru4rec_pipeline.data.datasets.registry import dataset, raw_file_paths, sign_up_message
from gru4rec_pipeline.data.datasets.splits import write_dataset_splits
from gru4rec_pipeline.errors import ConfigError

log = logging.getLogger(__name__)

# Each set's module (named in full, so that the workflow counts it among the stage's code) and its reader.
READERS = {
    "rees46": ("gru4rec_pipeline.data.datasets.rees46", "rees46_events"),
    "coveo": ("gru4rec_pipeline.data.datasets.coveo", "coveo_events"),
    "retailrocket": ("gru4rec_pipeline.data.datasets.retailrocket", "retailrocket_events"),
    "diginetica": ("gru4rec_pipeline.data.datasets.diginetica", "diginetica_events"),
}
GZIP_SIGNATURE = b"\x1f\x8b"


def _reader_module(name: str):
    if name not in READERS:
        raise ConfigError(
            "dataset",
            f"{name!r} has no raw reader here; expected one of {', '.join(READERS)} (rsc15: the clicks stages)",
        )
    return importlib.import_module(READERS[name][0])


def dataset_events(name: str, raw_dir: str | Path) -> SessionEvents:
    """The set's events as its script leaves them before deduplication (see :class:`SessionEvents`)."""
    module = _reader_module(name)
    return getattr(module, READERS[name][1])(raw_dir)


def raw_paths(name: str, raw_dir: str | Path) -> list[Path]:
    """The raw files ``raw_dir`` must hold for ``name`` (a gzipped one where only that is there)."""
    _reader_module(name)
    return raw_file_paths(name, raw_dir)


def run_dataset_split(
    name: str,
    raw_dir: str | Path,
    split_paths: dict[str, str | Path],
    stats_path: str | Path,
    item_map_path: str | Path | None = None,
    min_test_predictions: int = 1,
    **settings,
) -> dict:
    """The split stage of ``name``: ``raw_dir``'s files to the split files and ``stats.json`` (and the item map,
    for Coveo); returns the statistics. ``settings``: min_session_length (2), min_item_support (5)."""
    spec = dataset(name)
    events = dataset_events(name, raw_dir)
    rule = SplitRule(period_seconds=spec.period_seconds, split_time=spec.split_time)
    return write_dataset_splits(
        name,
        events,
        rule,
        split_paths,
        stats_path,
        item_map_path=item_map_path,
        min_test_predictions=min_test_predictions,
        published={"recall@20 / mrr@20 of the official implementation": spec.published, "loss": spec.loss},
        **settings,
    )


def download_raw(name: str, raw_dir: str | Path, sha256: dict[str, str] | None = None, **options) -> list[Path]:
    """Download ``name``'s public raw files into ``raw_dir`` (each resumable, checked to be gzip data and, when
    given, against its SHA-256); ConfigError naming the sign-up page and the ``raw`` key for the others."""
    from gru4rec_pipeline.data.download import DownloadError, download

    spec = dataset(name)
    if spec.needs_sign_up:
        raise ConfigError("raw", sign_up_message(name))
    folder = Path(raw_dir)
    paths = []
    for file, url in spec.download.urls.items():
        dest = folder / file
        if not dest.exists():
            download(url, dest, sha256=(sha256 or {}).get(file), **options)
            with open(dest, "rb") as stream:
                head = stream.read(len(GZIP_SIGNATURE))
            if head != GZIP_SIGNATURE:
                dest.unlink()
                raise DownloadError(
                    f"{url}: not gzip data (starts with {head!r}); nothing was kept. Download {file} by hand from "
                    f"{spec.download.page} into a folder and set --config raw=/path/to/folder"
                )
        paths.append(dest)
    return paths
