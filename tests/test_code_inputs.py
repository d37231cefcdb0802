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

# Targets (and config) that together bring every rule into a plan: `rule all` of both settings with repeated runs,
# and what it does not run (an export, a tuned model, the day-by-day evaluation, a retrain, yoochoose-test.dat's
# clicks, the download, the window preset).
PLANS = [
    (
        [
            "all",
            "results/export/test.tsv",
            "results/recall_bpr_max_tuned.txt",
            "results/rolling/bpr_max.tsv",
            "results/retrained/bpr_max/training.json",
            "results/data/test_clicks.parquet",
        ],
        [
            "--config",
            "replicates=2",
            'rolling={"run": ["bpr_max"]}',
            'retrain={"clicks": "results/data/test.parquet"}',
        ],
    ),
    (["all"], ["--config", "setting=tuning", "replicates=2"]),
    (["results/raw/download/yoochoose-data.7z"], ["--config", "source=download"]),
    (["results/window/summary.md"], ["--config", "protocol={preset: window}"]),
    # The other data sets' stages (a download, a generated set with an item map) and the table across data sets.
    (["all"], ["--config", "dataset=rees46", "source=download", "benchmark={datasets: [rees46]}"]),
    (["all"], ["--config", "dataset=coveo"]),
]
# Configs whose rules together are every rule: the default, and a data set other than rsc15 (datasets.smk).
RULE_CONFIGS = [{}, {"dataset": "rees46", "source": "download"}]
# Every rule of the workflow and the stage script it runs, as Snakemake itself reads the rule files: rules of their
# own, `use rule ... with:` variants and rules made in a loop alike.
RULE_SCRIPTS_PROBE = """
import json
import sys
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings()) as api:
    config = ConfigSettings(config=json.loads(sys.argv[1]))
    workflow = api.workflow(resource_settings=ResourceSettings(), config_settings=config, snakefile=Path("Snakefile"))
    print(json.dumps({rule.name: Path(rule.script).stem if rule.script else None for rule in workflow._workflow.rules}))
"""


@pytest.fixture(scope="module")
def rule_scripts() -> dict[str, str]:
    """Rule name -> the name of its stage script (rule all, which runs none, left out)."""
    rules = {}
    for config in RULE_CONFIGS:
        result = subprocess.run(
            [sys.executable, "-c", RULE_SCRIPTS_PROBE, json.dumps(config)],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        rules.update(json.loads(result.stdout.strip().splitlines()[-1]))
    assert rules.pop("all") is None
    return rules


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


def test_every_stage_script_is_wired_to_a_rule(rule_scripts):
    scripts = set(rule_scripts.values())
    on_disk = {path.stem for path in (REPO / "workflow" / "scripts").glob("*.py") if not path.stem.startswith("_")}
    assert on_disk <= scripts, f"scripts no rule runs: {sorted(on_disk - scripts)}"


def test_the_rule_list_holds_the_rules_of_every_kind(rule_scripts):
    """Rules of their own, `use rule` variants (their inputs replaced or inherited) and the evaluations made for
    each setting in a loop: the check below reads them all."""
    assert {"train_model", "train_model_replicate", "train_rolling_scratch", "evaluate_model_window"} <= set(
        rule_scripts
    )
    assert {"evaluate_model_on_valid", "evaluate_model_replicate_on_valid", "evaluate_oracle_on_valid"} <= set(
        rule_scripts
    )


def test_every_rule_declares_the_package_modules_its_script_imports(declared_inputs, rule_scripts):
    imports = {script: imported_package_files(script) for script in set(rule_scripts.values())}
    problems = []
    for rule, script in sorted(rule_scripts.items()):
        assert imports[script], f"{script}.py imports nothing of the package"
        if rule not in declared_inputs:
            problems.append(f"rule {rule} is in no planned file graph")
            continue
        missing = imports[script] - declared_inputs[rule]
        if missing:
            problems.append(f"rule {rule} does not declare {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_editing_the_ranking_code_reruns_every_evaluation_of_both_settings(declared_inputs, rule_scripts):
    """The ranking code computes every recall, MRR and NDCG: each evaluation rule, the tuning setting's (_on_valid)
    included, declares it, so that an edit to it reruns them all."""
    ranking = "src/gru4rec_pipeline/evaluation/ranking.py"
    evaluations = sorted(rule for rule in rule_scripts if rule.startswith("evaluate_"))
    assert {"evaluate_model_on_valid", "evaluate_baseline_on_valid", "evaluate_oracle_on_valid"} <= set(evaluations)
    assert [rule for rule in evaluations if ranking not in declared_inputs.get(rule, set())] == []
