"""The record of the data a run used (results/data/source.json): which source the config names, its file, its hash."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from gru4rec_pipeline.data.source import (
    DataSource,
    configured_source,
    missing_source_problem,
    record_data_source,
    source_change_marker,
)
from gru4rec_pipeline.errors import DataFormatError

CONFIG = {
    "source": "synthetic",
    "archive": "",
    "clicks": "",
    "own_data": {"path": ""},
    "url": "https://example.org/yoochoose-data.7z",
    "synthetic": {"preset": "tiny", "seed": 3},
}


def test_the_first_set_key_names_the_source():
    assert configured_source(CONFIG) == {
        "kind": "synthetic",
        "file": "results/raw/synthetic/yoochoose-data.7z",
        "preset": "tiny",
        "seed": 3,
    }
    assert configured_source({**CONFIG, "source": "download"})["file"] == "results/raw/download/yoochoose-data.7z"
    everything = {**CONFIG, "archive": "a.7z", "clicks": "c.dat", "own_data": {"path": "o.csv"}}
    assert configured_source(everything) == {"kind": "own_data", "file": "o.csv", "path": "o.csv"}
    assert configured_source({**everything, "own_data": {"path": ""}})["kind"] == "clicks"
    assert configured_source({**CONFIG, "archive": "a.7z"})["kind"] == "archive"


def test_a_missing_file_is_named_with_its_key(tmp_path):
    assert missing_source_problem(CONFIG) is None
    missing = tmp_path / "nothing.dat"
    assert missing_source_problem({**CONFIG, "clicks": str(missing)}) == (
        f"config key 'clicks': {missing} does not exist; expected an extracted yoochoose-clicks.dat"
    )
    assert missing_source_problem({**CONFIG, "own_data": {"path": str(tmp_path)}}) == (
        f"config key 'own_data.path': {tmp_path} is not a file; expected a click log of one's own (CSV or Parquet)"
    )


def test_the_change_marker_follows_a_given_files_size_and_time(tmp_path):
    clicks = tmp_path / "clicks.dat"
    clicks.write_text("1,2014-04-01T10:00:00.000Z,5,0\n")
    config = {**CONFIG, "clicks": str(clicks)}
    before = source_change_marker(config)
    os.utime(clicks, ns=(1, 1))
    assert source_change_marker(config) != before
    assert source_change_marker(CONFIG) == {"kind": "synthetic", "preset": "tiny", "seed": 3}


def test_the_record_names_the_data_and_its_hash_and_loads_back(tmp_path):
    clicks = tmp_path / "clicks.dat"
    clicks.write_bytes(b"1,2014-04-01T10:00:00.000Z,5,0\n")
    sha256 = hashlib.sha256(clicks.read_bytes()).hexdigest()
    record_path = tmp_path / "data" / "source.json"
    written = record_data_source(configured_source({**CONFIG, "clicks": str(clicks)}), record_path)
    record = json.loads(record_path.read_text())
    assert record["sha256"] == sha256 and record["fingerprint"] == sha256[:12] and record["bytes"] == 31
    assert record["description"] == f"yoochoose clicks file {clicks}, sha256 {sha256[:12]}"
    assert DataSource.load(record_path) == written
    (tmp_path / "bad.json").write_text(json.dumps({**record, "sha256": "short"}))
    with pytest.raises(DataFormatError, match="64 hex digits"):
        DataSource.load(tmp_path / "bad.json")
