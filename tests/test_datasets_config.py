"""The data sets in the config: the keys dataset and raw, what they refuse, each set's defaults, its source record."""

from __future__ import annotations

import copy
import hashlib
import json
import os

import pytest
import yaml

from conftest import REPO
from gru4rec_pipeline import names
from gru4rec_pipeline.data.datasets.config import apply_dataset_defaults, dataset_defaults, dataset_problem
from gru4rec_pipeline.data.datasets.registry import dataset, training_defaults
from gru4rec_pipeline.data.source import (
    DataSource,
    configured_source,
    missing_source_problem,
    record_data_source,
    source_change_marker,
)

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
SHIPPED = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
OTHER_SETS = [name for name in names.DATASETS if name != names.DEFAULT_DATASET]


def test_the_schema_names_the_data_sets_and_losses_of_the_package():
    properties = SCHEMA["properties"]
    assert tuple(properties["dataset"]["enum"]) == names.DATASETS
    assert properties["dataset"]["default"] == names.DEFAULT_DATASET == SHIPPED["dataset"]
    assert tuple(properties["benchmark"]["properties"]["datasets"]["items"]["enum"]) == names.DATASETS
    assert tuple(properties["training"]["properties"]["run"]["items"]["enum"]) == names.LOSSES
    assert SHIPPED["raw"] == "" and SHIPPED["training"]["run"] == [] and SHIPPED["benchmark"]["datasets"] == []


def shipped(**changes) -> dict:
    config = copy.deepcopy(SHIPPED)
    config.update(changes)
    return config


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"raw": "/data/rr"}, "config key 'raw': '/data/rr' is read for the other data sets"),
        ({"dataset": "retailrocket", "clicks": "c.dat"}, "config key 'clicks': 'c.dat' is not supported with dataset"),
        ({"dataset": "coveo", "archive": "a.7z"}, "config key 'archive': 'a.7z' is not supported with dataset coveo"),
        ({"dataset": "coveo", "own_data": {"path": "o.csv"}}, "config key 'own_data.path': 'o.csv' is not supported"),
        ({"dataset": "rees46", "url": "https://example.org/x.7z"}, "config key 'url'"),
        ({"dataset": "rees46", "sha256": "0" * 64}, "config key 'sha256'"),
        ({"dataset": "diginetica", "protocol": {"preset": "yoochoose"}}, "config key 'protocol.preset': 'yoochoose'"),
        ({"dataset": "diginetica", "protocol": {"preset": "window"}}, "config key 'protocol.preset': 'window'"),
        ({"dataset": "diginetica", "protocol": {"split_seconds": 3600}}, "config key 'protocol.split_seconds': 3600"),
        ({"dataset": "diginetica", "protocol": {"drop_duplicates": True}}, "config key 'protocol.drop_duplicates'"),
        ({"dataset": "rees46", "rolling": {"run": ["bpr"]}}, "config key 'rolling.run': ['bpr'] is not supported"),
        ({"dataset": "retailrocket", "source": "download"}, "config key 'source': download: RetailRocket"),
    ],
)
def test_combinations_a_data_set_cannot_honour_are_refused_naming_the_key(changes, expected):
    config = shipped(**changes)
    if "protocol" in changes:
        config["protocol"] = {**SHIPPED["protocol"], **changes["protocol"]}
    problem = dataset_problem(config)
    assert problem is not None and problem.startswith(expected), problem


def test_what_a_data_set_can_honour_passes():
    assert dataset_problem(SHIPPED) is None
    for name in OTHER_SETS:
        assert dataset_problem(shipped(dataset=name)) is None
        assert dataset_problem(shipped(dataset=name, raw="/data/x", source="download")) is None
    assert dataset_problem(shipped(dataset="rees46", source="download")) is None
    assert dataset_problem(shipped(protocol={**SHIPPED["protocol"], "preset": "yoochoose"})) is None


def test_a_set_behind_a_sign_up_downloaded_names_where_to_get_it_and_the_raw_key():
    problem = dataset_problem(shipped(dataset="coveo", source="download"))
    assert dataset("coveo").download.sign_up in problem and "--config raw=/path/to/folder" in problem


@pytest.mark.parametrize("name", OTHER_SETS)
def test_a_data_sets_defaults_are_the_registrys_where_the_config_is_as_shipped(name):
    config = shipped(dataset=name)
    changed = apply_dataset_defaults(config, SHIPPED)
    spec = dataset(name)
    official = training_defaults(name)
    hyperparameters = config["training"]["losses"][spec.loss]
    for key in ("layers", "batch_size", "learning_rate", "momentum", "dropout_embed", "dropout_hidden", "n_sample",
                "sample_alpha", "logq", "bpreg", "elu_param", "epochs", "embedding"):  # fmt: skip
        assert hyperparameters[key] == official[key], key
    for method, settings in spec.knn.items():
        assert {key: config["baselines"][method][key] for key in settings} == settings
    # The other losses and baselines keep theirs.
    for loss in set(names.LOSSES) - {spec.loss}:
        assert config["training"]["losses"][loss] == SHIPPED["training"]["losses"][loss]
    for method in set(names.SESSION_KNN_DEFAULTS) - set(spec.knn):
        assert config["baselines"][method] == SHIPPED["baselines"][method]
    assert changed and all(line.split(":")[0].startswith(("training.losses.", "baselines.")) for line in changed)


def test_a_value_the_user_changed_wins_over_the_data_sets():
    config = shipped(dataset="retailrocket")
    config["training"]["losses"]["bpr_max"].update(epochs=2, n_sample=64, learning_rate=0.07)
    config["baselines"]["sknn"]["k"] = 7
    changed = apply_dataset_defaults(config, SHIPPED)
    bpr_max = config["training"]["losses"]["bpr_max"]
    assert (bpr_max["epochs"], bpr_max["n_sample"], bpr_max["learning_rate"]) == (2, 64, 0.07)
    assert bpr_max["layers"] == [224] and bpr_max["batch_size"] == 80
    assert config["baselines"]["sknn"] == {"k": 7, "sample_size": 5000, "similarity": "cosine"}
    assert not any(line.startswith(("training.losses.bpr_max.epochs", "baselines.sknn.k:")) for line in changed)


def test_rsc15_brings_no_defaults():
    config = shipped()
    assert dataset_defaults("rsc15") == {} and apply_dataset_defaults(config, SHIPPED) == [] and config == SHIPPED


# ---------------------------------------------------------------- the data source record


def test_a_data_sets_source_is_its_raw_folder_else_its_download_else_its_synthetic_files(tmp_path):
    synthetic = configured_source(shipped(dataset="rees46", synthetic={"preset": "tiny", "seed": 3}), "results/rees46")
    assert synthetic == {
        "kind": "dataset",
        "dataset": "rees46",
        "preset": "tiny",
        "seed": 3,
        "file": "results/rees46/raw/synthetic",
        "files": ["results/rees46/raw/synthetic/2019-Oct.csv", "results/rees46/raw/synthetic/2019-Nov.csv"],
    }
    downloaded = configured_source(shipped(dataset="rees46", source="download"), "results/rees46")
    assert downloaded["files"] == [
        "results/rees46/raw/download/2019-Oct.csv.gz",
        "results/rees46/raw/download/2019-Nov.csv.gz",
    ]
    assert downloaded["url"] == ", ".join(dataset("rees46").download.urls.values())
    (tmp_path / "2019-Oct.csv.gz").write_bytes(b"")
    given = configured_source(shipped(dataset="rees46", raw=str(tmp_path), source="download"))
    assert given["path"] == str(tmp_path) and given["file"] == str(tmp_path)
    assert given["files"] == [str(tmp_path / "2019-Oct.csv.gz"), str(tmp_path / "2019-Nov.csv")]


def test_a_raw_folder_without_a_file_is_named_with_the_raw_key(tmp_path):
    config = shipped(dataset="retailrocket", raw=str(tmp_path / "none"))
    assert missing_source_problem(config) == (
        f"config key 'raw': {tmp_path / 'none'} does not exist; expected a folder holding RetailRocket (e-commerce "
        "data set, 2015)'s events.csv (dataset: retailrocket)"
    )
    config["raw"] = str(tmp_path)
    assert missing_source_problem(config) == (
        f"config key 'raw': {tmp_path / 'events.csv'} does not exist (nor events.csv.gz); expected RetailRocket "
        "(e-commerce data set, 2015)'s events.csv under its published name (dataset: retailrocket)"
    )
    (tmp_path / "events.csv").write_text("timestamp,visitorid,event,itemid,transactionid\n")
    assert missing_source_problem(config) is None
    assert missing_source_problem(shipped(dataset="retailrocket")) is None


def test_a_changed_raw_file_changes_the_marker(tmp_path):
    (tmp_path / "events.csv").write_text("timestamp,visitorid,event,itemid,transactionid\n")
    config = shipped(dataset="retailrocket", raw=str(tmp_path))
    before = source_change_marker(config)
    assert before["dataset"] == "retailrocket" and before["path"] == str(tmp_path)
    os.utime(tmp_path / "events.csv", ns=(1, 1))
    assert source_change_marker(config) != before
    other = tmp_path / "other"
    other.mkdir()
    (other / "events.csv").write_bytes((tmp_path / "events.csv").read_bytes())
    assert source_change_marker({**config, "raw": str(other)})["path"] == str(other)
    assert source_change_marker(shipped(dataset="coveo")) == {
        "kind": "dataset",
        "dataset": "coveo",
        "preset": SHIPPED["synthetic"]["preset"],
        "seed": SHIPPED["synthetic"]["seed"],
    }


def test_the_record_hashes_several_raw_files_as_sha256sum_lines(tmp_path):
    october, november = tmp_path / "2019-Oct.csv", tmp_path / "2019-Nov.csv.gz"
    october.write_bytes(b"october\n")
    november.write_bytes(b"november\n")
    lines = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in (october, november))
    expected = hashlib.sha256(lines.encode()).hexdigest()
    source = configured_source(shipped(dataset="rees46", raw=str(tmp_path)))
    written = record_data_source(source, tmp_path / "source.json")
    record = json.loads((tmp_path / "source.json").read_text())
    assert record["sha256"] == expected and record["bytes"] == 17 and record["dataset"] == "rees46"
    assert record["files"] == ["2019-Oct.csv", "2019-Nov.csv.gz"]
    assert record["description"] == (
        f"Rees46 (eCommerce behaviour data from a multi-category store, Oct-Nov 2019): 2019-Oct.csv, 2019-Nov.csv.gz "
        f"in {tmp_path}, sha256 {expected[:12]}"
    )
    assert DataSource.load(tmp_path / "source.json") == written
    (tmp_path / "bad.json").write_text(json.dumps({**record, "dataset": "movielens"}))
    with pytest.raises(Exception, match="naming its dataset"):
        DataSource.load(tmp_path / "bad.json")


def test_one_raw_file_is_hashed_as_sha256sum_prints_it_and_synthetic_files_say_so(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "train-item-views.csv").write_bytes(b"views\n")
    source = {**configured_source(shipped(dataset="diginetica", synthetic={"preset": "tiny", "seed": 5}), "x")}
    source.update(file=str(folder), files=[str(folder / "train-item-views.csv")])
    record = record_data_source(source, tmp_path / "source.json").as_record()
    assert record["sha256"] == hashlib.sha256(b"views\n").hexdigest()
    assert record["description"].startswith(
        "synthetic Diginetica-format raw files train-item-views.csv (preset tiny, seed 5), sha256 "
    )


# ---------------------------------------------------------------- docs/datasets.md


def test_the_docs_show_each_sets_defaults_and_figures_as_the_registry_holds_them():
    from gru4rec_pipeline.data.datasets.config import defaults_table

    text = (REPO / "docs" / "datasets.md").read_text()
    shown = text.split("<!-- defaults table: gru4rec_pipeline.data.datasets.config.defaults_table() -->\n")[1]
    assert shown.split("<!-- end of defaults table -->")[0] == defaults_table()
    words = " ".join(text.split())
    for name in OTHER_SETS:
        paper = dataset(name).published["paper"]
        assert f"{dataset(name).short_title} {paper['recall@20']:.4f} / {paper['mrr@20']:.4f}" in words, name
        assert f"| {name} | `{'`, `'.join(dataset(name).raw_files)}`" in text.replace(".gz`", "`"), name
