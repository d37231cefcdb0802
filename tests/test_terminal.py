"""The terminal says what is happening: a training rule's epochs (with events/s and the time left) and a long
stage's progress about once a minute reach the terminal Snakemake shows, while the rule's log file keeps
everything."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest

from conftest import TINY, run_snakemake
from gru4rec_pipeline import progress
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


@pytest.mark.parametrize(
    "seconds, said", [(0.4, "about 0 s"), (42, "about 42 s"), (150, "about 2 min"), (3 * 3600 + 310, "about 3 h 5 min")]
)
def test_the_time_left_reads_as_a_person_would_say_it(seconds, said):
    assert time_left(seconds) == said


def test_a_training_rule_shows_its_epochs_on_the_terminal(workflow_copy):
    """Through Snakemake on the tiny preset: the training prints an epoch line with the epochs and time left; its
    log keeps the rest."""
    result = run_snakemake(workflow_copy, "--cores", "1", "results/models/final/bpr/model.pt", *TINY)
    log_name = "logs/train_model/final/bpr.log"
    epochs = [line.split(f"{log_name}: ", 1)[1] for line in result.stderr.splitlines() if f" {log_name}: " in line]
    assert len(epochs) == 2, epochs  # tiny.yaml: bpr trains 2 epochs
    assert re.fullmatch(r"epoch 1: loss [\d.]+, \d+ events, \d+ events/s; 1 epoch left, about \d+ s", epochs[0])
    assert re.fullmatch(r"epoch 2: loss [\d.]+, \d+ events, \d+ events/s", epochs[1])
    log = (workflow_copy / log_name).read_text()
    assert "training bpr on cpu" in log and "engine: loop" in log and all(line in log for line in epochs)
