"""Atomic outputs: a file appears whole under its final name, or not at all."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.files import (
    atomic_output,
    atomic_outputs,
    temporary_sibling,
    write_json_atomic,
    write_text_atomic,
)


def names(folder):
    return sorted(path.name for path in folder.iterdir())


def test_temporary_sibling_is_hidden_pid_tagged_and_keeps_the_suffix(tmp_path):
    temporary = temporary_sibling(tmp_path / "train.npz")
    assert temporary.parent == tmp_path
    assert temporary.name.startswith(".")
    assert str(os.getpid()) in temporary.name
    assert temporary.suffix == ".npz"
    assert temporary != tmp_path / "train.npz"


def test_atomic_output_renames_into_place_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_output(target) as temporary:
        temporary.write_text("whole\n")
        assert not target.exists(), "the output must not appear before the write finished"
    assert target.read_text() == "whole\n"
    assert names(tmp_path) == ["out.txt"]


def test_atomic_output_failure_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError, match="halfway"):
        with atomic_output(target) as temporary:
            temporary.write_text("part")
            raise RuntimeError("halfway")
    assert names(tmp_path) == []


def test_atomic_output_failure_keeps_the_previous_output(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("previous run\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as temporary:
            temporary.write_text("part")
            raise KeyboardInterrupt
    assert target.read_text() == "previous run\n"
    assert names(tmp_path) == ["out.txt"]


def test_write_text_and_json(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "text\n")
    write_json_atomic(tmp_path / "b.json", {"path": tmp_path, "value": 1.5})
    assert (tmp_path / "a.txt").read_text() == "text\n"
    raw = (tmp_path / "b.json").read_text()
    assert raw.endswith("}\n")
    assert json.loads(raw) == {"path": str(tmp_path), "value": 1.5}
    assert names(tmp_path) == ["a.txt", "b.json"]


def test_atomic_outputs_publish_together(tmp_path):
    with atomic_outputs() as staged:
        staged.temporary(tmp_path / "a.parquet").write_text("a")
        staged.temporary(tmp_path / "b.json").write_text("b")
        assert names(tmp_path) == sorted(temporary_sibling(tmp_path / n).name for n in ("a.parquet", "b.json"))
    assert (tmp_path / "a.parquet").read_text() == "a"
    assert (tmp_path / "b.json").read_text() == "b"
    assert names(tmp_path) == ["a.parquet", "b.json"]


def test_atomic_outputs_failure_publishes_none(tmp_path):
    with pytest.raises(OSError, match="disk full"):
        with atomic_outputs() as staged:
            staged.temporary(tmp_path / "a.parquet").write_text("a")
            staged.temporary(tmp_path / "b.json")  # named, failed before anything was written
            raise OSError("disk full")
    assert names(tmp_path) == []


def test_session_arrays_save_without_npz_suffix(tmp_path):
    # numpy appends ".npz" to a file name without it; the arrays must still land at the given path.
    arrays = SessionArrays(
        offsets=np.array([0, 2, 3]),
        items=np.array([1, 2, 0]),
        times=np.array([1.0, 2.0, 3.0]),
        session_ids=np.array([7, 8]),
    )
    arrays.save(tmp_path / "train.arrays")
    assert names(tmp_path) == ["train.arrays"]
    np.testing.assert_array_equal(SessionArrays.load(tmp_path / "train.arrays").items, arrays.items)
