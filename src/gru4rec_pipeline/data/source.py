"""Which data a run used, recorded once: ``results/data/source.json``, named by every result.

The config chooses where the clicks come from (first set wins): ``own_data.path`` (a click log of one's
own), ``clicks`` (an extracted ``yoochoose-clicks.dat``), ``archive`` (a local ``yoochoose-data.7z``), else
``source``: ``download`` (the RSC15 archive fetched from ``url``) or ``synthetic`` (an archive generated from
``synthetic.preset`` and ``synthetic.seed``). :func:`configured_source` says which, and which file the
clicks come from.

A ``dataset`` other than rsc15 (one of the GRU4Rec authors' comparison, ``data/datasets/registry.py``) is a source
of kind ``dataset``: its raw files under their published names in the folder ``raw``, else downloaded (``source:
download``, where the set is public) or generated in its format (``source: synthetic``). Its record hashes those
files together: one file's SHA-256 as ``sha256sum`` prints it, several files' SHA-256 of the lines ``sha256sum``
prints for them (``sha256sum 2019-Oct.csv 2019-Nov.csv | sha256sum``), in the set's published order.

The data stages depend on the record of that file, a :class:`DataSource`: the kind, the configured path (or
the preset, seed or URL) and the SHA-256 of the file's bytes, shown in its short form (the first
``FINGERPRINT_CHARS`` hex digits, what ``sha256sum`` prints first). Every recall file, metrics JSON and
summary names it, so a figure says which data it came from, and the workflow reruns everything downstream
when the record changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from gru4rec_pipeline.data.datasets.registry import DATASETS_BY_NAME, dataset, raw_file_paths
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import read_json, write_json_atomic
from gru4rec_pipeline.names import DEFAULT_DATASET
from gru4rec_pipeline.progress import Progress

log = logging.getLogger(__name__)

# Where the clicks come from, in the order the config's keys take precedence.
SOURCE_KINDS = ("own_data", "clicks", "archive", "download", "synthetic", "dataset")
# The config key that names each kind's file, for the kinds whose file the user gives.
SOURCE_KEYS = {"own_data": "own_data.path", "clicks": "clicks", "archive": "archive"}
# What each of those files is.
SOURCE_FILE_KINDS = {
    "own_data": "a click log of one's own (CSV or Parquet)",
    "clicks": "an extracted yoochoose-clicks.dat",
    "archive": "a local yoochoose-data.7z",
}
# The archives the workflow makes itself, below a run's results folder (results/, or results/runs/NAME/ for a run
# named NAME).
DOWNLOADED_ARCHIVE = "raw/download/yoochoose-data.7z"
SYNTHETIC_ARCHIVE = "raw/synthetic/yoochoose-data.7z"
# Where a data set's raw files lie when the workflow downloads or generates them, below the set's results folder.
DATASET_DOWNLOAD_FOLDER = "raw/download"
DATASET_SYNTHETIC_FOLDER = "raw/synthetic"
FINGERPRINT_CHARS = 12
HASH_BLOCK_BYTES = 8 << 20


def configured_source(config: dict, results: str = "results") -> dict:
    """What the config says the clicks come from: ``kind`` (one of SOURCE_KINDS), ``file`` (the file the clicks
    are read or extracted from; an archive the workflow makes lies below the run's ``results`` folder) and what
    identifies the source (``path``; ``url``; ``preset`` and ``seed``). For a data set other than rsc15 (kind
    ``dataset``): ``file`` is the folder of its raw files, ``files`` the files, ``dataset`` its name, and the files
    the workflow downloads or generates lie below ``results``."""
    name = config.get("dataset") or DEFAULT_DATASET
    if name != DEFAULT_DATASET:
        return dataset_source(config, name, results)
    own_path = (config.get("own_data") or {}).get("path")
    if own_path:
        return {"kind": "own_data", "file": own_path, "path": own_path}
    if config.get("clicks"):
        return {"kind": "clicks", "file": config["clicks"], "path": config["clicks"]}
    if config.get("archive"):
        return {"kind": "archive", "file": config["archive"], "path": config["archive"]}
    if config.get("source") == "download":
        return {"kind": "download", "file": f"{results}/{DOWNLOADED_ARCHIVE}", "url": config.get("url", "")}
    synthetic = config.get("synthetic") or {}
    return {
        "kind": "synthetic",
        "file": f"{results}/{SYNTHETIC_ARCHIVE}",
        "preset": synthetic.get("preset", "default"),
        "seed": synthetic.get("seed", 42),
    }


def dataset_source(config: dict, name: str, results: str = "results") -> dict:
    """The source of data set ``name``: the folder ``raw`` where set, else its download or its synthetic raw files
    below ``results`` (see :func:`configured_source`)."""
    spec = dataset(name)
    source: dict = {"kind": "dataset", "dataset": name}
    if config.get("raw"):
        folder = str(config["raw"])
        source["path"] = folder
        files = [str(path) for path in raw_file_paths(name, folder)]
    elif config.get("source") == "download" and not spec.needs_sign_up:
        folder = f"{results}/{DATASET_DOWNLOAD_FOLDER}"
        source["url"] = ", ".join(spec.download.urls.values())
        files = [f"{folder}/{file}" for file in spec.download.urls]
    else:
        synthetic = config.get("synthetic") or {}
        folder = f"{results}/{DATASET_SYNTHETIC_FOLDER}"
        source.update(preset=synthetic.get("preset", "default"), seed=synthetic.get("seed", 42))
        files = [f"{folder}/{file}" for file in spec.raw_files]
    return {**source, "file": folder, "files": files}


def missing_source_problem(config: dict) -> str | None:
    """A sentence naming the config key and the path when the configured source is a file that does not
    exist (or is not a file), or a raw folder without one of its data set's files; None otherwise."""
    source = configured_source(config)
    if source["kind"] == "dataset":
        return _missing_raw_problem(source)
    key = SOURCE_KEYS.get(source["kind"])
    if key is None or Path(source["file"]).is_file():
        return None
    found = "is not a file" if Path(source["file"]).exists() else "does not exist"
    return f"config key '{key}': {source['file']} {found}; expected {SOURCE_FILE_KINDS[source['kind']]}"


def _missing_raw_problem(source: dict) -> str | None:
    if "path" not in source:
        return None
    spec = dataset(source["dataset"])
    folder = Path(source["path"])
    if not folder.is_dir():
        found = "is not a folder" if folder.exists() else "does not exist"
        return (
            f"config key 'raw': {folder} {found}; expected a folder holding {spec.title}'s "
            f"{', '.join(spec.raw_files)} (dataset: {spec.name})"
        )
    for file in map(Path, source["files"]):
        if not file.is_file():
            return (
                f"config key 'raw': {file} does not exist (nor {file.name}.gz); expected {spec.title}'s {file.name} "
                f"under its published name (dataset: {spec.name})"
            )
    return None


def source_change_marker(config: dict) -> dict:
    """What a rerun compares (the rule's params): the configured source and, for a file the user gives, its
    size and modification time, so that a file replaced in place (even by an older one) is recorded again; for a
    data set's raw folder, each raw file's name, size and modification time."""
    source = configured_source(config)
    marker = {key: value for key, value in source.items() if key not in ("file", "files")}
    if source["kind"] == "dataset" and "path" in source:
        marker["raw_files"] = {Path(file).name: _size_and_time(file) for file in source["files"]}
    elif source["kind"] in SOURCE_KEYS:
        marker.update(zip(("bytes", "mtime_ns"), _size_and_time(source["file"])))
    return marker


def _size_and_time(path: str | Path) -> list[int]:
    status = os.stat(path)
    return [status.st_size, status.st_mtime_ns]


@dataclass(frozen=True)
class DataSource:
    """The record of ``results/data/source.json``: where the clicks came from and the SHA-256 of that file."""

    kind: str
    file: str
    bytes: int
    sha256: str
    path: str | None = None
    url: str | None = None
    preset: str | None = None
    seed: int | None = None
    dataset: str | None = None  # kind dataset: the data set's name, and the names of its raw files
    files: tuple[str, ...] | None = None

    @property
    def fingerprint(self) -> str:
        """The short form of the SHA-256: enough to tell data sets apart at a glance."""
        return self.sha256[:FINGERPRINT_CHARS]

    def describe(self) -> str:
        """One line naming the data: its kind, path (or preset and seed, or URL) and fingerprint."""
        if self.kind == "dataset":
            return f"{self._describe_dataset()}, sha256 {self.fingerprint}"
        what = {
            "own_data": f"own click log {self.path}",
            "clicks": f"yoochoose clicks file {self.path}",
            "archive": f"yoochoose archive {self.path}",
            "download": f"RSC15 archive downloaded from {self.url}",
            "synthetic": f"synthetic yoochoose-format data (preset {self.preset}, seed {self.seed})",
        }[self.kind]
        return f"{what}, sha256 {self.fingerprint}"

    def _describe_dataset(self) -> str:
        spec = dataset(str(self.dataset))
        files = ", ".join(self.files or spec.raw_files)
        if self.preset is not None:
            return f"synthetic {spec.short_title}-format raw files {files} (preset {self.preset}, seed {self.seed})"
        if self.url is not None:
            return f"{spec.title}: {files} downloaded from {self.url}"
        return f"{spec.title}: {files} in {self.path}"

    def as_record(self) -> dict:
        """The JSON record (what the metrics files hold under ``data``), with the fingerprint and the line."""
        record = {key: value for key, value in asdict(self).items() if value is not None}
        if self.files is not None:
            record["files"] = list(self.files)
        record.update(fingerprint=self.fingerprint, description=self.describe())
        return record

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.as_record())

    @classmethod
    def from_record(cls, record, source: str | Path = "<data source>") -> "DataSource":
        """A record as :meth:`as_record` writes it; refuses one that is not."""
        if not isinstance(record, dict) or record.get("kind") not in SOURCE_KINDS:
            raise DataFormatError(source, f"expected a data source record with kind one of {', '.join(SOURCE_KINDS)}")
        sha256 = record.get("sha256")
        if not isinstance(sha256, str) or len(sha256) != 64:
            raise DataFormatError(source, "expected a data source record with the 64 hex digits of sha256")
        if record["kind"] == "dataset" and record.get("dataset") not in DATASETS_BY_NAME:
            raise DataFormatError(
                source, f"expected a data source record naming its dataset, one of {', '.join(DATASETS_BY_NAME)}"
            )
        fields = {
            key: record[key] for key in ("path", "url", "preset", "seed", "dataset") if record.get(key) is not None
        }
        if isinstance(record.get("files"), list):
            fields["files"] = tuple(map(str, record["files"]))
        return cls(record["kind"], str(record.get("file", "")), int(record.get("bytes", 0)), sha256, **fields)

    @classmethod
    def load(cls, path: str | Path) -> "DataSource":
        return cls.from_record(read_json(path, "data source record"), source=path)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of the file's bytes, read in blocks."""
    path = Path(path)
    digest = hashlib.sha256()
    with Progress(f"sha256 {path.name}", total=path.stat().st_size, unit="B", unit_scale=True) as bar:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(HASH_BLOCK_BYTES), b""):
                digest.update(block)
                bar.update(len(block))
    return digest.hexdigest()


def files_sha256(paths: list[str | Path]) -> str:
    """One file's SHA-256; for several, the SHA-256 of the lines ``sha256sum`` prints for them, in their order."""
    if len(paths) == 1:
        return file_sha256(paths[0])
    lines = "".join(f"{file_sha256(path)}  {Path(path).name}\n" for path in paths)
    return hashlib.sha256(lines.encode()).hexdigest()


def record_data_source(source: dict, record_path: str | Path) -> DataSource:
    """Hash the source's file (a data set's raw files) and write its record (``source``: :func:`configured_source`'s
    dict)."""
    if source["kind"] == "dataset":
        return _record_dataset_source(source, record_path)
    file = Path(source["file"])
    if not file.is_file():
        raise DataFormatError(file, "the file the clicks come from does not exist")
    fields = {key: source[key] for key in ("path", "url", "preset", "seed") if key in source}
    data = DataSource(source["kind"], str(file), file.stat().st_size, file_sha256(file), **fields)
    data.save(record_path)
    log.info("data: %s (%s, %s bytes)", data.describe(), file, f"{data.bytes:,}")
    return data


def _record_dataset_source(source: dict, record_path: str | Path) -> DataSource:
    # The files: as configured_source names them, or as a rule's input lists them (in ``file``).
    given = source.get("files") or source["file"]
    files = [Path(file) for file in ([given] if isinstance(given, (str, Path)) else given)]
    for file in files:
        if not file.is_file():
            raise DataFormatError(file, f"a raw file of {source['dataset']} does not exist")
    fields = {key: source[key] for key in ("path", "url", "preset", "seed", "dataset") if key in source}
    total = sum(file.stat().st_size for file in files)
    folder = source.get("path") or str(files[0].parent)
    data = DataSource("dataset", folder, total, files_sha256(files), files=tuple(f.name for f in files), **fields)
    data.save(record_path)
    log.info("data: %s (%s bytes)", data.describe(), f"{total:,}")
    return data
