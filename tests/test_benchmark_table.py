"""The published figures beside a data set's summary, and the benchmark table across data sets."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from gru4rec_pipeline.data.datasets.registry import dataset
from gru4rec_pipeline.data.source import DataSource
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.report.benchmark import write_benchmark_table
from gru4rec_pipeline.report.published import PUBLISHED_RSC15, published_figures
from gru4rec_pipeline.report.summary import write_summary
from test_summary import metrics_record, write_metrics


def test_another_data_set_shows_the_official_implementations_figures_on_its_real_data():
    spec = dataset("diginetica")
    figures = published_figures(spec)
    assert [(e["recall"], e["mrr"]) for e in figures.entries] == [
        ({20: spec.published[origin]["recall@20"]}, {20: spec.published[origin]["mrr@20"]})
        for origin in ("paper", "readme")
    ]
    assert figures.entries[0]["recall"] == {20: 0.4995} and figures.entries[0]["mrr"] == {20: 0.1500}
    assert figures.heading == "Published figures on the real Diginetica data (reference only)"
    assert f"on the real {spec.title} data" in figures.note and spec.parameter_file in figures.note
    assert figures.kind == "published_diginetica"


def test_rsc15_shows_its_published_figures_and_under_the_yoochoose_protocol_the_official_ones_too():
    assert published_figures().entries == published_figures(dataset("rsc15")).entries == PUBLISHED_RSC15
    yoochoose = published_figures(dataset("rsc15"), "yoochoose").entries
    assert yoochoose[: len(PUBLISHED_RSC15)] == PUBLISHED_RSC15
    assert [e["recall"][20] for e in yoochoose[len(PUBLISHED_RSC15) :]] == [0.6804, 0.6789]


def test_a_data_sets_summary_marks_its_published_figures_as_measured_on_the_real_data(tmp_path):
    paths = write_metrics(
        tmp_path, [metrics_record("bpr_max", "gru4rec", 0.5, 0.2), metrics_record("pop", "baseline", 0.1, 0.05)]
    )
    source = {"kind": "dataset", "dataset": "retailrocket", "preset": "tiny", "seed": 1, "fingerprint": "abc"}
    write_summary(paths, tmp_path / "s.tsv", tmp_path / "s.md", data_source=source,
                  published=published_figures(dataset("retailrocket")))  # fmt: skip
    text = (tmp_path / "s.md").read_text()
    assert "## Published figures on the real RetailRocket data (reference only)" in text
    assert "GRU4Rec, official implementation (Hidasi & Czapp, RecSys 2023): bpr_max, paramfiles/" in text
    assert "0.5187" in text and "0.2131" in text
    assert "synthetic raw files in the data set's format: compare them with each other" in text
    assert "Published figures on the real RSC15" not in text
    tsv = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    published = tsv[tsv["kind"] == "published_retailrocket"]
    assert list(published["recall@20"]) == [0.5187, 0.5186]


# ---------------------------------------------------------------- the table across data sets


def results_of(folder, name, models, preset=None):
    """A data set's summary.tsv (models: name -> (kind, recall@20, mrr@20)), data source record and registry
    entry, as the table takes them."""
    folder.mkdir(parents=True)
    rows = [{"model": m, "kind": k, "description": "", "recall@20": r, "mrr@20": q} for m, (k, r, q) in models.items()]
    rows.append({"model": "official_paper", "kind": f"published_{name}", "recall@20": 0.9, "mrr@20": 0.9})
    pd.DataFrame(rows).to_csv(folder / "summary.tsv", sep="\t", index=False)
    sha256 = hashlib.sha256(name.encode()).hexdigest()
    fields = {"preset": preset, "seed": 1} if preset else {"path": "/data"}
    source = DataSource("dataset", "/data", 10, sha256, dataset=name, files=dataset(name).raw_files, **fields)
    return str(folder / "summary.tsv"), source.as_record(), dataset(name)


def test_the_table_has_a_column_per_data_set_and_the_published_figures_below_the_models(tmp_path):
    datasets = {
        "retailrocket": results_of(tmp_path / "rr", "retailrocket", {
            "bpr_max": ("gru4rec", 0.40, 0.15), "pop": ("baseline", 0.10, 0.03), "sknn": ("baseline", 0.45, 0.14),
        }, preset="tiny"),
        "diginetica": results_of(tmp_path / "dg", "diginetica", {
            "bpr_max": ("gru4rec", 0.30, 0.11), "pop": ("baseline", 0.05, 0.01),
        }),
    }  # fmt: skip
    rows = write_benchmark_table(datasets, tmp_path / "t.tsv", tmp_path / "t.md", tmp_path / "t.html")
    assert list(rows["dataset"].unique()) == ["retailrocket", "diginetica"]
    published = rows[rows["kind"] == "published"].set_index(["dataset", "model"])
    assert published.loc[("diginetica", "official_paper"), "recall@20"] == 0.4995
    assert published.loc[("retailrocket", "official_readme"), "mrr@20"] == 0.2175
    # The rows each summary marks as published are left out: the registry's figures stand in for them.
    assert 0.9 not in set(rows["recall@20"])
    text = (tmp_path / "t.md").read_text()
    assert "| Model | Kind | retailrocket (synthetic) | diginetica |" in text
    recall = text.split("## Recall@20")[1].split("## MRR@20")[0]
    assert "| bpr_max | gru4rec | 0.4000 | **0.3000** |" in recall
    assert "| sknn | baseline | **0.4500** | – |" in recall
    assert (
        "| published: GRU4Rec, official implementation (Hidasi & Czapp, RecSys 2023) | published | 0.5187 | 0.4995 |"
        in (recall)
    )
    mrr = text.split("## MRR@20")[1]
    assert "| bpr_max | gru4rec | **0.1500** | **0.1100** |" in mrr
    assert "retailrocket: synthetic RetailRocket-format raw files events.csv (preset tiny, seed 1)" in text
    assert "<table>" in (tmp_path / "t.html").read_text()
    assert len(pd.read_csv(tmp_path / "t.tsv", sep="\t")) == len(rows) == 5 + 4


def test_a_data_set_not_run_yet_is_named_with_the_command_that_runs_it(tmp_path):
    with pytest.raises(
        DataFormatError, match=r"run data set coveo first \(snakemake --cores N --config dataset=coveo\)"
    ):
        write_benchmark_table({"coveo": (tmp_path / "none.tsv", {}, dataset("coveo"))}, tmp_path / "t.tsv",
                              tmp_path / "t.md")  # fmt: skip
    assert not (tmp_path / "t.tsv").exists()


def test_a_summary_without_cutoff_20_is_refused(tmp_path):
    given = results_of(tmp_path / "c", "coveo", {"pop": ("baseline", 0.1, 0.1)})
    pd.read_csv(given[0], sep="\t").drop(columns=["recall@20"]).to_csv(given[0], sep="\t", index=False)
    with pytest.raises(DataFormatError, match=r"missing columns \['recall@20'\]"):
        write_benchmark_table({"coveo": given}, tmp_path / "t.tsv", tmp_path / "t.md")


def test_the_split_table_of_another_data_set_has_no_rsc15_columns():
    from gru4rec_pipeline.report.plots import split_table_rows

    columns, rows, names = split_table_rows({"splits": {"train_full": {"events": 1500, "sessions": 400, "items": 90}}})
    assert columns == ["events", "sessions", "items", "events/session"] and rows == [["1.5k", "400", "90", "3.75"]]
