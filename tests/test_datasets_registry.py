"""The data sets' registry: names, official parameters, kNN settings, downloads."""

from __future__ import annotations

import ast
import dataclasses
import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gru4rec_pipeline.data.datasets import registry
from gru4rec_pipeline.data.datasets.registry import DATASETS_BY_NAME, dataset, training_defaults
from gru4rec_pipeline.data.datasets.stage import download_raw
from gru4rec_pipeline.data.download import DownloadError
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.evaluation.knn import check_settings
from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.names import DATASETS, SESSION_KNN_DEFAULTS

OFFICIAL = Path("/work/data/GRU4Rec_PyTorch_Official")


def test_the_registry_holds_the_names_in_order():
    assert tuple(DATASETS_BY_NAME) == DATASETS
    assert all(entry.name == name for name, entry in DATASETS_BY_NAME.items())
    with pytest.raises(ConfigError, match="'dataset'.*expected one of rsc15, rees46"):
        dataset("movielens")


@pytest.mark.parametrize("name", DATASETS)
def test_the_official_best_setting_is_a_valid_training_setting(name):
    config = Hyperparameters.from_dict(training_defaults(name))
    assert config.loss == dataset(name).loss and config.embedding == "shared" and config.epochs == 10


@pytest.mark.parametrize("name", DATASETS)
def test_official_parameters_are_the_published_parameter_files(name):
    path = OFFICIAL / dataset(name).parameter_file
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    call = ast.parse(path.read_text()).body[-1].value
    published = dict(ast.literal_eval(call.args[0]))
    assert dataset(name).official_parameters == published


@pytest.mark.parametrize("name", DATASETS)
def test_knn_settings_are_valid_settings_of_the_baselines(name):
    for method, settings in dataset(name).knn.items():
        assert check_settings(method, settings) == {**SESSION_KNN_DEFAULTS[method], **settings}
    assert bool(dataset(name).knn) == bool(dataset(name).knn_source)


def test_rsc15s_knn_settings_are_the_projects_defaults():
    assert dataset("rsc15").knn == SESSION_KNN_DEFAULTS


@pytest.mark.parametrize("name", ["coveo", "retailrocket", "diginetica"])
def test_a_set_behind_a_sign_up_names_where_to_get_it_and_the_raw_key(name, tmp_path):
    with pytest.raises(ConfigError) as caught:
        download_raw(name, tmp_path)
    message = str(caught.value)
    assert caught.value.key == "raw" and dataset(name).download.sign_up in message
    assert "--config raw=" in message and all(file in message for file in dataset(name).raw_files)


@pytest.fixture
def server():
    bodies: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = bodies.get(self.path, b"")
            self.send_response(200 if self.path in bodies else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", bodies
    httpd.shutdown()


def _served_rees46(monkeypatch, url: str) -> None:
    entry = dataset("rees46")
    urls = {file: f"{url}/{file}" for file in entry.download.urls}
    replaced = dataclasses.replace(entry, download=dataclasses.replace(entry.download, urls=urls))
    monkeypatch.setitem(registry.DATASETS_BY_NAME, "rees46", replaced)


def test_rees46s_public_files_are_downloaded(server, monkeypatch, tmp_path):
    url, bodies = server
    _served_rees46(monkeypatch, url)
    for file in dataset("rees46").download.urls:
        bodies[f"/{file}"] = gzip.compress(f"{file}\n".encode())
    paths = download_raw("rees46", tmp_path, progress=False)
    assert [path.name for path in paths] == ["2019-Oct.csv.gz", "2019-Nov.csv.gz"]
    assert gzip.decompress(paths[1].read_bytes()) == b"2019-Nov.csv.gz\n"


def test_a_download_that_is_not_gzip_data_is_refused_and_not_kept(server, monkeypatch, tmp_path):
    url, bodies = server
    _served_rees46(monkeypatch, url)
    bodies["/2019-Oct.csv.gz"] = b"<html>sign in</html>"
    with pytest.raises(DownloadError, match="not gzip data.*--config raw="):
        download_raw("rees46", tmp_path, progress=False)
    assert not (tmp_path / "2019-Oct.csv.gz").exists()
