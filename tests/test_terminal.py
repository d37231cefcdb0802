"""The terminal says what is happening: a training rule's epochs (with events/s and the time left), a long stage's
progress about once a minute and the kernels' compilation reach the terminal Snakemake shows, while the rule's log
file keeps everything."""

from __future__ import annotations

import io
import logging
import re
import sys
import time

import pytest

from conftest import TINY, run_snakemake
from gru4rec_pipeline import compiled, progress
from gru4rec_pipeline.progress import Progress, configure_logging, time_left


@pytest.fixture
def terminal(monkeypatch, tmp_path):
    """``configure_logging`` of a stage script with the log file ``stage.log``: (the terminal's text, the log
    file); the logging setup and stderr are restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stderr", screen)
    log_path = tmp_path / "stage.log"
    configure_logging(str(log_path))
    log_file = sys.stderr
    yield screen, log_path
    root.handlers[:] = handlers
    root.setLevel(level)
    monkeypatch.undo()  # stderr back before its log file is closed
    log_file.close()


def test_a_long_stages_progress_reaches_the_terminal_about_once_a_minute(terminal, monkeypatch):
    screen, log_path = terminal
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    bar = Progress("evaluate", total=1000, unit="event")
    for now, count in ((31.0, 100), (62.0, 100), (93.0, 100)):
        clock[0] = now
        bar.update(count)
    clock[0] = 100.0
    bar.close()
    lines = screen.getvalue().splitlines()
    # The minute's line alone: 200 of 1,000 events in 62 s leaves 800 at 3.2 a second.
    assert len(lines) == 1, lines
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d .*stage\.log: evaluate progress: 200/1,000 \(20%\) event, 62\.0 s, 3 event/s, about 4 min "
        r"left",
        lines[0],
    ), lines[0]
    logged = log_path.read_text()
    assert logged.count("evaluate progress:") == 3 and "evaluate done: 300/1,000 (30%) event, 100.0 s" in logged


def test_the_kernels_compilation_is_announced_when_it_takes_longer_than_loading(terminal):
    screen, log_path = terminal
    with compiled.announce_compilation("the quick kernels", after_s=5.0):
        pass  # loaded from the cache: nothing to say
    with compiled.announce_compilation("the slow kernels", after_s=0.05):
        time.sleep(0.5)
    lines = screen.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(
        f"stage.log: compiling the slow kernels, once per user and machine, about a minute (cached in "
        f"{compiled.cache_dir()})"
    )
    assert re.search(r"stage\.log: compiled the slow kernels in \d+ s$", lines[1]), lines[1]
    assert "quick" not in log_path.read_text() and "compiling the slow kernels" in log_path.read_text()


@pytest.mark.parametrize(
    "seconds, said", [(0.4, "about 0 s"), (42, "about 42 s"), (150, "about 2 min"), (3 * 3600 + 310, "about 3 h 5 min")]
)
def test_the_time_left_reads_as_a_person_would_say_it(seconds, said):
    assert time_left(seconds) == said


@pytest.mark.slow  # a training through the workflow
def test_a_training_rule_shows_the_compilation_and_its_epochs_on_the_terminal(workflow_copy, tmp_path, monkeypatch):
    """Through Snakemake on the tiny preset, with a user cache that holds no kernels yet: the training compiles
    them into it, saying so, then prints an epoch line with the epochs and time left; its log keeps the rest."""
    monkeypatch.delenv(compiled.CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    result = run_snakemake(workflow_copy, "--cores", "1", "results/models/final/bpr/model.pt", *TINY)
    log_name = "logs/train_model/final/bpr.log"
    shown = [line.split(f"{log_name}: ", 1)[1] for line in result.stderr.splitlines() if f" {log_name}: " in line]
    cache = tmp_path / "user-cache" / "gru4rec-pipeline" / "numba"
    assert shown[0] == f"compiling the training kernels, once per user and machine, about a minute (cached in {cache})"
    assert re.fullmatch(r"compiled the training kernels in \d+ s", shown[1]), shown
    epochs = shown[2:]
    assert len(epochs) == 2, shown  # tiny.yaml: bpr trains 2 epochs
    assert re.fullmatch(r"epoch 1: loss [\d.]+, \d+ events, \d+ events/s; 1 epoch left, about \d+ s", epochs[0])
    assert re.fullmatch(r"epoch 2: loss [\d.]+, \d+ events, \d+ events/s", epochs[1])
    log = (workflow_copy / log_name).read_text()
    assert "training bpr on cpu" in log and "engine: loop" in log and all(line in log for line in shown)
    assert list(cache.glob("gru4rec_pipeline/model/kernels.*.nbi"))  # the user's cache, not the checkout's
    assert not list((workflow_copy / "src").rglob("*.nbi"))
