"""Download the raw archive: resumable, retried, checksum-verified, atomic.

The RSC15 archive is a few hundred megabytes served from S3. A dropped connection
should cost only the missing bytes, so a partial body is kept in a temporary file
next to the destination and the next attempt asks for the rest with an HTTP Range
request. The destination appears only once the whole body is there (and matches
``sha256`` when one is given); on failure nothing is left behind.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from gru4rec_pipeline import __version__
from gru4rec_pipeline.errors import ConfigError, PipelineError
from gru4rec_pipeline.progress import Progress

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
MAX_BACKOFF_S = 60.0
# Request timeouts and rate limiting are worth another try; other client errors are not.
RETRYABLE_CLIENT_STATUS = {408, 429}
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(PipelineError):
    """A file could not be downloaded, or its content is not the expected one."""


class _TransientError(Exception):
    """A failure worth retrying: the connection broke, timed out, or the server had a 5xx."""


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    Connection errors, timeouts, 5xx answers and bodies shorter than announced are
    retried up to ``retries`` times, waiting ``backoff * 2**k`` seconds (at most
    ``MAX_BACKOFF_S``); each retry resumes the partial body where the server honours
    Range requests. Raises :class:`DownloadError` on a 4xx answer, when the retries are
    spent, or when the body's SHA-256 differs from ``sha256``.
    """
    dest = Path(dest)
    expected_digest = _normalize_digest(sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if retries < 0:
        raise ConfigError("retries", f"expected a number >= 0, got {retries}")
    part = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    try:
        part.write_bytes(b"")
        _fetch_with_retries(url, part, retries, timeout, backoff, progress, desc=f"download {dest.name}")
        actual_digest = _sha256_of(part)
        if expected_digest is not None and actual_digest != expected_digest:
            raise DownloadError(
                f"{url}: SHA-256 mismatch: expected {expected_digest}, got {actual_digest} "
                f"({part.stat().st_size:,} bytes); nothing was written to {dest}"
            )
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    log.info("downloaded %s to %s (%s bytes, sha256 %s)", url, dest, f"{dest.stat().st_size:,}", actual_digest)
    return dest


def _normalize_digest(sha256: str | None) -> str | None:
    if sha256 is None or sha256 == "":
        return None
    digest = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ConfigError("sha256", f"expected 64 hexadecimal digits, got {sha256!r}")
    return digest


def _sha256_of(path: Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _fetch_with_retries(
    url: str, part: Path, retries: int, timeout: float, backoff: float, progress: bool, desc: str
) -> None:
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            _fetch_once(url, part, timeout, progress, desc)
            return
        except _TransientError as exc:
            if attempt == attempts:
                raise DownloadError(f"{url}: giving up after {attempts} attempts; last error: {exc}") from exc
            delay = min(backoff * 2 ** (attempt - 1), MAX_BACKOFF_S)
            log.warning(
                "%s: attempt %d of %d failed (%s); retrying in %.1f s from byte %s",
                url,
                attempt,
                attempts,
                exc,
                delay,
                f"{part.stat().st_size:,}",
            )
            time.sleep(delay)


def _fetch_once(url: str, part: Path, timeout: float, progress: bool, desc: str) -> None:
    """Append the rest of the body to ``part``; return only once the body is complete."""
    have = part.stat().st_size
    headers = {"User-Agent": f"gru4rec-pipeline/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:
            # The partial body no longer fits the remote file (it changed): start over.
            part.write_bytes(b"")
            raise _TransientError(f"HTTP 416 for a resumed request at byte {have:,}; restarting") from exc
        if exc.code >= 500 or exc.code in RETRYABLE_CLIENT_STATUS:
            raise _TransientError(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _TransientError(f"{type(exc).__name__}: {exc}") from exc

    with response:
        total, append = _body_layout(url, response, part, have)
        if not append and have:
            log.info("%s: the server ignored the range request; downloading from the start", url)
            have = 0
        with (
            open(part, "ab" if append else "wb") as out,
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
                out.write(chunk)
                have += len(chunk)
                bar.update(len(chunk))
    if total is not None and have < total:
        raise _TransientError(f"connection closed after {have:,} of {total:,} bytes")
    if total is not None and have > total:
        part.write_bytes(b"")
        raise _TransientError(f"received {have:,} bytes, more than the announced {total:,}; restarting")


def _body_layout(url: str, response, part: Path, have: int) -> tuple[int | None, bool]:
    """Return (size of the whole file or None when unknown, whether the body continues ``part``)."""
    status = response.status
    if status == 206 and have:
        content_range = response.headers.get("Content-Range", "")
        match = CONTENT_RANGE.fullmatch(content_range.strip())
        if match is None or int(match.group(1)) != have:
            part.write_bytes(b"")
            raise _TransientError(f"Content-Range {content_range!r} does not continue byte {have:,}; restarting")
        return (None if match.group(3) == "*" else int(match.group(3))), True
    if status == 200:
        return _content_length(response), False
    raise DownloadError(f"{url}: unexpected HTTP status {status} {response.reason}")


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None
