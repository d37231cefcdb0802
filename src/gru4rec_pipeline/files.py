"""Writing outputs atomically: a file appears whole under its final name, or not at all.

Every stage writes to a hidden temporary sibling of its output (same folder, so the final
rename never crosses a filesystem) and renames it into place only when the write finished.
A failing write removes the temporary, so an interrupted or failing stage leaves neither a
partial output nor litter that a rerun would have to clean up.

- :func:`atomic_output`: one file, as a context manager that yields the temporary path;
- :func:`write_text_atomic` / :func:`write_json_atomic`: the same for text and JSON;
- :func:`atomic_outputs`: several files that appear together (none is renamed into place
  unless every one of them was written), for stages with more than one output;
- :func:`clean_up_on_sigterm`: SIGTERM (a scheduler's or Snakemake's stop) runs that cleanup too, and a temporary
  left by a process that died without any (``kill -9``, a lost node) is removed by the next write of its output;
- :func:`no_space_error`: a full disk said as such, naming the file system and the path, where a library would
  report it as a damaged file or a cryptic write error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from gru4rec_pipeline.errors import DataFormatError, PipelineError

log = logging.getLogger(__name__)


def temporary_sibling(path: str | Path) -> Path:
    """A hidden sibling of ``path`` to write first and rename into place.

    The process id keeps two writers of the same output apart; the suffix is kept last so
    writers that choose the format from it (``.npz``, ``.gz``, ``.png``) still see it.
    """
    path = Path(path)
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> None:
    """Remove the temporaries of ``path`` that processes which have ended left behind (on this machine)."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(path.stem)}\.tmp-(\d+){re.escape(path.suffix)}$")
    for candidate in path.parent.iterdir():
        match = pattern.match(candidate.name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            log.info("removing %s, left by process %s, which has ended", candidate, match.group(1))
            candidate.unlink(missing_ok=True)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def clean_up_on_sigterm() -> None:
    """Make SIGTERM end the process through Python's exception handling, so that outputs being written are
    removed (Python's default for SIGTERM ends the process on the spot, leaving the temporaries)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; rename it into place when the block
    finishes, remove it when the block raises."""
    path = Path(path)
    remove_stale_temporaries(path)
    temporary = temporary_sibling(path)
    try:
        yield temporary
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """``text`` as UTF-8, whatever the locale."""
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    """``data`` as indented JSON with a final newline; values JSON does not know (paths,
    numpy scalars, dates) are written as their ``str``."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


class StagedOutputs:
    """Temporaries of several outputs, renamed into place together by :func:`atomic_outputs`."""

    def __init__(self) -> None:
        self._temporaries: dict[Path, Path] = {}  # final path -> its temporary

    def temporary(self, path: str | Path) -> Path:
        """The temporary to write for the output ``path``."""
        path = Path(path)
        remove_stale_temporaries(path)
        temporary = temporary_sibling(path)
        self._temporaries[path] = temporary
        return temporary

    def publish(self) -> None:
        for path, temporary in self._temporaries.items():
            temporary.replace(path)

    def discard(self) -> None:
        for temporary in self._temporaries.values():
            temporary.unlink(missing_ok=True)


@contextmanager
def atomic_outputs() -> Iterator[StagedOutputs]:
    """Stage several outputs: ``staged.temporary(path)`` names the file to write for ``path``.

    When the block finishes every temporary is renamed into place; when it raises every
    temporary is removed and no output appears.
    """
    staged = StagedOutputs()
    try:
        yield staged
        staged.publish()
    except BaseException:
        staged.discard()
        raise


def read_json(path: str | Path, what: str):
    """Parse the JSON file ``path``; a missing file or invalid JSON raises DataFormatError naming ``what``."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFormatError(path, f"{what} file does not exist") from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file ``path``'s bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def free_bytes(path: str | Path) -> int:
    """Free bytes on the file system holding ``path`` (its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def no_space_error(exc: BaseException, path: str | Path) -> PipelineError | None:
    """A PipelineError saying that the file system of ``path`` is full, when ``exc`` (or what caused it) is a
    failed write for want of space; None for any other exception."""
    seen = exc
    while seen is not None:
        # torch's writer reports a short write as "unexpected pos ..." or "file write failed".
        torch_short_write = isinstance(seen, RuntimeError) and any(
            text in str(seen) for text in ("unexpected pos", "file write failed")
        )
        if (isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT)) or torch_short_write:
            path = Path(path)
            return PipelineError(
                f"{path}: no space left on the file system of {path.parent} ({free_bytes(path):,} bytes free) "
                "while writing it; free some space or point the output elsewhere, then run again"
            )
        seen = seen.__cause__ or seen.__context__
    return None
