"""The Snakemake report: every figure and the summary table, with captions, from a tiny run."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO, run_snakemake
from gru4rec_pipeline import names

REPORT_RULES = REPO / "workflow" / "rules" / "report.smk"
REPORTED = [
    "results/summary.html",
    "results/summary.tsv",
    "results/plots/metrics_by_cutoff.png",
    "results/plots/training_speed.png",
    "results/plots/training_loss.png",
    "results/plots/dataset_statistics.png",
    "results/plots/learning_curve.png",
    "results/significance.tsv",
]


def report_results(html: str) -> dict:
    """The results the report embeds (its ``var results = {...};`` script)."""
    match = re.search(r'<script id="results">\s*var results = (.*?);\s*</script>', html, re.S)
    assert match, "no results in the report"
    return json.loads(match.group(1))


def decode(data_uri: str) -> bytes:
    return base64.b64decode(data_uri.split("base64,", 1)[1])


def test_every_caption_the_report_rules_name_exists():
    captions = re.findall(r'caption="([^"]+)"', REPORT_RULES.read_text())
    assert len(captions) == len(REPORTED)
    for caption in captions:
        path = (REPORT_RULES.parent / caption).resolve()
        assert path.is_file(), caption
        assert len(path.read_text().split()) > 20, f"{caption} says too little"


@pytest.mark.slow
def test_report_holds_every_figure_and_the_summary(tiny_run: Path, tmp_path: Path):
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    run_snakemake(workdir, "--cores", "1", "--configfile", "config/tiny.yaml", "--report", "report.html")
    results = report_results((workdir / "report.html").read_text())

    assert sorted(results) == sorted(REPORTED)
    for path, entry in results.items():
        assert entry["caption"].strip(), f"{path} has no caption"
        if path.endswith(".png"):
            assert decode(entry["data_uri"])[:8] == b"\x89PNG\r\n\x1a\n", path

    summary = decode(results["results/summary.html"]["data_uri"]).decode()
    for name in [*names.LOSSES, *names.BASELINES, names.ORACLE]:
        assert f'<td class="text">{name}</td>' in summary, name
    assert "Published figures on the real RSC15 dataset" in summary
    assert "synthetic yoochoose-format data (preset tiny" in summary
