"""What download() refuses or gives up on: an error page for the archive, a trickling server, a full disk."""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gru4rec_pipeline.data import download as download_module
from gru4rec_pipeline.data.download import SEVEN_ZIP_SIGNATURE, DownloadError, download
from tmpfs import small_tmpfs

ERROR_PAGE = b"<!DOCTYPE html>\n<html><body>Access denied</body></html>\n" * 22
ARCHIVE_LIKE = SEVEN_ZIP_SIGNATURE + bytes(range(256)) * 40


class Server:
    """Answers every GET on 127.0.0.1 with ``body`` (200, ``content_type``), ``chunk`` bytes every ``pause_s``."""

    def __init__(self, body: bytes, content_type: str = "application/octet-stream", chunk=None, pause_s=0.0):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                step = chunk or len(body)
                try:
                    for start in range(0, len(body), step):
                        if owner.stopping.is_set():
                            return
                        self.wfile.write(body[start : start + step])
                        self.wfile.flush()
                        time.sleep(pause_s)
                except OSError:
                    pass

        self.stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/yoochoose-data.7z"

    def __enter__(self) -> "Server":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


FAST = dict(backoff=0.001, timeout=5.0, progress=False)


def test_an_error_page_answered_with_200_is_refused_naming_what_arrived(tmp_path):
    dest = tmp_path / "yoochoose-data.7z"
    with Server(ERROR_PAGE, "text/html; charset=utf-8") as server:
        with pytest.raises(DownloadError) as refused:
            download(server.url, dest, signature=SEVEN_ZIP_SIGNATURE, **FAST)
    message = str(refused.value)
    assert server.url in message and "not a 7z archive: text/html; charset=utf-8, 1,232 bytes" in message
    assert "starts with '<!DOCTYPE html>'" in message and "config key url" in message
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_a_7z_body_passes_the_signature_check(tmp_path):
    dest = tmp_path / "yoochoose-data.7z"
    with Server(ARCHIVE_LIKE) as server:
        download(server.url, dest, signature=SEVEN_ZIP_SIGNATURE, **FAST)
    assert dest.read_bytes() == ARCHIVE_LIKE


def test_a_trickling_server_is_dropped_and_the_download_gives_up(tmp_path, monkeypatch, caplog):
    """One byte every 0.1 s never trips the socket timeout; the rate check over a (shortened) window does."""
    monkeypatch.setattr(download_module, "RATE_WINDOW_S", 0.5)
    dest = tmp_path / "yoochoose-data.7z"
    started = time.monotonic()
    with Server(ARCHIVE_LIKE, chunk=1, pause_s=0.1) as server, caplog.at_level(logging.INFO):
        with pytest.raises(DownloadError) as gave_up:
            download(server.url, dest, retries=1, min_rate=100, **FAST)
    assert time.monotonic() - started < 10
    assert "slower than 100 bytes/s (limits.download_min_bytes_per_s)" in str(gave_up.value)
    assert "kept" in str(gave_up.value) and not dest.exists()
    assert any(
        "bytes/s" in record.getMessage() and "of 10,246 bytes" in record.getMessage() for record in caplog.records
    )


def test_a_full_disk_during_download_says_so(tmp_path):
    body = SEVEN_ZIP_SIGNATURE + bytes(3_000_000)
    with Server(body) as server, small_tmpfs(tmp_path / "small", "1m") as small:
        with pytest.raises(DownloadError) as failed:
            download(server.url, small / "yoochoose-data.7z", retries=0, **FAST)
    message = str(failed.value)
    assert "no space left on the file system of" in message and str(small) in message
