"""Typed readers of the public data sets' raw CSV files, refusing a malformed line by file and line.

Each raw format is a :class:`CsvLayout`: its separator, the columns its header must name, and the type
each column the preprocessing needs is parsed to (pyarrow's CSV parser, in C++, never through Python
objects). The other columns are only counted: a line with too few or too many fields is refused like one
whose value does not parse.

:func:`iter_tables` streams a file: it cuts the file into chunks of whole lines (a memory map released
behind the reader, or, for a gzipped file, a buffer refilled as it is decompressed) and parses each chunk
on its own, so memory holds one chunk and its typed columns, never the file (pyarrow's own streaming
reader keeps dozens of blocks read ahead).

pyarrow does not say reliably which line it failed on, so on the error path only, a second scan finds the
first bad line (blocks of whole lines, then a bisection within the first block that fails) and says what
is wrong with it, in the format's own terms: :class:`~gru4rec_pipeline.errors.DataFormatError` with the
file and the 1-based line (the header is line 1).
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import mmap
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from gru4rec_pipeline.data.datasets.registry import located_raw_file
from gru4rec_pipeline.errors import DataFormatError

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 4 << 20
SCAN_BLOCK_BYTES = 8 << 20


@dataclasses.dataclass(frozen=True)
class CsvLayout:
    """A raw CSV format: the header's columns, the separator, and how the columns read are parsed.

    ``types``: the type of each column a reader may ask for; ``expected``: what a value of that column
    must look like, for the error message; ``nullable``: columns whose empty (or ``null_values``) values
    are missing values rather than errors (an empty text value stays the empty string);
    ``timestamp_formats``: strptime formats of timestamp columns.
    """

    name: str
    columns: tuple[str, ...]
    delimiter: str
    types: dict[str, pa.DataType]
    expected: dict[str, str]
    nullable: frozenset[str] = frozenset()
    null_values: tuple[str, ...] = ("",)
    timestamp_formats: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.delimiter.join(self.columns)


class _MissingValue(Exception):
    """A column that may not be empty has an empty value."""


def _open_binary(path: Path):
    """The file's bytes, decompressed when it is gzipped (``.gz``)."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _check_header(path: Path, layout: CsvLayout) -> int:
    """The header's byte length; DataFormatError (line 1) when it does not name the layout's columns."""
    with _open_binary(path) as stream:
        first = stream.readline(1 << 16)
    if not first.strip():
        raise DataFormatError(path, f"empty file; expected the header line {layout.describe()!r}", line=1)
    text = first.decode("utf-8", errors="replace").rstrip("\r\n").lstrip("\ufeff")
    found = [name.strip('"') for name in text.split(layout.delimiter)]
    if found != list(layout.columns):
        raise DataFormatError(
            path,
            f"the header is {text!r}; expected the {layout.name} header {layout.describe()!r} "
            f"({len(layout.columns)} columns separated by {layout.delimiter!r})",
            line=1,
        )
    return len(first)


def _csv_options(layout: CsvLayout, columns: list[str], block_bytes: int) -> dict:
    """Options that parse headerless data lines of ``layout`` into ``columns``, one thread per chunk."""
    return dict(
        read_options=pa_csv.ReadOptions(column_names=list(layout.columns), block_size=block_bytes, use_threads=False),
        # Values never span lines in these formats, which the chunking and the line search rely on.
        parse_options=pa_csv.ParseOptions(delimiter=layout.delimiter, newlines_in_values=False),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: layout.types[name] for name in columns},
            include_columns=columns,
            null_values=list(layout.null_values),
            # Text stays text: an empty id is refused by _check_required, an empty optional one is a value.
            strings_can_be_null=False,
            timestamp_parsers=list(layout.timestamp_formats) or None,
        ),
    )


def _has_empty_text(array: pa.Array) -> bool:
    """Whether a string or binary array (or a dictionary of them) holds the empty value."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary
    if not (pa.types.is_string(array.type) or pa.types.is_binary(array.type)) or len(array) == 0:
        return False
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=4 * array.offset)
    return bool((offsets[1:] == offsets[:-1]).any())


def _check_required(table: pa.Table, layout: CsvLayout) -> None:
    for name in table.schema.names:
        if name in layout.nullable:
            continue
        column = table.column(name)
        if column.null_count or any(_has_empty_text(chunk) for chunk in column.chunks):
            raise _MissingValue(name)


def _mapped_chunks(path: Path, offset: int, chunk_bytes: int) -> Iterator[pa.Buffer]:
    """The file from ``offset`` on, in chunks of whole lines, from a memory map whose pages are given back
    once read (they stay in the page cache, out of this process's memory)."""
    with open(path, "rb") as stream:
        mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    whole = pa.py_buffer(mapped)
    try:
        total, start, released = len(mapped), offset, 0
        while start < total:
            end = min(start + chunk_bytes, total)
            if end < total:
                end = mapped.rfind(b"\n", start, end) + 1 or mapped.find(b"\n", end) + 1 or total
            yield whole.slice(start, end - start)
            start = end
            done = start - start % mmap.PAGESIZE
            if done > released and hasattr(mmap, "MADV_DONTNEED"):  # not on every system
                mapped.madvise(mmap.MADV_DONTNEED, released, done - released)
                released = done
    finally:
        del whole
        try:
            mapped.close()
        except BufferError:  # a chunk is still referenced (an error on its way up): unmapped when collected
            pass


def _streamed_chunks(path: Path, offset: int, chunk_bytes: int) -> Iterator[pa.Buffer]:
    """The (gzipped) file from ``offset`` on, in chunks of whole lines, through one reused buffer."""
    buffer = bytearray(chunk_bytes)
    with _open_binary(path) as stream:
        stream.read(offset)
        held = 0
        while True:
            if held == len(buffer):  # a line longer than the buffer: a larger one (the old one may be in use)
                buffer = buffer[:held] + bytearray(len(buffer))
            got = stream.readinto(memoryview(buffer)[held:])
            end = held + got
            if got == 0:
                if held:
                    yield pa.py_buffer(memoryview(buffer)[:held])
                return
            cut = buffer.rfind(b"\n", 0, end) + 1
            if cut == 0:
                held = end
                continue
            yield pa.py_buffer(memoryview(buffer)[:cut])
            # The parsed columns do not refer to the chunk, so its bytes can be overwritten (not resized).
            buffer[: end - cut] = buffer[cut:end]
            held = end - cut


def line_chunks(path: Path, offset: int, chunk_bytes: int) -> Iterator[pa.Buffer]:
    """``path`` from byte ``offset`` on, in chunks of about ``chunk_bytes`` that end at a line end (the last one
    may not); each chunk is valid until the next one is asked for."""
    if path.suffix == ".gz":
        return _streamed_chunks(path, offset, chunk_bytes)
    return _mapped_chunks(path, offset, chunk_bytes)


def iter_tables(path: str | Path, layout: CsvLayout, columns: list[str]) -> Iterator[pa.Table]:
    """The ``columns`` of the raw file ``path`` (or ``path.gz``), typed, chunk by chunk in file order.

    Raises DataFormatError naming the file, and the line of the first malformed one.
    """
    path = existing_raw_file(path, layout)
    header_bytes = _check_header(path, layout)
    options = _csv_options(layout, columns, READ_CHUNK_BYTES + (1 << 20))
    rows, started = 0, time.perf_counter()
    try:
        for chunk in line_chunks(path, header_bytes, READ_CHUNK_BYTES):
            table = pa_csv.read_csv(chunk, **options)
            _check_required(table, layout)
            rows += table.num_rows
            yield table
    except (pa.ArrowInvalid, _MissingValue) as exc:
        raise malformed_file_error(path, layout, columns, exc) from None
    if rows == 0:
        raise DataFormatError(path, f"no rows after the header; expected lines {layout.describe()!r}")
    log.info("read %s rows of %s in %.1f s", f"{rows:,}", path, time.perf_counter() - started)


def estimated_rows(path: Path, sample_bytes: int = 1 << 20) -> int:
    """About how many lines ``path`` holds (from its size and the length of its first lines), for sizing the
    arrays its columns go to; a gzipped file's is a guess that the arrays grow past when it falls short."""
    with _open_binary(path) as stream:
        sample = stream.read(sample_bytes)
    lines = max(sample.count(b"\n"), 1)
    size = path.stat().st_size * (4 if path.suffix == ".gz" else 1)
    return int(size / (len(sample) / lines) * 1.02) + 1024


def existing_raw_file(path: str | Path, layout: CsvLayout) -> Path:
    """``path``, or ``path.gz`` when only the gzipped file is there (as some sets are published)."""
    path = Path(path)
    found = located_raw_file(path)
    if found is None:
        raise DataFormatError(path, f"file not found (nor {path.name}.gz); expected the {layout.name} file")
    return found


# ----------------------------------------------------------------------------------------------
# The error path: which line, and what is wrong with it.


def malformed_file_error(path: Path, layout: CsvLayout, columns: list[str], exc: Exception) -> DataFormatError:
    located = find_malformed_line(path, layout, columns)
    if located is None:
        return DataFormatError(path, f"cannot parse as {layout.name} ({layout.describe()!r}): {exc}")
    line_number, problem = located
    return DataFormatError(path, problem, line=line_number)


def find_malformed_line(path: str | Path, layout: CsvLayout, columns: list[str]) -> tuple[int, str] | None:
    """(1-based line number, problem) of the first data line that does not parse, or None."""
    path = Path(path)
    header_bytes = _check_header(path, layout)
    lines_before = 1
    for chunk in line_chunks(path, header_bytes, SCAN_BLOCK_BYTES):
        block = bytes(chunk)
        if not _parses(block, layout, columns):
            line_ends = _line_ends(block)
            good, bad = 0, len(line_ends)  # the first `good` lines parse, the first `bad` do not
            while bad - good > 1:
                middle = (good + bad) // 2
                if _parses(block[: line_ends[middle - 1]], layout, columns):
                    good = middle
                else:
                    bad = middle
            start = line_ends[bad - 2] if bad >= 2 else 0
            return lines_before + bad, describe_problem(block[start : line_ends[bad - 1]], layout, columns)
        lines_before += block.count(b"\n")
    return None


def _line_ends(block: bytes) -> np.ndarray:
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n")) + 1
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(block))
    return ends


def _parses(data: bytes, layout: CsvLayout, columns: list[str]) -> bool:
    if not data.strip():
        return True
    try:
        table = pa_csv.read_csv(pa.py_buffer(data), **_csv_options(layout, columns, SCAN_BLOCK_BYTES + (1 << 20)))
        _check_required(table, layout)
    except (pa.ArrowInvalid, _MissingValue):
        return False
    return True


def describe_problem(line: bytes, layout: CsvLayout, columns: list[str]) -> str:
    """What is wrong with one raw line, in the format's terms."""
    text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
    shown = text if len(text) <= 200 else text[:200] + "..."
    values = text.split(layout.delimiter)
    if len(values) != len(layout.columns):
        return (
            f"expected {len(layout.columns)} fields separated by {layout.delimiter!r} ({layout.describe()}), "
            f"found {len(values)}: {shown!r}"
        )
    for name in columns:
        value = values[layout.columns.index(name)]
        if name not in layout.nullable and value in layout.null_values:
            return f"{name} is empty; expected {layout.expected[name]}: {shown!r}"
        if not _parses(line, layout, [name]):
            return f"{name} {value!r} is not {layout.expected[name]}"
    return f"cannot parse as {layout.name} ({layout.describe()}): {shown!r}"
