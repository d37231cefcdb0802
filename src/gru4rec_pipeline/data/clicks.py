"""Raw RSC15 clicks (``yoochoose-clicks.dat``) to a typed table and to ``clicks.parquet``.

The raw file has no header and four comma-separated fields per line,
``SessionID,Timestamp,ItemID,Category``, e.g. ``1,2014-04-07T10:51:09.277Z,214536502,0``.
The output has SessionId int64, ItemId int64, Time float64 (UTC epoch seconds, milliseconds
kept) and Category string.

Speed and memory come from pyarrow's streaming CSV reader: typed columns are built block by
block (ISO 8601 timestamps parsed in C++, never through Python objects), and the Parquet
file is written as the blocks arrive. pyarrow's parse errors do not reliably say which line
failed, so when reading fails a second scan, on the error path only, finds the first bad
line and reports it by number.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_output
from gru4rec_pipeline.progress import Progress

log = logging.getLogger(__name__)

# Field names in the order of the raw file, and how each field is parsed. Microsecond
# timestamps accept RSC15's milliseconds and finer ones alike; the zone ("Z") is required.
RAW_FIELDS = ("SessionId", "Timestamp", "ItemId", "Category")
RAW_TYPES = {
    "SessionId": pa.int64(),
    "Timestamp": pa.timestamp("us", tz="UTC"),
    "ItemId": pa.int64(),
    "Category": pa.string(),
}
RAW_LAYOUT = "SessionID,Timestamp,ItemID,Category"
FIELD_PROBLEMS = {
    "SessionId": "SessionID {value!r} is not a 64-bit integer",
    "Timestamp": "Timestamp {value!r} is not an ISO 8601 time with a zone, like 2014-04-07T10:51:09.277Z",
    "ItemId": "ItemID {value!r} is not a 64-bit integer",
    "Category": "Category {value!r} is not valid UTF-8",
}
CLICKS_SCHEMA = pa.schema(
    [("SessionId", pa.int64()), ("ItemId", pa.int64()), ("Time", pa.float64()), ("Category", pa.string())]
)
MICROSECONDS_PER_SECOND = 1e6

# 8 MiB blocks: the streaming reader keeps several blocks in flight; 16 MiB ones were barely
# faster on RSC15-sized input and cost 100-180 MB more peak memory.
READ_BLOCK_BYTES = 8 << 20
ROW_GROUP_ROWS = 1 << 20
SCAN_BLOCK_BYTES = 8 << 20
# Dictionaries only where values repeat (items, categories; not the near-unique times and
# sessions), and LZ4, cheaper to write and to read back than the default Snappy.
PARQUET_OPTIONS = dict(use_dictionary=["ItemId", "Category"], compression="lz4")


def clicks_schema(with_category: bool = True) -> pa.Schema:
    return CLICKS_SCHEMA if with_category else CLICKS_SCHEMA.remove(CLICKS_SCHEMA.get_field_index("Category"))


def read_clicks(path: str | Path, with_category: bool = True) -> pa.Table:
    """Read a raw clicks file into a table with :data:`CLICKS_SCHEMA` (without Category if asked).

    Raises :class:`DataFormatError` naming the file, and the 1-based line for a malformed line.
    """
    batches = list(iter_click_batches(path, with_category=with_category))
    return pa.Table.from_batches(batches, schema=clicks_schema(with_category))


def iter_click_batches(path: str | Path, with_category: bool = True) -> Iterator[pa.RecordBatch]:
    """Yield the clicks of a raw file as typed record batches, in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "file not found")
    if path.stat().st_size == 0:
        raise DataFormatError(path, f"empty file; expected lines {RAW_LAYOUT}")
    fields = _fields(with_category)
    schema = clicks_schema(with_category)
    rows = 0
    started = time.perf_counter()
    with Progress(f"read {path.name}", unit="clicks", unit_scale=True) as bar:
        try:
            reader = pa_csv.open_csv(path, **_csv_options(fields, READ_BLOCK_BYTES))
        except pa.ArrowInvalid as exc:
            raise _malformed_file_error(path, fields, exc) from exc
        with reader:
            while True:
                try:
                    raw = reader.read_next_batch()
                except StopIteration:
                    break
                except pa.ArrowInvalid as exc:
                    raise _malformed_file_error(path, fields, exc) from exc
                rows += raw.num_rows
                bar.update(raw.num_rows)
                yield _typed_batch(raw, schema)
    if rows == 0:
        raise DataFormatError(path, f"no clicks, only empty lines; expected lines {RAW_LAYOUT}")
    log.info("read %s clicks from %s in %.1f s", f"{rows:,}", path, time.perf_counter() - started)


def clicks_to_parquet(dat_path: str | Path, parquet_path: str | Path) -> int:
    """Convert a raw clicks file to Parquet with :data:`CLICKS_SCHEMA`; return the number of clicks.

    Streams: the file is written while it is read, about a million rows per row group.
    The Parquet file appears only when the whole input converted.
    """
    parquet_path = Path(parquet_path)
    parquet_path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with (
        atomic_output(parquet_path) as temporary,
        pq.ParquetWriter(temporary, CLICKS_SCHEMA, **PARQUET_OPTIONS) as writer,
    ):
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for batch in iter_click_batches(dat_path):
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=pending_rows)
                rows += pending_rows
                pending, pending_rows = [], 0
        if pending_rows:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=pending_rows)
            rows += pending_rows
    log.info("wrote %s clicks to %s", f"{rows:,}", parquet_path)
    return rows


def _fields(with_category: bool) -> list[str]:
    return list(RAW_FIELDS) if with_category else [name for name in RAW_FIELDS if name != "Category"]


def _csv_options(fields: list[str], block_bytes: int) -> dict:
    """pyarrow CSV options for the raw format, converting only ``fields``."""
    return dict(
        read_options=pa_csv.ReadOptions(column_names=list(RAW_FIELDS), block_size=block_bytes),
        # No quoting in the raw format: each line is one record, which the line search relies on.
        parse_options=pa_csv.ParseOptions(delimiter=",", quote_char=False),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: RAW_TYPES[name] for name in fields},
            include_columns=fields,
            # An empty field is an error, not a null.
            null_values=[],
            quoted_strings_can_be_null=False,
            strings_can_be_null=False,
        ),
    )


def _typed_batch(raw: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    # int64 microseconds -> float64 is exact below 2**53, and one correctly rounded division
    # gives the double nearest to the exact epoch seconds (1396867869.277, not ...276999).
    # Past 2**53 microseconds (the year 2255) the cast rounds to the nearest double, a microsecond at most, where
    # the safe cast would refuse: such a time is kept (the split stage's checks name an outlier).
    microseconds = pc.cast(raw.column("Timestamp").cast(pa.int64()), pa.float64(), safe=False)
    seconds = pc.divide(microseconds, MICROSECONDS_PER_SECOND)
    columns = {"SessionId": raw.column("SessionId"), "ItemId": raw.column("ItemId"), "Time": seconds}
    if "Category" in schema.names:
        columns["Category"] = raw.column("Category")
    return pa.RecordBatch.from_arrays([columns[name] for name in schema.names], schema=schema)


def _malformed_file_error(path: Path, fields: list[str], exc: pa.ArrowInvalid) -> DataFormatError:
    located = find_malformed_line(path, fields)
    if located is None:
        return DataFormatError(path, f"cannot parse as {RAW_LAYOUT}: {shown_text(str(exc))}")
    line_number, problem = located
    return DataFormatError(path, problem, line=line_number)


def shown_text(text: str, limit: int = 200) -> str:
    """A message as it may be shown: control characters escaped, cut after ``limit`` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def binary_byte(line: bytes) -> tuple[int, int] | None:
    """The 1-based position and the value of the first control byte of ``line`` (tab aside), which no line of text
    holds but binary and compressed files do (a gzip file's second byte, a 7z file's sixth), or None."""
    codes = np.frombuffer(line, dtype=np.uint8)
    control = np.flatnonzero(((codes < 32) & ~np.isin(codes, list(b"\t\r\n"))) | (codes == 127))
    return (int(control[0]) + 1, int(codes[control[0]])) if len(control) else None


def find_malformed_line(path: str | Path, fields: list[str]) -> tuple[int, str] | None:
    """Return (1-based line number, problem) of the first line pyarrow cannot parse, or None.

    Scans blocks of whole lines; in the first block that fails, bisects on the number of
    leading lines that parse. Only runs after a failed read, so it may be slower than one.
    """
    lines_before = 0
    for block in _line_blocks(Path(path), SCAN_BLOCK_BYTES):
        if not _parses(block, fields):
            line_ends = _line_ends(block)
            good, bad = 0, len(line_ends)  # the first `good` lines parse, the first `bad` do not
            while bad - good > 1:
                middle = (good + bad) // 2
                if _parses(block[: line_ends[middle - 1]], fields):
                    good = middle
                else:
                    bad = middle
            line_start = line_ends[bad - 2] if bad >= 2 else 0
            line = block[line_start : line_ends[bad - 1]]
            return lines_before + bad, _describe_problem(line, fields)
        lines_before += block.count(b"\n")
    return None


def _line_blocks(path: Path, block_bytes: int) -> Iterator[bytes]:
    """Yield the file in blocks that end at a line end (the last one may not)."""
    carry = b""
    with open(path, "rb") as stream:
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
    """Offsets just past each line of ``block``, the last line counted even without a newline."""
    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n")) + 1
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(block))
    return ends


def _parses(data: bytes, fields: list[str]) -> bool:
    if not data:
        return True
    try:
        pa_csv.read_csv(pa.BufferReader(data), **_csv_options(fields, READ_BLOCK_BYTES))
    except pa.ArrowInvalid:
        return False
    return True


def _describe_problem(line: bytes, fields: list[str]) -> str:
    """Say what is wrong with one raw line, in the file format's own terms."""
    binary = binary_byte(line.rstrip(b"\r\n"))
    if binary is not None:
        position, value = binary
        return (
            f"not a line of text: byte 0x{value:02x} at byte {position} of the line (a binary or compressed file?); "
            f"expected lines {RAW_LAYOUT}"
        )
    text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
    shown = text if len(text) <= 200 else text[:200] + "..."
    values = text.split(",")
    if len(values) != len(RAW_FIELDS):
        return f"expected {len(RAW_FIELDS)} comma-separated fields {RAW_LAYOUT}, found {len(values)}: {shown!r}"
    for name in fields:
        if not _parses(line, [name]):
            return FIELD_PROBLEMS[name].format(value=values[RAW_FIELDS.index(name)])
    return f"cannot parse as {RAW_LAYOUT}: {shown!r}"
