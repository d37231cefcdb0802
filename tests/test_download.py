"""download(): resumes with Range, retries transient failures, verifies, leaves nothing behind on error."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import run_snakemake
from gru4rec_pipeline.cli import main
from gru4rec_pipeline.data.download import DownloadError, download
from gru4rec_pipeline.errors import ConfigError

PAYLOAD = bytes(range(256)) * 800  # 204,800 bytes: several read chunks' worth of distinct bytes
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
FAST = dict(backoff=0.001, timeout=5.0, progress=False)


class FileServer:
    """Serves PAYLOAD at /data.bin from a thread on 127.0.0.1, misbehaving on request.

    ``fail_statuses``: the first requests are answered with these error statuses.
    ``drop_requests``: indices of requests that get half the body, then a closed connection.
    ``stall_requests``: indices of requests that get half the body, then silence for ``stall_s``.
    ``honour_range``: answer Range requests with 206 (else ignore them and send 200 and everything).
    ``etag``: send this ETag, and honour ``If-Range`` (a Range with another validator gets the whole body).
    """

    def __init__(
        self,
        payload=PAYLOAD,
        fail_statuses=(),
        drop_requests=(),
        stall_requests=(),
        stall_s=1.0,
        honour_range=True,
        etag=None,
    ):
        self.payload = payload
        self.fail_statuses = list(fail_statuses)
        self.drop_requests = set(drop_requests)
        self.stall_requests = set(stall_requests)
        self.stall_s = stall_s
        self.honour_range = honour_range
        self.etag = etag
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/data.bin"

    def __enter__(self) -> "FileServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                with server._lock:
                    index = len(server.requests)
                    server.requests.append({key.lower(): value for key, value in self.headers.items()})
                if self.path != "/data.bin":
                    self.send_error(404)
                    return
                if index < len(server.fail_statuses):
                    self.send_error(server.fail_statuses[index])
                    return
                start, status = 0, 200
                range_header = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if range_header and server.honour_range and (if_range is None or if_range == server.etag):
                    start, status = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1)), 206
                if start > len(server.payload) or (start == len(server.payload) and start):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(server.payload)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = server.payload[start:]
                self.send_response(status)
                if server.etag:
                    self.send_header("ETag", server.etag)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                self.end_headers()
                if index in server.drop_requests or index in server.stall_requests:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    if index in server.stall_requests:
                        time.sleep(server.stall_s)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


def leftovers(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_plain_download_is_byte_identical_and_verified(tmp_path):
    dest = tmp_path / "sub" / "data.bin"
    with FileServer() as server:
        result = download(server.url, dest, sha256=PAYLOAD_SHA256.upper(), **FAST)
    assert result == dest
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == ["data.bin"]
    assert len(server.requests) == 1 and "range" not in server.requests[0]


def test_dropped_connection_resumes_with_range(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer(drop_requests={0}) as server:
        download(server.url, dest, sha256=PAYLOAD_SHA256, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 2
    assert server.requests[1]["range"] == f"bytes={len(PAYLOAD) // 2}-"
    assert leftovers(tmp_path) == ["data.bin"]


def test_server_ignoring_range_restarts_from_the_start(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer(drop_requests={0}, honour_range=False) as server:
        download(server.url, dest, sha256=PAYLOAD_SHA256, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert "range" in server.requests[1]
    assert len(server.requests) == 2


def test_stalled_body_times_out_and_resumes(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer(stall_requests={0}, stall_s=1.0) as server:
        download(server.url, dest, backoff=0.001, timeout=0.2, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[1]["range"] == f"bytes={len(PAYLOAD) // 2}-"


def test_server_errors_are_retried(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer(fail_statuses=[503, 500]) as server:
        download(server.url, dest, **FAST)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 3


def test_retries_are_bounded_and_leave_nothing(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer(fail_statuses=[503] * 10) as server:
        with pytest.raises(DownloadError, match=r"giving up after 3 attempts.*503"):
            download(server.url, dest, retries=2, **FAST)
    assert len(server.requests) == 3
    assert leftovers(tmp_path) == []


def test_checksum_mismatch_names_url_and_both_digests_and_leaves_nothing(tmp_path):
    dest = tmp_path / "data.bin"
    wrong = "0" * 64
    with FileServer() as server:
        with pytest.raises(DownloadError) as info:
            download(server.url, dest, sha256=wrong, **FAST)
    message = str(info.value)
    assert server.url in message and wrong in message and PAYLOAD_SHA256 in message
    assert leftovers(tmp_path) == []


def test_not_found_fails_at_once_and_leaves_nothing(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer() as server:
        missing = server.url.replace("data.bin", "missing.bin")
        with pytest.raises(DownloadError, match=r"missing\.bin: HTTP 404"):
            download(missing, dest, **FAST)
    assert len(server.requests) == 1
    assert leftovers(tmp_path) == []


def test_malformed_arguments_are_rejected_before_downloading(tmp_path):
    with pytest.raises(ConfigError, match="sha256.*64 hexadecimal digits"):
        download("http://127.0.0.1:9/never", tmp_path / "data.bin", sha256="abc", **FAST)
    with pytest.raises(ConfigError, match="retries"):
        download("http://127.0.0.1:9/never", tmp_path / "data.bin", retries=-1, **FAST)
    assert leftovers(tmp_path) == []


def test_progress_is_logged_with_the_content_length_as_total(tmp_path, caplog):
    with FileServer() as server, caplog.at_level(logging.INFO, logger="gru4rec_pipeline"):
        download(server.url, tmp_path / "data.bin", backoff=0.001, progress=True)
    assert f"download data.bin done: {len(PAYLOAD):,}/{len(PAYLOAD):,} (100%) B" in caplog.text


def test_cli_downloads_and_reports_errors_with_exit_code(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer() as server:
        assert main(["download", "--url", server.url, "--sha256", PAYLOAD_SHA256, "--out", str(dest)]) == 0
        assert dest.read_bytes() == PAYLOAD
        missing = server.url.replace("data.bin", "missing.bin")
        assert main(["download", "--url", missing, "--out", str(tmp_path / "other.bin")]) == 2
    assert leftovers(tmp_path) == ["data.bin"]


# ----------------------------------------------------------------------------------------------
# Across processes: one partial file per destination, resumed by the next run, guarded by a lock.


def partial_of(dest):
    return dest.with_name(f".{dest.name}.part"), dest.with_name(f".{dest.name}.part.json")


def leave_partial(dest, url, data, **extra):
    """What a run killed mid-transfer leaves: the bytes it had, and the sidecar naming their URL."""
    part, sidecar = partial_of(dest)
    part.write_bytes(data)
    sidecar.write_text(json.dumps({"url": url, **extra}))


def test_a_killed_runs_partial_is_resumed_with_range(tmp_path):
    dest = tmp_path / "data.bin"
    half = len(PAYLOAD) // 3
    with FileServer() as server:
        leave_partial(dest, server.url, PAYLOAD[:half])
        download(server.url, dest, sha256=PAYLOAD_SHA256, **FAST)
    assert [request.get("range") for request in server.requests] == [f"bytes={half}-"]
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["data.bin"]


def test_a_complete_partial_is_verified_without_downloading_again(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer() as server:
        leave_partial(dest, server.url, PAYLOAD)
        download(server.url, dest, sha256=PAYLOAD_SHA256, **FAST)
    assert len(server.requests) == 1 and server.requests[0]["range"] == f"bytes={len(PAYLOAD)}-"
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["data.bin"]


@pytest.mark.parametrize("sidecar", ["other url", "missing"])
def test_a_partial_of_another_url_or_of_unknown_origin_is_discarded(tmp_path, sidecar):
    dest = tmp_path / "data.bin"
    with FileServer() as server:
        leave_partial(dest, server.url.replace("data.bin", "other.bin"), b"x" * 1000)
        if sidecar == "missing":
            partial_of(dest)[1].unlink()
        download(server.url, dest, sha256=PAYLOAD_SHA256, **FAST)
    assert len(server.requests) == 1 and "range" not in server.requests[0]
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["data.bin"]


def test_a_partial_of_a_file_that_changed_since_is_restarted(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer(etag='"v2"') as server:
        leave_partial(dest, server.url, b"old bytes" * 100, validator='"v1"')
        download(server.url, dest, sha256=PAYLOAD_SHA256, **FAST)
    assert server.requests[0]["if-range"] == '"v1"'
    assert dest.read_bytes() == PAYLOAD


def test_a_failed_transfer_keeps_its_partial_for_the_next_run(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer(drop_requests={0, 1}) as server:
        with pytest.raises(DownloadError, match=r"kept .* bytes in .*\.data\.bin\.part"):
            download(server.url, dest, retries=1, **FAST)
        part, sidecar = partial_of(dest)
        kept = part.stat().st_size
        assert 0 < kept < len(PAYLOAD) and json.loads(sidecar.read_text())["url"] == server.url
        assert not dest.exists()
        download(server.url, dest, sha256=PAYLOAD_SHA256, **FAST)
    assert server.requests[-1]["range"] == f"bytes={kept}-"
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["data.bin"]


def test_a_second_download_of_the_same_file_fails_at_once_naming_the_lock_and_its_holder(tmp_path):
    dest = tmp_path / "data.bin"
    lock = tmp_path / ".data.bin.lock"
    with open(lock, "w") as held, FileServer() as server:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        with pytest.raises(DownloadError) as error:
            download(server.url, dest, **FAST)
    assert str(lock) in str(error.value) and "PID 4242" in str(error.value)
    assert server.requests == []
    assert leftovers(tmp_path) == [".data.bin.lock"]


# ----------------------------------------------------------------------------------------------
# What cannot change on retry fails at once; what can is retried within bounds.


def test_checksum_mismatch_downloads_once_and_discards_the_partial(tmp_path):
    dest = tmp_path / "data.bin"
    with FileServer() as server:
        with pytest.raises(DownloadError, match=f"expected {'1' * 64}, got {PAYLOAD_SHA256}"):
            download(server.url, dest, sha256="1" * 64, **FAST)
    assert len(server.requests) == 1
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("status", [403, 404, 410])
def test_client_errors_fail_after_one_request(tmp_path, status):
    dest = tmp_path / "data.bin"
    with FileServer(fail_statuses=[status] * 5) as server:
        with pytest.raises(DownloadError, match=f"HTTP {status}"):
            download(server.url, dest, **FAST)
    assert len(server.requests) == 1


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/data.bin"


def test_connection_refused_fails_quickly_with_the_default_retries(tmp_path, caplog):
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="gru4rec_pipeline"), pytest.raises(DownloadError) as error:
        download(closed_port_url(), tmp_path / "data.bin", progress=False)
    elapsed = time.monotonic() - started
    assert elapsed < 6.0, elapsed
    assert "cannot connect" in str(error.value) and "Connection refused" in str(error.value)
    assert "after 3 attempts" in str(error.value)
    assert leftovers(tmp_path) == []


def test_the_total_wait_between_retries_is_bounded(tmp_path):
    dest = tmp_path / "data.bin"
    started = time.monotonic()
    with FileServer(fail_statuses=[503] * 100) as server:
        with pytest.raises(DownloadError, match=r"waited .* of at most 0\.3 s between them.*503"):
            download(server.url, dest, retries=100, backoff=0.1, max_wait=0.3, timeout=5.0, progress=False)
    assert time.monotonic() - started < 2.0
    assert 2 <= len(server.requests) <= 4


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["not found", "checksum"])
def test_the_download_rule_does_not_multiply_attempts(workflow_copy, problem):
    with FileServer() as server:
        url = server.url.replace("data.bin", "missing.bin") if problem == "not found" else server.url
        config = [f"url={url}", "source=download"] + (["sha256=" + "ab" * 32] if problem == "checksum" else [])
        result = run_snakemake(
            workflow_copy, "results/raw/download/yoochoose-data.7z", "--cores", "1", "--config", *config, check=False
        )
    assert result.returncode != 0
    assert len(server.requests) == 1, result.stdout + result.stderr
