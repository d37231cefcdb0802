"""The window preset's table: means over slices and each slice's figures, in the summary's model order."""

from __future__ import annotations

import json

import pytest

from gru4rec_pipeline.names import BASELINES, LOSSES
from gru4rec_pipeline.report.summary import MODEL_DESCRIPTIONS
from gru4rec_pipeline.report.window_summary import write_window_summary


def test_mean_and_each_slice(tmp_path):
    paths = []
    for slice_id, (bpr, vsknn) in enumerate([(0.6, 0.7), (0.8, 0.5)]):
        for model, value in (("vsknn", vsknn), ("bpr", bpr)):
            path = tmp_path / str(slice_id) / "metrics" / f"{model}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            data = {"description": "yoochoose archive /data/yoochoose-data.7z, sha256 0123456789ab"}
            record = {"model": model, "recall": {"20": value}, "mrr": {"20": value / 2}, "data": data}
            record["ndcg"] = {"20": value / 1.5}
            path.write_text(json.dumps(record))
            paths.append(path)
    table = write_window_summary(paths, tmp_path / "summary.tsv", tmp_path / "summary.md")
    assert list(table["model"]) == ["bpr", "vsknn"]
    bpr = table.iloc[0]
    assert bpr["recall@20"] == pytest.approx(0.7) and bpr["mrr@20"] == pytest.approx(0.35)
    assert bpr["recall@20 slice 0"] == pytest.approx(0.6) and bpr["recall@20 slice 1"] == pytest.approx(0.8)
    assert bpr["ndcg@20"] == pytest.approx(0.7 / 1.5)
    assert bpr["slices"] == 2
    text = (tmp_path / "summary.md").read_text()
    assert "| vsknn | 2 | 0.6000 | 0.3000 | 0.4000 | 0.7000 | 0.3500 | 0.5000 | 0.2500 |" in text
    assert "Dataset: yoochoose archive /data/yoochoose-data.7z, sha256 0123456789ab." in text


def test_every_model_has_a_description_in_the_summary():
    assert set(LOSSES) | set(BASELINES) <= set(MODEL_DESCRIPTIONS)


def test_slices_at_the_largest_cut_off_when_20_is_not_configured(tmp_path):
    paths = []
    for slice_id, value in enumerate([0.4, 0.6]):
        path = tmp_path / str(slice_id) / "metrics" / "bpr.json"
        path.parent.mkdir(parents=True)
        path.write_text(
            json.dumps({"model": "bpr", "recall": {"5": value / 2, "10": value}, "mrr": {"5": 0.1, "10": 0.2}})
        )
        paths.append(path)
    table = write_window_summary(paths, tmp_path / "summary.tsv", tmp_path / "summary.md")
    assert table.iloc[0]["recall@10 slice 0"] == pytest.approx(0.4) and table.iloc[0]["mrr@10 slice 1"] == 0.2
    assert "recall@10 slice 1" in (tmp_path / "summary.md").read_text()
