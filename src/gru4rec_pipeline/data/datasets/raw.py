"""Typed readers of the public data sets' raw CSV files, refusing a malformed line by file and line.

Each raw format is a :class:`CsvLayout`: its separator, the columns its header must name, and the type
each column the preprocessing needs is parsed to (pyarrow's streaming CSV reader, in C++, block by block,
never through Python objects). The other columns are only counted: a line with too few or too many fields
is refused like one whose value does not parse.

pyarrow does not say reliably which line it failed on, so on the error path only, a second scan finds the
first bad line (blocks of whole lines, then a bisection within the first block that fails) and says what
is wrong with it, in the format's own terms: :class:`~gru4rec_pipeline.errors.DataFormatError` with the
file and the 1-based line (the header is line 1).
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from gru4rec_pipeline.errors import DataFormatError

log = logging.getLogger(__name__)

READ_BLOCK_BYTES = 8 << 20
SCAN_BLOCK_BYTES = 8 << 20


@dataclasses.dataclass(frozen=True)
class CsvLayout:
    """A raw CSV format: the header's columns, the separator, and how the columns read are parsed.

    ``types``: the type of each column a reader may ask for; ``expected``: what a value of that column
    must look like, for the error message; ``nullable``: columns whose empty (or ``null_values``) values
    are missing values rather than errors; ``timestamp_formats``: strptime formats of timestamp columns.
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


def _csv_options(layout: CsvLayout, columns: list[str], block_bytes: int, header: bool) -> dict:
    return dict(
        read_options=pa_csv.ReadOptions(
            column_names=list(layout.columns), skip_rows=1 if header else 0, block_size=block_bytes
        ),
        # Values never span lines in these formats, which the line search relies on.
        parse_options=pa_csv.ParseOptions(delimiter=layout.delimiter, newlines_in_values=False),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: layout.types[name] for name in columns},
            include_columns=columns,
            null_values=list(layout.null_values),
            strings_can_be_null=True,
            timestamp_parsers=list(layout.timestamp_formats) or None,
        ),
    )


def _check_required(batch: pa.RecordBatch | pa.Table, layout: CsvLayout) -> None:
    for name in batch.schema.names:
        if name not in layout.nullable and batch.column(name).null_count:
            raise _MissingValue(name)


def iter_batches(path: str | Path, layout: CsvLayout, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The ``columns`` of the raw file ``path``, typed, as record batches in file order.

    Raises DataFormatError naming the file, and the line of the first malformed one.
    """
    path = existing_raw_file(path, layout)
    _check_header(path, layout)
    rows, started = 0, time.perf_counter()
    try:
        # A .gz file is decompressed as it is read.
        reader = pa_csv.open_csv(str(path), **_csv_options(layout, columns, READ_BLOCK_BYTES, header=True))
        with reader:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                _check_required(batch, layout)
                rows += batch.num_rows
                yield batch
    except (pa.ArrowInvalid, _MissingValue) as exc:
        raise malformed_file_error(path, layout, columns, exc) from None
    if rows == 0:
        raise DataFormatError(path, f"no rows after the header; expected lines {layout.describe()!r}")
    log.info("read %s rows of %s in %.1f s", f"{rows:,}", path, time.perf_counter() - started)


def existing_raw_file(path: str | Path, layout: CsvLayout) -> Path:
    """``path``, or ``path.gz`` when only the gzipped file is there (as some sets are published)."""
    path = Path(path)
    if path.is_file():
        return path
    zipped = path.with_name(path.name + ".gz")
    if zipped.is_file():
        return zipped
    raise DataFormatError(path, f"file not found (nor {zipped.name}); expected the {layout.name} file")


def read_table(path: str | Path, layout: CsvLayout, columns: list[str]) -> pa.Table:
    """All of :func:`iter_batches` as one table."""
    batches = list(iter_batches(path, layout, columns))
    return pa.Table.from_batches(batches)


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
    for block in _line_blocks(path, SCAN_BLOCK_BYTES, header_bytes):
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


def _line_blocks(path: Path, block_bytes: int, offset: int) -> Iterator[bytes]:
    """The file from ``offset`` on, in blocks that end at a line end (the last one may not)."""
    carry = b""
    with _open_binary(path) as stream:
        stream.read(offset)
        for data in iter(lambda: stream.read(block_bytes), b""):
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry += data
                continue
            yield carry + data[:cut]
            carry = data[cut:]
    if carry:
        yield carry


def _line_ends(block: bytes) -> np.ndarray:
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n")) + 1
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(block))
    return ends


def _parses(data: bytes, layout: CsvLayout, columns: list[str]) -> bool:
    if not data.strip():
        return True
    try:
        table = pa_csv.read_csv(pa.BufferReader(data), **_csv_options(layout, columns, READ_BLOCK_BYTES, False))
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


# ----------------------------------------------------------------------------------------------
# Ids by order of appearance.


def appearance_codes(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Dense codes 0 .. n-1 numbering the distinct values (a missing value is one of them) in the order of
    their first appearance, as ``pandas.unique`` orders them; returns (int64 codes, the n values in order)."""
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    if not chunks:
        return np.zeros(0, dtype=np.int64), pa.array([], type=values.type)
    # One hash table serves all chunks: every chunk carries the same, final dictionary.
    codes = np.empty(len(encoded), dtype=np.int64)
    at = 0
    for chunk in chunks:
        codes[at : at + len(chunk)] = chunk.indices.to_numpy(zero_copy_only=False)
        at += len(chunk)
    return codes, chunks[-1].dictionary
