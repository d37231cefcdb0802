"""The results table: rows, published figures, formatting, errors, command line."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from gru4rec_pipeline.cli import main
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.report.summary import (
    HEADLINE_ELEMENT,
    describe_dataset,
    load_metrics,
    summary_table,
    write_summary,
)

CUTOFFS = [1, 5, 10, 20]


def metrics_record(name: str, kind: str, recall20: float, mrr20: float, events: int = 1000, **extra) -> dict:
    scale = [0.3, 0.6, 0.8, 1.0]
    record = {
        "model": name,
        "kind": kind,
        "recall": {str(k): recall20 * s for k, s in zip(CUTOFFS, scale)},
        "mrr": {str(k): mrr20 * s for k, s in zip(CUTOFFS, scale)},
        "ndcg": {str(k): (recall20 + mrr20) / 2 * s for k, s in zip(CUTOFFS, scale)},
        "cutoffs": CUTOFFS,
        "events": events,
        "tie_mode": "standard",
        "device": "cpu",
        "provenance": {
            "git_commit": "abc123",
            "git_dirty": False,
            "config_sha256": "f" * 64,
            "versions": {"python": "3.11", "torch": "2.13.0"},
            "hostname": "h",
            "created_utc": "t",
        },
    }
    if kind == "gru4rec":
        record["epochs"] = 3
        record["timings"] = {
            "train_seconds": 95.0,
            "train_events_per_s": 12345.6,
            "eval_seconds": 2.0,
            "eval_events_per_s": 50000.0,
        }
    record.update(extra)
    return record


def write_metrics(directory: Path, records: list[dict]) -> list[Path]:
    paths = []
    for record in records:
        path = directory / f"{record['model']}.json"
        path.write_text(json.dumps(record))
        paths.append(path)
    return paths


@pytest.fixture
def metrics_files(tmp_path) -> list[Path]:
    records = [
        metrics_record("oracle", "oracle", 0.95, 0.60),
        metrics_record("pop", "baseline", 0.10, 0.03),
        metrics_record("bpr_max", "gru4rec", 0.55, 0.20),
        metrics_record("ce_full", "gru4rec", 0.60, 0.25),
        metrics_record("itemknn", "baseline", 0.45, 0.18),
    ]
    return write_metrics(tmp_path, records)


def test_rows_follow_losses_then_baselines_then_oracle(metrics_files):
    table = summary_table(load_metrics(metrics_files))
    assert list(table["model"]) == ["ce_full", "bpr_max", "pop", "itemknn", "oracle"]
    expected = [f"{metric}@{k}" for metric in ("recall", "mrr", "ndcg") for k in CUTOFFS]
    assert expected == [c for c in table.columns if "@" in c]
    assert table.loc[table["model"] == "ce_full", "ndcg@20"].item() == pytest.approx(0.425)
    assert table.loc[table["model"] == "ce_full", "recall@20"].item() == pytest.approx(0.60)
    # Baselines do not train: their training columns are empty, not zero.
    assert table.loc[table["model"] == "pop", ["epochs", "train_seconds"]].isna().all(axis=None)


def test_tsv_holds_models_and_labelled_published_figures(tmp_path, metrics_files):
    write_summary(metrics_files, tmp_path / "summary.tsv", tmp_path / "summary.md")
    tsv = pd.read_csv(tmp_path / "summary.tsv", sep="\t")
    models = tsv[tsv["kind"] != "published_rsc15"]
    published = tsv[tsv["kind"] == "published_rsc15"]
    assert len(models) == 5
    assert models.loc[models["model"] == "ce_full", "train_events_per_s"].item() == pytest.approx(12345.6)
    official = published[published["model"] == "official_pytorch_xe"]
    assert official["recall@20"].item() == pytest.approx(0.7283)
    assert official["mrr@20"].item() == pytest.approx(0.3205)
    assert set(published.loc[published["model"].str.startswith("paddle"), "recall@20"]) == {0.67, 0.606, 0.605}


def test_markdown_marks_best_values_without_the_oracle_and_warns_about_published_figures(tmp_path, metrics_files):
    write_summary(metrics_files, tmp_path / "s.tsv", tmp_path / "s.md", dataset="synthetic test data")
    text = (tmp_path / "s.md").read_text()
    ce_full_row = next(line for line in text.splitlines() if line.startswith("| ce_full"))
    oracle_row = next(line for line in text.splitlines() if line.startswith("| oracle"))
    assert "**0.6000**" in ce_full_row  # best recall@20 among models and baselines
    assert "**" not in oracle_row  # higher, but an upper bound
    cost_row = next(line for line in text.splitlines() if line.startswith("| ce_full") and " min " in line)
    assert "1.6 min" in cost_row and "12,346" in cost_row and "50,000" in cost_row
    assert "Published figures on the real RSC15 dataset" in text
    assert "synthetic data" in text and "not with the published RSC15 figures" in text
    assert "Dataset: synthetic test data." in text
    assert "Commit: abc123" in text


def test_html_page_renders_the_same_table(tmp_path, metrics_files):
    write_summary(metrics_files, tmp_path / "s.tsv", tmp_path / "s.md", tmp_path / "s.html")
    html = (tmp_path / "s.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<strong>0.6000</strong>" in html
    assert '<tr class="oracle">' in html and "0.7283" in html


def markdown_tables(text: str) -> list[list[str]]:
    """The header cells of every table of a markdown text, in order."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line, rule in zip(text.splitlines(), text.splitlines()[1:])
        if rule.startswith("|---")
    ]


def test_summary_opens_with_the_headline_metrics_and_splits_the_cutoffs_by_metric(tmp_path, metrics_files):
    """The first table: recall, MRR and NDCG at 20, one row per model; then one table per metric at every cut-off.
    No table of models is wider than the model, its kind and four cut-offs."""
    write_summary(metrics_files, tmp_path / "s.tsv", tmp_path / "s.md", tmp_path / "s.html")
    text = (tmp_path / "s.md").read_text()
    headers = markdown_tables(text)
    assert headers[0] == ["Model", "Kind", "Recall@20", "MRR@20", "NDCG@20"]
    assert headers[1:4] == [
        ["Model", "Kind", *[f"{label}@{k}" for k in CUTOFFS]] for label in ("Recall", "MRR", "NDCG")
    ]
    assert all(len(header) <= 2 + len(CUTOFFS) for header in headers[:4])
    ce_full = next(line for line in text.splitlines() if line.startswith("| ce_full"))
    assert ce_full == "| ce_full | gru4rec | **0.6000** | **0.2500** | **0.4250** |"
    assert "NDCG@k: the mean of 1 / log2(rank + 1)" in text
    tsv = pd.read_csv(tmp_path / "s.tsv", sep="\t").set_index("model")
    assert tsv.loc["ce_full", [f"ndcg@{k}" for k in CUTOFFS]].tolist() == pytest.approx([0.1275, 0.255, 0.34, 0.425])
    html = (tmp_path / "s.html").read_text()
    assert html.count('<div class="scroll"><table>') == html.count("<table>") == len(headers)


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32  # what the fragment embeds is the file's bytes, whatever they draw


def test_the_headline_fragment_is_the_summary_s_first_part_and_styles_only_itself(tmp_path, metrics_files):
    """The table, then the figure (embedded, so the page needs no file beside it), then the notes and the legend."""
    (tmp_path / "figure.png").write_bytes(PNG)
    write_summary(
        metrics_files, tmp_path / "s.tsv", tmp_path / "s.md", headline_path=tmp_path / "h.html",
        headline_figure=tmp_path / "figure.png",
    )  # fmt: skip
    fragment = (tmp_path / "h.html").read_text()
    assert fragment.startswith(f'<div id="{HEADLINE_ELEMENT}">') and fragment.rstrip().endswith("</div>")
    assert "<html" not in fragment and "<body" not in fragment and fragment.count("<table>") == 1
    assert "<th>Recall@20</th><th>MRR@20</th><th>NDCG@20</th>" in fragment
    image = re.search(r'<figure><img src="data:image/png;base64,([^"]+)"', fragment)
    assert base64.b64decode(image.group(1)) == PNG
    assert fragment.index("</table>") < image.start() < fragment.index("Every model was evaluated")
    assert "ce_full: GRU4Rec, cross-entropy over all items" in fragment
    style = re.search(r"<style>(.*)</style>", fragment, re.S).group(1)
    selectors = [rule.split("{")[0] for rule in style.strip().splitlines()]
    assert all(part.strip().startswith(f"#{HEADLINE_ELEMENT}") for rule in selectors for part in rule.split(","))


def test_a_missing_headline_figure_is_named_and_nothing_is_written(tmp_path, metrics_files):
    outputs = {"tsv_path": tmp_path / "s.tsv", "md_path": tmp_path / "s.md", "headline_path": tmp_path / "h.html"}
    with pytest.raises(DataFormatError, match=r"metrics_by_cutoff\.png.*figure not found"):
        write_summary(metrics_files, **outputs, headline_figure=tmp_path / "metrics_by_cutoff.png")
    assert not any(path.exists() for path in outputs.values())


def test_metrics_files_without_ndcg_give_no_ndcg_columns_to_read(tmp_path):
    """Metrics files written before NDCG was measured: the tables for people leave it out, the TSV keeps its
    columns, empty."""
    records = [metrics_record("bpr", "gru4rec", 0.5, 0.2), metrics_record("pop", "baseline", 0.1, 0.05)]
    for record in records:
        del record["ndcg"]
    write_summary(write_metrics(tmp_path, records), tmp_path / "s.tsv", tmp_path / "s.md")
    text = (tmp_path / "s.md").read_text()
    assert markdown_tables(text)[0] == ["Model", "Kind", "Recall@20", "MRR@20"] and "| NDCG" not in text
    assert pd.read_csv(tmp_path / "s.tsv", sep="\t")["ndcg@20"].isna().all()


def test_different_evaluated_event_counts_are_pointed_out(tmp_path):
    paths = write_metrics(
        tmp_path,
        [
            metrics_record("bpr", "gru4rec", 0.5, 0.2, events=1000),
            metrics_record("pop", "baseline", 0.1, 0.05, events=900),
        ],
    )
    write_summary(paths, tmp_path / "s.tsv", tmp_path / "s.md")
    assert "different numbers of test events (bpr 1,000, pop 900)" in (tmp_path / "s.md").read_text()


def test_missing_optional_keys_are_tolerated(tmp_path):
    minimal = {"model": "top1", "recall": {"20": 0.4}, "mrr": {"20": 0.1}}
    paths = write_metrics(tmp_path, [minimal])
    table = write_summary(paths, tmp_path / "s.tsv", tmp_path / "s.md")
    assert table["kind"].item() == "gru4rec"
    assert "No provenance recorded" in (tmp_path / "s.md").read_text()


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"model": "bpr", "mrr": {}}', "missing key 'recall'"),
        ('{"model": "bpr", "recall": [0.1], "mrr": {}}', "'recall' must map cut-offs"),
        ('{"model": "bpr", "recall": {"twenty": 0.1}, "mrr": {}}', "integer cut-offs"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_metrics_files_are_named(tmp_path, content, message):
    path = tmp_path / "bpr.json"
    path.write_text(content)
    with pytest.raises(DataFormatError, match=message) as error:
        load_metrics([path])
    assert str(path) in str(error.value)


def test_a_failed_summary_leaves_no_output(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{}")
    with pytest.raises(DataFormatError):
        write_summary([path], tmp_path / "s.tsv", tmp_path / "s.md")
    assert not (tmp_path / "s.tsv").exists() and not (tmp_path / "s.md").exists()


def test_command_line(tmp_path, metrics_files, capsys):
    code = main(
        [
            "summary",
            "--metrics",
            *map(str, metrics_files),
            "--tsv",
            str(tmp_path / "s.tsv"),
            "--md",
            str(tmp_path / "s.md"),
            "--html",
            str(tmp_path / "s.html"),
        ]
    )
    assert code == 0
    assert "| ce_full" in capsys.readouterr().out
    assert (tmp_path / "s.html").exists()


def data_record(kind="synthetic", sha256="ab" * 32, **fields) -> dict:
    from gru4rec_pipeline.data.source import DataSource

    fields = fields or {"preset": "tiny", "seed": 7}
    return DataSource(kind, "results/raw/synthetic/yoochoose-data.7z", 1000, sha256, **fields).as_record()


def test_dataset_description_names_the_data_its_fingerprint_and_the_split():
    assert describe_dataset(data_record(), "final") == (
        "synthetic yoochoose-format data (preset tiny, seed 7), sha256 abababababab; "
        "trained on train_full, evaluated on test"
    )
    own = data_record("own_data", "cd" * 32, path="my.csv")
    assert describe_dataset(own, "tuning") == (
        "own click log my.csv, sha256 cdcdcdcdcdcd; trained on train_tr, evaluated on valid"
    )


def test_models_measured_on_other_data_are_named(tmp_path):
    """The metrics files name their data; a model measured on other data (or on data not recorded) is pointed out,
    and each row of the TSV names its data."""
    source = data_record()
    records = [
        metrics_record("bpr_max", "gru4rec", 0.55, 0.20, data=source),
        metrics_record("pop", "baseline", 0.10, 0.03, data=data_record(sha256="cd" * 32)),
        metrics_record("itemknn", "baseline", 0.45, 0.18),
    ]
    write_summary(write_metrics(tmp_path, records), tmp_path / "s.tsv", tmp_path / "s.md", data_source=source)
    text = (tmp_path / "s.md").read_text()
    assert "Dataset: synthetic yoochoose-format data (preset tiny, seed 7), sha256 abababababab." in text
    assert (
        "Measured on other data than the dataset named above, by their metrics files: pop (sha256 cdcdcdcdcdcd), "
        "itemknn (no data recorded)"
    ) in text
    table = pd.read_csv(tmp_path / "s.tsv", sep="\t", dtype={"data": str}).set_index("model")
    assert table.loc["bpr_max", "data"] == "abababababab" and table.loc["pop", "data"] == "cdcdcdcdcdcd"


def test_a_tuned_model_follows_its_loss_and_names_its_study(tmp_path):
    study = {"study": "bpr_max-0123456789ab", "best_trial": 7, "best_value": 0.4512, "metric": "mrr@20"}
    records = [
        metrics_record("pop", "baseline", 0.30, 0.10),
        metrics_record("bpr_max_tuned", "gru4rec", 0.82, 0.47, loss="bpr_max", tuning=study),
        metrics_record("top1", "gru4rec", 0.77, 0.43),
        metrics_record("bpr_max", "gru4rec", 0.80, 0.45),
    ]
    table = summary_table(load_metrics(write_metrics(tmp_path, records)))
    assert list(table["model"]) == ["bpr_max", "bpr_max_tuned", "top1", "pop"]
    described = table.set_index("model")["description"]
    assert described["bpr_max_tuned"] == (
        "GRU4Rec, BPR-max, tuned: trial 7 of study bpr_max-0123456789ab, mrr@20 0.4512 on valid"
    )
    assert described["bpr_max"] == "GRU4Rec, BPR-max"
