"""Every rule declares, as inputs, each package module its script really imports (so editing one reruns it)."""

from __future__ import annotations

import ast
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY, snakemake_command

RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
# Targets (and config) that together bring every rule into a plan: `rule all`, and what it does not run.
PLANS = [
    (["all", "results/export/test.tsv", "results/recall_bpr_max_tuned.txt"], []),
    (["results/raw/download/yoochoose-data.7z"], ["--config", "source=download"]),
    (
        ["results/rolling/bpr_max.tsv", "results/retrained/bpr_max/training.json"],
        ["--config", 'rolling={"run": ["bpr_max"]}', 'retrain={"clicks": "results/data/test.parquet"}'],
    ),
    (["results/data/test_clicks.parquet"], []),
    (["results/window/summary.md"], ["--config", "protocol={preset: window}"]),
]


def rule_scripts() -> dict[str, str]:
    """Rule name -> the name of its stage script, read from the rule files."""
    scripts = {}
    for path in RULE_FILES:
        for block in re.split(r"(?m)^(?=rule )", path.read_text()):
            name = re.match(r"rule (\w+):", block)
            script = re.search(r'script:\s*"\.\./scripts/(\w+)\.py"', block)
            if name and script:
                scripts[name.group(1)] = script.group(1)
    return scripts


@pytest.fixture(scope="module")
def declared_inputs() -> dict[str, set[str]]:
    """Rule -> the input files Snakemake itself reports for it (its file graph of every job)."""
    inputs: dict[str, set[str]] = {}
    for targets, config in PLANS:
        result = subprocess.run(
            snakemake_command(*targets, "--filegraph", "--forceall", "--cores", "1", *config, *TINY),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        for label in re.findall(r"label=<(.*?)>\]", result.stdout, re.S):
            rule = re.search(r'<font point-size="18">(\w+)</font>', label)
            if rule:
                files = re.findall(r'<font face="monospace">([^<]+)</font>', label)
                inputs.setdefault(rule.group(1), set()).update(html.unescape(f) for f in files)
    return inputs


def imported_package_files(script: str) -> set[str]:
    """Package files loaded when the script's import statements run (in a fresh interpreter)."""
    tree = ast.parse((REPO / "workflow" / "scripts" / f"{script}.py").read_text())
    imports = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    probe = "\n".join(
        [
            *imports,
            "import json, sys",
            "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()"
            " if n.split('.')[0] == 'gru4rec_pipeline' and getattr(m, '__file__', None))))",
        ]
    )
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}:{REPO / 'workflow' / 'scripts'}")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return {str(Path(path).resolve().relative_to(REPO)) for path in json.loads(result.stdout)}


def test_every_stage_script_is_wired_to_a_rule():
    scripts = set(rule_scripts().values())
    on_disk = {path.stem for path in (REPO / "workflow" / "scripts").glob("*.py") if not path.stem.startswith("_")}
    assert on_disk <= scripts, f"scripts no rule runs: {sorted(on_disk - scripts)}"


@pytest.mark.parametrize("rule, script", sorted(rule_scripts().items()))
def test_rule_declares_the_package_modules_its_script_imports(declared_inputs, rule, script):
    assert rule in declared_inputs, f"rule {rule} is not in the file graph"
    imported = imported_package_files(script)
    assert imported, f"{script}.py imports nothing of the package"
    missing = imported - declared_inputs[rule]
    assert not missing, f"rule {rule} does not declare {sorted(missing)}"
