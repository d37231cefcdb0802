"""The data sets' split stage as a process: no pandas, raw files read chunk by chunk, and what it repeats from
the shared data modules kept equal to them."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from dataset_statements import STATEMENTS
from gru4rec_pipeline.data import events as event_files
from gru4rec_pipeline.data import protocol_steps
from gru4rec_pipeline.data.datasets import raw, splits
from gru4rec_pipeline.data.datasets.registry import dataset
from gru4rec_pipeline.data.datasets.stage import run_dataset_split
from gru4rec_pipeline.data.events import read_events
from gru4rec_pipeline.names import SPLITS
from gru4rec_pipeline.synthetic.datasets import write_synthetic_raw

SETS = tuple(STATEMENTS)
TICKS_PER_SECOND = {"rees46": 1, "coveo": 1000, "retailrocket": 1000, "diginetica": 1000}

SPLIT_IN_A_PROCESS = """
import json, sys
from gru4rec_pipeline.data.datasets.stage import run_dataset_split
from gru4rec_pipeline.names import SPLITS
name, raw_dir, out = sys.argv[1:4]
run_dataset_split(name, raw_dir, {s: f"{out}/{s}.parquet" for s in SPLITS}, f"{out}/stats.json")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "torch", "numba"))))
"""


@pytest.mark.parametrize("name", SETS)
def test_the_split_stage_imports_no_pandas(name, tmp_path):
    write_synthetic_raw(name, tmp_path / "raw", "tiny", seed=3)
    result = subprocess.run(
        [sys.executable, "-c", SPLIT_IN_A_PROCESS, name, str(tmp_path / "raw"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert all((tmp_path / "out" / f"{split}.parquet").exists() for split in SPLITS)


def assert_splits_equal_statement(name, raw_dir, out_dir):
    expected = STATEMENTS[name](raw_dir)
    for split in SPLITS:
        got, want = read_events(out_dir / f"{split}.parquet"), expected[split]
        assert len(got) == len(want) > 0, split
        np.testing.assert_array_equal(got.SessionId.to_numpy(), want.SessionId.to_numpy(np.int64), err_msg=split)
        np.testing.assert_array_equal(got.ItemId.to_numpy(), want.ItemId.to_numpy(np.int64), err_msg=split)
        ticks = np.rint(got.Time.to_numpy() * TICKS_PER_SECOND[name]).astype(np.int64)
        np.testing.assert_array_equal(ticks, want.Time.to_numpy(np.int64), err_msg=split)


def zipped_copy(folder, files, destination):
    destination.mkdir()
    for file in files:
        (destination / f"{file}.gz").write_bytes(gzip.compress((folder / file).read_bytes()))
    return destination


@pytest.mark.parametrize("zipped", [False, True], ids=["plain", "gzipped"])
@pytest.mark.parametrize("name", SETS)
def test_many_chunks_give_the_same_splits(name, zipped, tmp_path, monkeypatch):
    write_synthetic_raw(name, tmp_path / "raw", "tiny", seed=3)
    read_from = zipped_copy(tmp_path / "raw", dataset(name).raw_files, tmp_path / "zipped") if zipped else (
        tmp_path / "raw"
    )  # fmt: skip
    monkeypatch.setattr(raw, "READ_CHUNK_BYTES", 1 << 14)  # chunks end mid-line, some hundreds of them
    out = tmp_path / "out"
    run_dataset_split(name, read_from, {s: out / f"{s}.parquet" for s in SPLITS}, out / "stats.json")
    assert_splits_equal_statement(name, tmp_path / "raw", out)


@pytest.mark.parametrize("zipped", [False, True], ids=["plain", "gzipped"])
def test_a_line_longer_than_a_chunk_is_read_whole(zipped, tmp_path, monkeypatch):
    from gru4rec_pipeline.data.datasets import coveo

    write_synthetic_raw("coveo", tmp_path / "raw", "tiny", seed=3)
    path = tmp_path / "raw" / coveo.RAW_FILE
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:300]))
    if zipped:
        path = zipped_copy(tmp_path / "raw", [coveo.RAW_FILE], tmp_path / "zipped") / coveo.RAW_FILE

    def columns():
        tables = list(raw.iter_tables(path, coveo.LAYOUT, coveo.COLUMNS))
        return {name: [value for table in tables for value in table.column(name).to_pylist()] for name in coveo.COLUMNS}

    whole = columns()
    monkeypatch.setattr(raw, "READ_CHUNK_BYTES", 100)  # lines are about 200 bytes
    assert columns() == whole and len(whole["session_id_hash"]) == 299


def test_a_last_line_without_a_line_end_is_read(tmp_path):
    write_synthetic_raw("retailrocket", tmp_path / "raw", "tiny", seed=3)
    path = tmp_path / "raw" / "events.csv"
    text = path.read_bytes()
    path.write_bytes(text.rstrip(b"\n"))
    stats = run_dataset_split("retailrocket", tmp_path / "raw", {}, tmp_path / "stats.json")
    assert stats["raw_files"]["events.csv"]["rows"] == text.count(b"\n") - 1


def test_the_event_file_format_is_the_shared_one():
    assert splits.EVENT_SCHEMA.equals(event_files.EVENT_SCHEMA)
    assert splits.PARQUET_OPTIONS == event_files.PARQUET_OPTIONS


@pytest.mark.parametrize(
    "step",
    [
        {"step": "input", "events": 1234567, "sessions": 4321},
        {"step": "drop", "events": 10, "sessions": 3, "removed_events": 2000, "removed_sessions": 1},
        {"step": "items", "events": 10, "sessions": 3, "removed_events": 2, "removed_sessions": 0, "removed_items": 7},
    ],
)
def test_steps_are_described_as_for_rsc15(step):
    assert splits.describe_step(step) == protocol_steps.describe_step(step)


def test_each_phase_logs_its_time_and_memory(caplog):
    from gru4rec_pipeline.data.datasets.phases import phase

    with caplog.at_level(logging.INFO, logger="gru4rec_pipeline.data.datasets.phases"):
        with phase("a phase"):
            held = np.ones(1 << 22)  # 32 MiB, touched
        del held
    (record,) = [record for record in caplog.records if hasattr(record, "phase")]
    figures = record.phase
    assert figures["phase"] == "a phase" and figures["cpu_s"] >= 0 and figures["wall_s"] > 0
    assert figures["peak_mib"] >= 32 and "a phase: " in record.getMessage()
