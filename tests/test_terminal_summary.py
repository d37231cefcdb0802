"""The results table a finished run prints: the headline metrics per model, from the main or the window summary."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.report.summary import write_summary
from gru4rec_pipeline.report.terminal import headline_text, print_summary
from gru4rec_pipeline.report.window_summary import write_window_summary
from test_summary import metrics_record, write_metrics


def test_one_line_per_model_at_the_headline_cut_off_with_repeated_runs(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    paths = write_metrics(tmp_path, [metrics_record("pop", "baseline", 0.10, 0.03)])
    paths += write_metrics(tmp_path, [metrics_record("bpr_max", "gru4rec", 0.55, 0.20)])
    paths += write_metrics(runs, [metrics_record("bpr_max", "gru4rec", 0.65, 0.30)])
    write_summary(paths, tmp_path / "summary.tsv", tmp_path / "summary.md")
    assert "published_rsc15" in (tmp_path / "summary.tsv").read_text()

    stream = io.StringIO()
    print_summary(tmp_path / "summary.tsv", tmp_path / "summary.md", stream=stream)
    lines = stream.getvalue().splitlines()
    assert lines[1] == f"Results ({tmp_path / 'summary.tsv'}; more in " + (f"{tmp_path / 'summary.md'}):")
    table = [line.split() for line in lines[3:] if line]
    assert table == [
        ["Model", "Kind", "Runs", "Recall@20", "MRR@20", "NDCG@20"],
        ["bpr_max", "gru4rec", "2", "0.6000", "±", "0.0707", "0.2500", "±", "0.0707", "0.4250", "±", "0.0707"],
        ["pop", "baseline", "1", "0.1000", "±", "0.0000", "0.0300", "±", "0.0000", "0.0650", "±", "0.0000"],
    ]
    # The figures are the summary's own, and the columns line up.
    summary = pd.read_csv(tmp_path / "summary.tsv", sep="\t").set_index("model")
    assert f"{summary.loc['bpr_max', 'mrr@20']:.4f}" == "0.2500"
    # Numbers are aligned right: every line of the table ends in the same column.
    assert len({len(line) for line in lines[3:] if line}) == 1, lines


def test_the_window_summary_shows_the_mean_over_slices(tmp_path):
    paths = []
    for slice_id, value in enumerate([0.6, 0.8]):
        path = tmp_path / str(slice_id) / "metrics" / "bpr.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"model": "bpr", "recall": {"5": value / 2, "20": value}, "mrr": {"20": value / 4}}))
        paths.append(path)
    write_window_summary(paths, tmp_path / "summary.tsv", tmp_path / "summary.md")
    lines = headline_text(tmp_path / "summary.tsv").splitlines()
    assert [line.split() for line in lines] == [
        ["Model", "Slices", "Recall@20", "MRR@20"],
        ["bpr", "2", "0.7000", "0.1750"],
    ]


def test_a_missing_or_foreign_table_is_named(tmp_path):
    with pytest.raises(DataFormatError, match="summary.tsv.*not found"):
        headline_text(tmp_path / "summary.tsv")
    (tmp_path / "other.tsv").write_text("model\tscore\nbpr\t0.5\n")
    with pytest.raises(DataFormatError, match="other.tsv.*recall@k"):
        headline_text(tmp_path / "other.tsv")
