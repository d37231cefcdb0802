"""Extract named members of a 7z archive (the RSC15 ``yoochoose-data.7z``), safely and atomically.

Every member name is checked before anything is written, so an archive naming an
absolute path or one containing ``..`` is refused as a whole. Members are extracted
into a temporary folder inside ``out_dir`` and moved into place only once all of them
decompressed with valid checksums: a damaged archive leaves no output.

The archive declares its members' sizes before anything is decompressed. A member set declaring more than
``max_bytes`` (config key ``limits.max_extracted_bytes``; RSC15's clicks file is about 1.5 GB) or more than the free
space of the target file system is refused before a byte is written, naming the sizes: a decompression bomb
(a megabyte of archive declaring gigabytes of zeros) would otherwise fill the disk.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath

import py7zr
from py7zr.callbacks import ExtractCallback

from gru4rec_pipeline.errors import DataFormatError, PipelineError
from gru4rec_pipeline.files import free_bytes, no_space_error
from gru4rec_pipeline.progress import Progress

log = logging.getLogger(__name__)

WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
# Ceiling on the bytes extracted members may declare: about 5 x RSC15's yoochoose-clicks.dat (1.5 GB).
DEFAULT_MAX_EXTRACTED_BYTES = 8_000_000_000


def extract_members(
    archive: str | Path, out_dir: str | Path, members: list[str], max_bytes: int = DEFAULT_MAX_EXTRACTED_BYTES
) -> dict[str, Path]:
    """Extract ``members`` of the 7z ``archive`` into ``out_dir``; return {member: extracted path}.

    A member is found by its full name in the archive or, failing that, by its base name
    (``yoochoose-clicks.dat`` finds ``yoochoose-data/yoochoose-clicks.dat``). Each lands
    directly in ``out_dir`` under its base name. Raises :class:`DataFormatError` naming the
    archive for unsafe member names, a missing or ambiguous member, members declaring more than
    ``max_bytes`` or than the free space of ``out_dir``, and damaged archives.
    """
    archive = Path(archive)
    out_dir = Path(out_dir)
    if not members:
        raise PipelineError(f"{archive}: no members to extract were given")
    if not archive.is_file():
        raise DataFormatError(archive, "archive not found")
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".extract-"))
    try:
        try:
            with py7zr.SevenZipFile(archive, mode="r") as seven_zip:
                entries = seven_zip.list()
                refuse_unsafe_names(archive, [entry.filename for entry in entries])
                sources = {member: find_member(archive, member, entries) for member in members}
                refuse_name_clashes(archive, sources)
                targets = sorted(set(sources.values()))
                total = sum(entry.uncompressed for entry in entries if entry.filename in targets)
                refuse_oversized(archive, out_dir, targets, total, max_bytes)
                with Progress(f"extract {archive.name}", total=total, unit="B", unit_scale=True) as bar:
                    reporter = ExtractionProgress(archive, bar)
                    seven_zip.extract(path=staging, targets=targets, callback=reporter)
                    reporter.finished.wait(timeout=10)
        except PipelineError:
            raise
        except Exception as exc:  # py7zr reports damage as LZMAError, CrcError, Bad7zFile, EOFError, ...
            full = no_space_error(exc, out_dir / PurePosixPath(members[0]).name)
            if full is not None:
                raise full from exc
            raise DataFormatError(
                archive, f"cannot read the 7z archive (damaged or truncated?): {type(exc).__name__}: {exc}"
            ) from exc
        unique_sources = sorted(set(sources.values()))
        for source in unique_sources:
            if not (staging / source).is_file():
                raise DataFormatError(archive, f"member {source!r} was not extracted as a regular file")
        for source in unique_sources:
            target = out_dir / PurePosixPath(source).name
            os.replace(staging / source, target)
            # The archive stores the files' old modification times; a fresh one keeps
            # make-like tools from taking the output for older than the archive.
            os.utime(target)
        extracted = {member: out_dir / PurePosixPath(source).name for member, source in sources.items()}
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    sizes = ", ".join(f"{path.name} ({path.stat().st_size:,} bytes)" for path in extracted.values())
    log.info("extracted %s from %s in %.1f s", sizes, archive, time.perf_counter() - started)
    return extracted


def refuse_oversized(archive: Path, out_dir: Path, targets: list[str], total: int, max_bytes: int) -> None:
    """Raise, before anything is written, if the members ``targets`` declare ``total`` bytes, over ``max_bytes``
    or over the free space of ``out_dir``."""
    declared = f"declares {total:,} bytes for {', '.join(targets)} ({archive.stat().st_size:,} bytes compressed)"
    if total > max_bytes:
        raise DataFormatError(
            archive,
            f"{declared}, over the ceiling of {max_bytes:,} bytes (config key limits.max_extracted_bytes; RSC15's "
            "clicks file is about 1.5 GB): refusing to extract it; raise the ceiling if the archive is meant",
        )
    free = free_bytes(out_dir)
    if total > free:
        raise DataFormatError(
            archive, f"{declared}, more than the {free:,} bytes free on the file system of {out_dir}: refusing to "
            "extract it; free some space or extract elsewhere",
        )  # fmt: skip


class ExtractionProgress(ExtractCallback):
    """Feeds py7zr's decompression reports (bytes written since the last report) into a progress bar.

    py7zr delivers reports from a thread of its own, in order, ending with the post-processing
    report; ``finished`` is set then, so the caller can wait for every byte count before closing the bar.
    """

    def __init__(self, archive: Path, bar: Progress):
        self.archive = archive
        self.bar = bar
        self.finished = threading.Event()

    def report_start_preparation(self) -> None:
        pass

    def report_start(self, processing_file_path: str, processing_bytes: str) -> None:
        pass

    def report_update(self, decompressed_bytes: str) -> None:
        self.bar.update(int(decompressed_bytes))

    def report_end(self, processing_file_path: str, wrote_bytes: str) -> None:
        pass

    def report_warning(self, message: str) -> None:
        log.warning("%s: %s", self.archive, message)

    def report_postprocess(self) -> None:
        self.finished.set()


def refuse_unsafe_names(archive: Path, names: list[str]) -> None:
    """Raise if any member name is absolute or climbs out of the extraction folder."""
    for name in names:
        posix = name.replace("\\", "/")
        if posix.startswith("/") or WINDOWS_DRIVE.match(posix) or ".." in posix.split("/"):
            raise DataFormatError(archive, f"refusing to extract: member name {name!r} is absolute or contains '..'")


def refuse_name_clashes(archive: Path, sources: dict[str, str]) -> None:
    """Raise if two different members would land on the same file in ``out_dir``."""
    by_base_name: dict[str, str] = {}
    for source in sources.values():
        base_name = PurePosixPath(source).name
        if by_base_name.setdefault(base_name, source) != source:
            raise DataFormatError(
                archive, f"members {by_base_name[base_name]!r} and {source!r} would both be extracted as {base_name!r}"
            )


def find_member(archive: Path, member: str, entries: list) -> str:
    """Return the archive name of the regular file ``member`` names, by full name or base name."""
    files = [entry.filename for entry in entries if not entry.is_directory and not entry.is_symlink]
    if member in files:
        return member
    wanted = PurePosixPath(member.replace("\\", "/")).name
    matches = [name for name in files if PurePosixPath(name).name == wanted]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise DataFormatError(archive, f"member {member!r} is ambiguous: it matches {matches}")
    listing = ", ".join(repr(name) for name in files[:20]) + (" ..." if len(files) > 20 else "")
    raise DataFormatError(archive, f"no regular file named {member!r}; the archive holds {listing or 'no files'}")
