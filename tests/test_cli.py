"""The command line: every stage a command, parsers kept apart from the library, --help without heavy imports."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from gru4rec_pipeline.cli import build_parser

HEAVY = ("torch", "numpy", "pandas", "pyarrow", "numba", "matplotlib")
COMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def modules_loaded_by(argv: list[str]) -> list[str]:
    probe = (
        "import sys\n"
        "from gru4rec_pipeline.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(__import__('json').dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], *[[command, "--help"] for command in COMMANDS]], ids=" ".join)
def test_help_answers_without_heavy_imports(argv):
    assert modules_loaded_by(argv) == []


def test_every_stage_has_a_command():
    stages = {"synthesize", "download", "extract", "clicks", "own-data", "split", "sessions", "export", "train"}
    stages |= {"evaluate", "baseline", "oracle", "recommend", "summary", "plots"}
    stages |= {"tune-worker", "tune-report", "tune-train", "tune-evaluate"}
    assert stages <= set(COMMANDS)


def test_argument_parsing_lives_in_the_cli_package_only():
    """Library modules take plain arguments; only gru4rec_pipeline.cli knows about argparse."""
    for path in (REPO / "src" / "gru4rec_pipeline").rglob("*.py"):
        if "cli" in path.relative_to(REPO / "src" / "gru4rec_pipeline").parts:
            continue
        imported = {
            alias.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        } | {node.module for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)}
        assert "argparse" not in imported, f"{path.relative_to(REPO)} imports argparse"


def test_version_prints_the_package_version_and_the_citation_agrees():
    from gru4rec_pipeline import __version__

    result = subprocess.run(
        [sys.executable, "-m", "gru4rec_pipeline", "--version"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"gru4rec-pipeline {__version__}"
    # CITATION.cff names the same version: the one definition is the package's.
    assert f'version: "{__version__}"' in (REPO / "CITATION.cff").read_text()


def test_the_workflow_carries_a_licence_the_package_states():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert (REPO / ".snakemake-workflow-catalog.yml").exists()
