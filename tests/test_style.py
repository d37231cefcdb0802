"""The Python code passes the linter and the formatter, and no module grows past what a reader takes in at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PYTHON_TREES = ["src", "tests", "bench", "workflow/scripts"]
# A module past this many lines is asking to be split along a seam (the house style).
MAX_MODULE_LINES = 400


def ruff(*args: str) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).with_name("ruff")
    return subprocess.run([str(executable), *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_ruff_finds_nothing():
    result = ruff("check", *PYTHON_TREES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_python_is_formatted():
    result = ruff("format", "--check", *PYTHON_TREES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("module", sorted((REPO / "src").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_module_stays_short(module: Path):
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module.relative_to(REPO)} has {lines} lines"
