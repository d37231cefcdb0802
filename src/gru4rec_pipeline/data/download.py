"""Download the raw archive: resumable across runs, retried within bounds, checksum-verified, atomic.

The RSC15 archive is a few hundred megabytes served from S3. A dropped connection or a killed
run should cost only the missing bytes, so the body goes to one partial file per destination,
``.<name>.part`` beside it, with a sidecar ``.<name>.part.json`` recording the URL it belongs to
(and the server's ETag or Last-Modified). The next attempt, in this process or a later run, asks
for the rest with an HTTP Range request (with If-Range, so a file that changed on the server is
fetched whole again); a partial of another URL, or of unknown origin, is discarded.

A lock (``fcntl.flock`` on ``.<name>.lock``) keeps two runs from writing the same partial: the
second one fails at once, naming the lock and the holder's PID, rather than waiting for a
download that may take many minutes.

The destination appears only once the whole body is there and matches ``sha256`` (when given),
by a rename, so it is never half-written. On success the partial and its sidecar are removed; on
a failure that more bytes cannot fix (a checksum mismatch) too; after any other failure they stay
for the next run. What cannot change on retry fails at once (a checksum mismatch, 4xx answers but
408 and 429); failures to connect at all are retried fewer times than broken transfers; and the
total wait between attempts is bounded.

What arrives is checked: a transfer slower than ``min_rate`` bytes/s over a minute (a server trickling a byte at
a time never times out) is dropped and resumed like a broken one, and progress is logged every minute. With
``signature`` (the 7z magic number for the RSC15 archive), a body that does not start with it (an HTML error page
answered with 200, a short text) is refused naming the URL and what arrived, and nothing is kept. A full disk
is said as such, naming the file system.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gru4rec_pipeline import __version__
from gru4rec_pipeline.errors import ConfigError, PipelineError
from gru4rec_pipeline.files import no_space_error
from gru4rec_pipeline.progress import Progress

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
MAX_BACKOFF_S = 60.0
# Request timeouts and rate limiting are worth another try; other client errors are not.
RETRYABLE_CLIENT_STATUS = {408, 429}
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")
SEVEN_ZIP_SIGNATURE = b"7z\xbc\xaf\x27\x1c"  # the first six bytes of every 7z archive
RATE_WINDOW_S = 60.0  # the span over which the transfer rate is checked and progress logged


class DownloadError(PipelineError):
    """A file could not be downloaded, or its content is not the expected one."""


class _TransientError(Exception):
    """A failure worth retrying: the connection broke, timed out, or the server had a 5xx."""


class _ConnectError(_TransientError):
    """No connection at all (refused, unknown host, unreachable): usually a server that is down or a
    wrong URL, so worth fewer tries than a transfer that broke."""


class _Partial:
    """The partial body of ``url`` beside ``dest`` and its sidecar (the URL and the server's validator)."""

    def __init__(self, dest: Path, url: str):
        self.path = dest.with_name(f".{dest.name}.part")
        self.sidecar = dest.with_name(f".{dest.name}.part.json")
        self.url = url
        self.validator: str | None = None
        self.content_type = "no Content-Type"

    def adopt(self) -> int:
        """Keep what an earlier run left for this URL; discard anything else. Returns the bytes kept."""
        try:
            recorded = json.loads(self.sidecar.read_text())
        except (OSError, ValueError):
            recorded = None
        size = self.path.stat().st_size if self.path.exists() else 0
        if isinstance(recorded, dict) and recorded.get("url") == self.url and size:
            self.validator = recorded.get("validator")
            log.info("%s: resuming from byte %s left by an earlier run in %s", self.url, f"{size:,}", self.path)
            return size
        if size:
            log.info("%s: discarding %s, a partial of another download", self.url, self.path)
        self.restart()
        return 0

    def restart(self, validator: str | None = None) -> None:
        self.path.write_bytes(b"")
        self.validator = validator
        self._write_sidecar()

    def _write_sidecar(self) -> None:
        self.sidecar.write_text(json.dumps({"url": self.url, "validator": self.validator}) + "\n")

    def size(self) -> int:
        return self.path.stat().st_size

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.sidecar.unlink(missing_ok=True)


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: bool = True,
    connect_retries: int = 2,
    max_wait: float = 300.0,
    signature: bytes | None = None,
    min_rate: float = 1024.0,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    Timeouts, 5xx, 408 and 429 answers and bodies shorter than announced are retried up to
    ``retries`` times, failures to connect at all up to ``connect_retries`` times of those, waiting
    ``backoff * 2**k`` seconds (at most ``MAX_BACKOFF_S``) and at most ``max_wait`` seconds in all;
    each retry, and a later call, resumes the partial body where the server honours Range requests.
    Raises :class:`DownloadError` at once on other 4xx answers, when the body's SHA-256 differs from
    ``sha256`` (the partial is then discarded), when another process holds the lock, or when the
    retries are spent (the partial is then kept for the next call). A transfer slower than ``min_rate``
    bytes/s over ``RATE_WINDOW_S`` is a broken one; a body not starting with ``signature`` is refused.
    """
    dest = Path(dest)
    expected_digest = _normalize_digest(sha256)
    for key, value in (("retries", retries), ("connect_retries", connect_retries), ("max_wait", max_wait)):
        if value < 0:
            raise ConfigError(key, f"expected a number >= 0, got {value}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = _Partial(dest, url)
    with _exclusive(dest.with_name(f".{dest.name}.lock"), dest):
        partial.adopt()
        try:
            _fetch_with_retries(
                url, partial, retries, connect_retries, max_wait, timeout, backoff, progress, f"download {dest.name}",
                min_rate,
            )  # fmt: skip
        except DownloadError as exc:
            kept = partial.size() if partial.path.exists() else 0
            if not kept:
                partial.remove()
                raise
            raise DownloadError(f"{exc}; kept {kept:,} bytes in {partial.path} for the next run to resume") from exc
        _refuse_unexpected_body(url, partial, signature, dest)
        actual_digest = _sha256_of(partial.path)
        if expected_digest is not None and actual_digest != expected_digest:
            size = partial.size()
            # More bytes or another try cannot fix a wrong body: start from nothing next time.
            partial.remove()
            raise DownloadError(
                f"{url}: SHA-256 mismatch: expected {expected_digest}, got {actual_digest} "
                f"({size:,} bytes); nothing was written to {dest}"
            )
        os.replace(partial.path, dest)
        partial.sidecar.unlink(missing_ok=True)
    log.info("downloaded %s to %s (%s bytes, sha256 %s)", url, dest, f"{dest.stat().st_size:,}", actual_digest)
    return dest


@contextmanager
def _exclusive(lock_path: Path, dest: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (holding our PID) for the block; fail at once when taken."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DownloadError(
                f"{dest}: another download of it is running (lock {lock_path} held by PID {holder}); "
                "wait for it to finish, or stop it and run again to resume its partial file"
            ) from None
        # The holder we waited for may have removed the file after unlocking it: lock the one that is there.
        try:
            current = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        lock_path.unlink(missing_ok=True)  # still held: nobody can lock it in between
        os.close(fd)


def _normalize_digest(sha256: str | None) -> str | None:
    if sha256 is None or sha256 == "":
        return None
    digest = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ConfigError("sha256", f"expected 64 hexadecimal digits, got {sha256!r}")
    return digest


def _refuse_unexpected_body(url: str, partial: _Partial, signature: bytes | None, dest: Path) -> None:
    """DownloadError naming what arrived when the body does not start with ``signature``; the body is removed."""
    if signature is None:
        return
    with open(partial.path, "rb") as stream:
        head = stream.read(64)
    if head.startswith(signature):
        return
    size = partial.size()
    partial.remove()
    start = head[:24].decode("utf-8", errors="replace").split("\n")[0].strip()
    raise DownloadError(
        f"{url}: not a 7z archive: {partial.content_type}, {size:,} bytes, starts with {start!r}; nothing was "
        f"written to {dest}; check the URL (config key url), or download the archive by hand and set archive"
    )


def _sha256_of(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _fetch_with_retries(
    url: str,
    partial: _Partial,
    retries: int,
    connect_retries: int,
    max_wait: float,
    timeout: float,
    backoff: float,
    progress: bool,
    desc: str,
    min_rate: float = 0.0,
) -> None:
    attempt = connect_failures = 0
    waited = 0.0
    while True:
        attempt += 1
        try:
            _fetch_once(url, partial, timeout, progress, desc, min_rate)
            return
        except _TransientError as exc:
            connect_failures += isinstance(exc, _ConnectError)
            delay = min(backoff * 2 ** (attempt - 1), MAX_BACKOFF_S)
            if isinstance(exc, _ConnectError) and connect_failures > connect_retries:
                raise DownloadError(f"{url}: cannot connect ({exc}); gave up after {attempt} attempts") from exc
            if attempt > retries:
                raise DownloadError(f"{url}: giving up after {attempt} attempts; last error: {exc}") from exc
            if waited + delay > max_wait + 1e-9:  # 0.1 + 0.2 is not above 0.3
                raise DownloadError(
                    f"{url}: giving up after {attempt} attempts (waited {waited:.1f} s of at most {max_wait:g} s "
                    f"between them); last error: {exc}"
                ) from exc
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.1f s from byte %s",
                url,
                attempt,
                exc,
                delay,
                f"{partial.size():,}",
            )
            time.sleep(delay)
            waited += delay


def _fetch_once(url: str, partial: _Partial, timeout: float, progress: bool, desc: str, min_rate: float = 0.0) -> None:
    """Append the rest of the body to the partial file; return only once the body is complete."""
    have = partial.size()
    headers = {"User-Agent": f"gru4rec-pipeline/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if partial.validator:
            # The rest of the same file, or (when it changed on the server) all of the new one.
            headers["If-Range"] = partial.validator
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        content_range = exc.headers.get("Content-Range", "") if exc.headers else ""
        exc.close()
        if exc.code == 416 and have:
            complete = UNSATISFIED_RANGE.fullmatch(content_range.strip())
            if complete and int(complete.group(1)) == have:
                return  # an earlier run got every byte and stopped before the rename
            # The partial body no longer fits the remote file (it changed): start over.
            partial.restart()
            raise _TransientError(f"HTTP 416 for a resumed request at byte {have:,}; restarting") from exc
        if exc.code >= 500 or exc.code in RETRYABLE_CLIENT_STATUS:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        # urllib raises URLError (not HTTPError) only while connecting and sending the request.
        reason = exc.reason
        raise _ConnectError(
            f"{type(reason).__name__}: {reason}" if isinstance(reason, OSError) else str(reason)
        ) from exc
    except (http.client.HTTPException, OSError) as exc:
        raise _TransientError(f"{type(exc).__name__}: {exc}") from exc

    with response:
        total, append = _body_layout(url, response, partial, have)
        if not append and have:
            log.info("%s: the server sent the whole file, not the rest; downloading from the start", url)
            have = 0
        if not append:
            partial.restart(_validator(response))
        partial.content_type = response.headers.get("Content-Type") or "no Content-Type"
        window_start, window_bytes = time.monotonic(), 0
        with (
            open(partial.path, "ab") as out,
            Progress(desc, total=total, unit="B", unit_scale=True, enabled=progress) as bar,
        ):
            bar.update(have)
            while True:
                try:
                    # read1: whatever has arrived, so a stalled connection loses no received bytes.
                    chunk = response.read1(CHUNK_BYTES)
                except (http.client.HTTPException, OSError) as exc:
                    raise _TransientError(f"{type(exc).__name__} after {have:,} bytes: {exc}") from exc
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    full = no_space_error(exc, partial.path)
                    raise DownloadError(f"{url}: {full or exc}") from exc
                have += len(chunk)
                window_bytes += len(chunk)
                bar.update(len(chunk))
                elapsed = time.monotonic() - window_start
                if elapsed >= RATE_WINDOW_S:
                    log.info("%s: %s of %s bytes, %.0f bytes/s", url, f"{have:,}", f"{total:,}" if total else "?",
                             window_bytes / elapsed)  # fmt: skip
                    if window_bytes < min_rate * elapsed:
                        raise _TransientError(
                            f"{window_bytes:,} bytes in {elapsed:.0f} s, slower than {min_rate:g} bytes/s "
                            "(limits.download_min_bytes_per_s)"
                        )
                    window_start, window_bytes = time.monotonic(), 0
    if total is not None and have < total:
        raise _TransientError(f"connection closed after {have:,} of {total:,} bytes")
    if total is not None and have > total:
        partial.restart()
        raise _TransientError(f"received {have:,} bytes, more than the announced {total:,}; restarting")


def _validator(response) -> str | None:
    """What identifies this version of the file for If-Range: a strong ETag, else Last-Modified."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")


def _body_layout(url: str, response, partial: _Partial, have: int) -> tuple[int | None, bool]:
    """Return (size of the whole file or None when unknown, whether the body continues the partial)."""
    status = response.status
    if status == 206 and have:
        content_range = response.headers.get("Content-Range", "")
        match = CONTENT_RANGE.fullmatch(content_range.strip())
        if match is None or int(match.group(1)) != have:
            partial.restart()
            raise _TransientError(f"Content-Range {content_range!r} does not continue byte {have:,}; restarting")
        return (None if match.group(3) == "*" else int(match.group(3))), True
    if status == 200:
        return _content_length(response), False
    raise DownloadError(f"{url}: unexpected HTTP status {status} {response.reason}")


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None
