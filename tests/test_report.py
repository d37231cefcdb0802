"""The Snakemake report: it opens on the results (the headline table and figure), and holds every figure and the
summary table, with captions, from a tiny run."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import jinja2
import pytest

from conftest import REPO, run_snakemake
from gru4rec_pipeline import names
from gru4rec_pipeline.report.summary import HEADLINE_ELEMENT

REPORT_RULES = REPO / "workflow" / "rules" / "report.smk"
LANDING_PAGE = REPO / "workflow" / "report" / "workflow.rst"
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


def report_variable(html: str, name: str, script: str | None = None):
    """A value the report embeds as ``<script id=script> var name = ...; </script>`` (JSON)."""
    script = script or name
    match = re.search(rf'<script id="{script}">\s*var {name} = (.*?);\s*</script>', html, re.S)
    assert match, f"no {name} in the report"
    return json.loads(match.group(1))


def report_results(html: str) -> dict:
    """The results the report embeds (its ``var results = {...};`` script)."""
    return report_variable(html, "results")


def table_headers(html: str) -> list[list[str]]:
    """The header cells of every table of an HTML text, in order."""
    return [re.findall(r"<th[^>]*>([^<]*)</th>", table) for table in re.findall(r"<table>(.*?)</table>", html, re.S)]


def landing_page(reported: list[str]) -> str:
    """The landing page's text as Snakemake renders its template for a report of these files."""
    files = [type("Result", (), {"path": Path(path)})() for path in reported]
    return jinja2.Environment().from_string(LANDING_PAGE.read_text()).render(files=files, snakemake=None)


def test_the_report_opens_on_the_page_that_shows_the_headline():
    """The Snakefile names the landing page; it embeds the fragment summarize_results writes beside the reported
    summary (the tuning setting's and a named run's too) and styles the element that fragment holds."""
    assert re.search(r'^report: "workflow/report/workflow.rst"$', (REPO / "Snakefile").read_text(), re.M)
    rules = REPORT_RULES.read_text()
    assert 'headline=report_file("summary_headline.html")' in rules and 'report_file("summary.html")' in rules
    for folder in ("results", "results/tuning", "results/runs/top1", "results/runs/top1/tuning"):
        page = landing_page([f"{folder}/summary.tsv", f"{folder}/summary.html", f"{folder}/plots/training_loss.png"])
        assert f":file: {folder}/summary_headline.html\n" in page, folder
    assert ":file:" not in landing_page(["results/plots/training_loss.png"])
    assert LANDING_PAGE.read_text().count(f"#{HEADLINE_ELEMENT})") >= 3


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
    models = [*names.LOSSES, *names.BASELINES, names.ORACLE]
    for name in models:
        assert f'<td class="text">{name}</td>' in summary, name
    assert "Published figures on the real RSC15 dataset" in summary
    assert "synthetic yoochoose-format data (preset tiny" in summary
    # tables that fit: narrow ones, each in a box that scrolls sideways
    assert summary.count('<div class="scroll"><table>') == summary.count("<table>") >= 5
    assert max(len(header) for header in table_headers(summary)) <= 9

    # the first page: no metadata page before it, the results menu first, the headline table, then its figure
    html = (workdir / "report.html").read_text()
    assert report_variable(html, "metadata") == {}
    assert sorted(report_variable(html, "categories"))[0] == "Results"
    landing = report_variable(html, "workflow_desc", "workflow-desc")
    first_table = landing.index("<table>")
    assert landing.index(f'<div id="{HEADLINE_ELEMENT}">') < first_table
    assert table_headers(landing)[0] == [
        "Model", "Kind", "Recall@20", "MRR@20", "NDCG@20", "Coverage@20", "Popularity@20"
    ]  # fmt: skip
    rows = re.findall(r'<tr class="[^"]+"><td class="text">([^<]+)</td>', landing)
    assert rows == [*names.LOSSES, *names.BASELINES, names.ORACLE]
    figure = re.search(r'<img src="(data:image/png;base64,[^"]+)"', landing)
    assert first_table < figure.start() < landing.index("Every model was evaluated")
    assert decode(figure.group(1)) == (workdir / "results" / "plots" / "metrics_by_cutoff.png").read_bytes()
    assert "javascript:app.showResultInfo(" in landing  # the links to the full summary and the significance
