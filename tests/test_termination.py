"""SIGTERM leaves no temporary outputs behind, and temporaries of processes that died anyway are removed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.files import write_text_atomic

WRITER = """
import sys, time
from gru4rec_pipeline.files import atomic_output, clean_up_on_sigterm
clean_up_on_sigterm()
with atomic_output(sys.argv[1]) as temporary:
    temporary.write_bytes(b"x" * 1000)
    print("writing", flush=True)
    time.sleep(60)
"""


def test_sigterm_removes_the_output_being_written(tmp_path):
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "train.npz")], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    assert [path.name for path in tmp_path.iterdir()] == [f".train.tmp-{writer.pid}.npz"]
    writer.send_signal(signal.SIGTERM)
    assert writer.wait(timeout=30) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_a_dead_processs_temporary_is_removed_by_the_next_write(tmp_path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    stale = tmp_path / f".summary.tmp-{ended.pid}.json"
    stale.write_bytes(b"x" * 100)
    alive = tmp_path / ".summary.tmp-1.json"  # pid 1 is running: not touched
    alive.write_bytes(b"y")
    other = tmp_path / f".history.tmp-{ended.pid}.csv"  # another output's: left for its own writer
    other.write_bytes(b"z")
    time.sleep(0.01)
    write_text_atomic(tmp_path / "summary.json", "{}\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([alive.name, other.name, "summary.json"])


def recommend_files(tmp_path):
    import numpy as np

    from gru4rec_pipeline.data.vocabulary import Vocabulary
    from gru4rec_pipeline.model.network import GRU4Rec

    vocabulary = Vocabulary(np.arange(10, dtype=np.int64) + 100, np.ones(10, dtype=np.int64))
    vocabulary.save(tmp_path / "vocab.parquet")
    model = GRU4Rec(10, [8], "shared", 0, seed=1)
    model.vocabulary = vocabulary.identity()
    model.save(tmp_path / "model.pt")
    (tmp_path / "sessions.csv").write_text("SessionId,ItemId\n1,100\n1,101\n")
    return ["recommend", "--model", str(tmp_path / "model.pt"), "--vocab", str(tmp_path / "vocab.parquet")]


def test_a_folder_as_sessions_file_or_an_unwritable_out_is_a_one_line_error(tmp_path, capsys):
    argv = recommend_files(tmp_path)
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "a_file").write_text("")
    for extra in (
        ["--sessions-file", str(tmp_path / "folder.csv"), "--out", str(tmp_path / "r.tsv")],
        ["--sessions-file", str(tmp_path / "sessions.csv"), "--out", str(tmp_path / "a_file" / "r.tsv")],
    ):
        code = main([*argv, *extra])
        error = capsys.readouterr().err.splitlines()
        assert code == 2 and error[-1].startswith("error: ") and "Traceback" not in "\n".join(error), error
        assert extra[1] in error[-1] or extra[3] in error[-1], error


def test_an_item_id_too_large_for_64_bits_is_a_one_line_error(tmp_path, capsys):
    argv = recommend_files(tmp_path)
    (tmp_path / "big.txt").write_text("100 99999999999999999999999\n")
    for extra in (
        ["--sessions-file", str(tmp_path / "big.txt"), "--out", str(tmp_path / "r.tsv")],
        ["--session", "100", "99999999999999999999999"],
    ):
        assert main([*argv, *extra]) == 2
        error = capsys.readouterr().err.splitlines()[-1]
        assert "ItemId 99999999999999999999999 does not fit in 64 bits" in error, error
