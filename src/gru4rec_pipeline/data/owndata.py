"""Your own click log (CSV or Parquet) in the pipeline's ``clicks.parquet`` format.

Output schema: SessionId int64, ItemId int64, Time float64 (UTC epoch seconds), Category
string ("" unless a category column is given). Rows keep the order of the input file.

Ids (``ids``, config key ``own_data.ids``):

- ``integer`` (default): session and item ids must be integers as written (an integer column,
  integral floats, or strings such as ``"42"``; not ``"abc"``, nor ``"007"``, which would come
  back as 7). They are used as they are, so recommendations come back in the user's ids; the
  first other value stops the conversion with its line. Id maps left from an earlier run are removed.
- ``map``: every session and item id, as a string, gets a dense integer id 0 .. n-1 in sorted
  order of the originals, so the same set of ids always maps the same way whatever the row order.
  The maps are written next to the output as ``<out>.session_map.parquet`` /
  ``<out>.item_map.parquet`` (columns SessionId or ItemId, and Original); ``recommend --item-map``
  translates through the item map.

A column is never renumbered because of the values found in it: one stray value in a column of
integers would otherwise turn every id into a different one.

Times: ``epoch`` (seconds since 1970-01-01 UTC, fractions allowed), ``iso`` (ISO-8601
strings, with or without a timezone; without one they are taken as UTC), or ``auto``
(number and timestamp columns as such; a string column as epoch seconds when its first
value is a number, else as ISO-8601).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.files import atomic_outputs
from gru4rec_pipeline.names import ID_MODES, TIME_FORMATS

log = logging.getLogger(__name__)

CLICKS_SCHEMA = pa.schema(
    [("SessionId", pa.int64()), ("ItemId", pa.int64()), ("Time", pa.float64()), ("Category", pa.string())]
)
PARQUET_SUFFIXES = (".parquet", ".pq")
# Epoch seconds beyond this (year 5138) are almost surely milliseconds or microseconds.
MAX_EPOCH_SECONDS = 1e11
INTEGER_PATTERN = r"[+-]?\d+"
CANONICAL_INTEGER_PATTERN = r"0|-?[1-9]\d*"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class _Source:
    """Where a value came from, for error messages: CSV lines (header = line 1) or Parquet rows."""

    def __init__(self, path: Path, is_csv: bool):
        self.path = path
        self.is_csv = is_csv

    def error(self, row: int, message: str) -> DataFormatError:
        if self.is_csv:
            return DataFormatError(self.path, message, line=row + 2)
        return DataFormatError(self.path, f"row {row + 1}: {message}")


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def read_columns(path: str | Path, columns: dict[str, str], sep: str = ",") -> tuple[pd.DataFrame, _Source]:
    """Read the named columns (config key -> column name); CSV columns are read as strings."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "click log does not exist")
    names = list(dict.fromkeys(columns.values()))
    if _is_parquet(path):
        available = pq.read_schema(path).names
    else:
        try:
            with pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=sep)) as reader:
                available = reader.schema.names
        except (pa.ArrowInvalid, StopIteration) as exc:
            raise DataFormatError(path, f"cannot read as CSV with separator {sep!r}: {exc}") from None
    for key, name in columns.items():
        if name not in available:
            where = {"line": 1} if not _is_parquet(path) else {}
            raise DataFormatError(
                path, f"no column '{name}' (own_data.{key}); the file has columns {available}", **where
            )
    if _is_parquet(path):
        frame = pq.read_table(path, columns=names).to_pandas()
    else:
        try:
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter=sep),
                convert_options=pacsv.ConvertOptions(
                    include_columns=names,
                    column_types={name: pa.string() for name in names},
                    strings_can_be_null=True,
                ),
            )
        except pa.ArrowInvalid as exc:
            raise DataFormatError(path, f"malformed CSV: {exc}") from None
        frame = table.to_pandas()
    return frame, _Source(path, not _is_parquet(path))


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_present(values: pd.Series, column: str, source: _Source) -> None:
    missing = np.array(values.isna(), dtype=bool)
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        missing |= np.array(values.fillna("").astype(str).str.strip().eq(""), dtype=bool)
    if missing.any():
        raise source.error(_first(missing), f"column '{column}' is empty ({int(missing.sum())} empty values)")


def _id_error(source: _Source, row: int, column: str, value: str, why: str = "") -> DataFormatError:
    return source.error(
        row,
        f"column '{column}': {value!r} is not an integer id{why}; with own_data.ids: integer (the default) ids "
        "must be integers as written. Set own_data.ids: map (own-data --ids map) to map string ids to integers "
        "(the maps are written next to clicks.parquet)",
    )


def integer_ids(values: pd.Series, column: str, source: _Source) -> np.ndarray:
    """int64 ids of a column that must hold integers, written as such (``"42"``, not ``"042"``).

    The first other value is reported with its line (CSV) or row (Parquet).
    """
    _check_present(values, column, source)
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(np.int64)
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(np.float64)
        fractional = numbers != np.round(numbers)
        if fractional.any():
            row = _first(fractional)
            raise _id_error(source, row, column, f"{numbers[row]:g}")
        return numbers.astype(np.int64)
    text = values.astype(str).str.strip()
    # "007" and "7" (or "+7") would become the same integer: only ids that read back as written pass.
    canonical = text.str.fullmatch(CANONICAL_INTEGER_PATTERN).to_numpy(dtype=bool)
    if not canonical.all():
        row = _first(~canonical)
        signed = bool(re.fullmatch(INTEGER_PATTERN, text.iloc[row]))
        raise _id_error(source, row, column, text.iloc[row], " as written (leading zeros or a sign)" if signed else "")
    # Canonical integers of up to 18 digits fit int64; longer ones are checked one by one.
    long = np.flatnonzero(text.str.len().to_numpy() > 18)
    for row in long:
        if not INT64_MIN <= int(text.iloc[row]) <= INT64_MAX:
            raise _id_error(source, int(row), column, text.iloc[row], " (outside the 64-bit range)")
    return text.astype(np.int64).to_numpy(np.int64)


def mapped_ids(values: pd.Series, column: str, source: _Source) -> tuple[np.ndarray, pd.DataFrame]:
    """Dense int64 ids 0 .. n-1 in sorted order of the original ids as strings, and the mapping (id, Original)."""
    _check_present(values, column, source)
    if pd.api.types.is_float_dtype(values) and (values == np.round(values)).all():
        values = values.astype(np.int64)  # 3.0 in a Parquet float column is the id "3"
    text = values.astype(str).str.strip()
    originals, codes = np.unique(text.to_numpy(dtype=object).astype(str), return_inverse=True)
    mapping = pd.DataFrame({"id": np.arange(len(originals), dtype=np.int64), "Original": originals.astype(object)})
    log.info("column '%s': mapped %d distinct ids to 0..%d", column, len(originals), len(originals) - 1)
    return codes.astype(np.int64), mapping


def _epoch_from_numbers(numbers: np.ndarray, column: str, source: _Source) -> np.ndarray:
    bad = ~np.isfinite(numbers) | (numbers < 0)
    if bad.any():
        raise source.error(_first(bad), f"column '{column}': {numbers[bad][0]} is not a valid epoch time in seconds")
    too_large = numbers > MAX_EPOCH_SECONDS
    if too_large.any():
        raise source.error(
            _first(too_large),
            f"column '{column}': {numbers[too_large][0]:.0f} is past the year 5000 as epoch seconds; "
            "milliseconds? give seconds (divide by 1000) or ISO-8601 strings",
        )
    return numbers.astype(np.float64)


def _epoch_from_datetimes(stamps: pd.Series) -> np.ndarray:
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    # Whole microseconds divided once: the float nearest to the time (no rounding drift).
    micros = stamps.to_numpy().astype("datetime64[us]").astype(np.int64)
    return micros / 1e6


def epoch_seconds(values: pd.Series, column: str, source: _Source, time_format: str = "auto") -> np.ndarray:
    """UTC epoch seconds (float64) from numbers, timestamps or strings; see the module docstring."""
    if time_format not in TIME_FORMATS:
        raise ConfigError("own_data.time_format", f"must be one of {', '.join(TIME_FORMATS)}, got {time_format!r}")
    _check_present(values, column, source)
    if pd.api.types.is_datetime64_any_dtype(values):
        return _epoch_from_datetimes(values)
    if pd.api.types.is_numeric_dtype(values):
        if time_format == "iso":
            raise source.error(0, f"column '{column}' holds numbers, but time_format is iso (ISO-8601 strings)")
        return _epoch_from_numbers(values.to_numpy(np.float64), column, source)
    text = values.astype(str).str.strip()
    if time_format == "auto":
        # The first value decides, so a stray bad value is reported as such rather than
        # turning a column of epoch seconds into a failed ISO-8601 parse.
        time_format = "epoch" if pd.notna(pd.to_numeric(text.iloc[0], errors="coerce")) else "iso"
    if time_format == "epoch":
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
        bad = np.isnan(numbers)
        if bad.any():
            raise source.error(_first(bad), f"column '{column}': '{text.iloc[_first(bad)]}' is not a number of seconds")
        return _epoch_from_numbers(numbers, column, source)
    stamps = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        row = _first(bad)
        raise source.error(
            row, f"column '{column}': '{text.iloc[row]}' is not an ISO-8601 time (e.g. 2014-04-07T10:51:09.277Z)"
        )
    return _epoch_from_datetimes(stamps)


def mapping_path(out_parquet: str | Path, kind: str) -> Path:
    """Where the id mapping of ``kind`` (session or item) lives, next to the output."""
    out_parquet = Path(out_parquet)
    return out_parquet.with_name(f"{out_parquet.stem}.{kind}_map.parquet")


def own_clicks_to_parquet(
    path: str | Path,
    out_parquet: str | Path,
    session_col: str = "SessionId",
    item_col: str = "ItemId",
    time_col: str = "Time",
    time_format: str = "auto",
    sep: str = ",",
    category_col: str | None = None,
    ids: str = "integer",
) -> int:
    """Convert a click log to ``clicks.parquet`` (and with ``ids="map"`` the id maps); returns the row count."""
    if time_format not in TIME_FORMATS:
        raise ConfigError("own_data.time_format", f"must be one of {', '.join(TIME_FORMATS)}, got {time_format!r}")
    if ids not in ID_MODES:
        raise ConfigError("own_data.ids", f"must be one of {', '.join(ID_MODES)}, got {ids!r}")
    columns = {"session_column": session_col, "item_column": item_col, "time_column": time_col}
    if category_col:
        columns["category_column"] = category_col
    frame, source = read_columns(path, columns, sep)
    if frame.empty:
        raise DataFormatError(path, "the click log has no rows")
    session_map = item_map = None
    if ids == "map":
        session_ids, session_map = mapped_ids(frame[session_col], session_col, source)
        item_ids, item_map = mapped_ids(frame[item_col], item_col, source)
    else:
        session_ids = integer_ids(frame[session_col], session_col, source)
        item_ids = integer_ids(frame[item_col], item_col, source)
    times = epoch_seconds(frame[time_col], time_col, source, time_format)
    if category_col:
        category = frame[category_col].fillna("").astype(str).to_numpy(dtype=object)
    else:
        category = np.full(len(frame), "", dtype=object)
    table = pa.Table.from_arrays(
        [pa.array(session_ids), pa.array(item_ids), pa.array(times), pa.array(category, type=pa.string())],
        schema=CLICKS_SCHEMA,
    )

    out_parquet = Path(out_parquet)
    out_parquet.parent.mkdir(parents=True, exist_ok=True)
    with atomic_outputs() as staged:
        for kind, id_column, mapping in (("session", "SessionId", session_map), ("item", "ItemId", item_map)):
            target = mapping_path(out_parquet, kind)
            if mapping is None:
                target.unlink(missing_ok=True)
                continue
            mapping_table = pa.Table.from_pandas(mapping.rename(columns={"id": id_column}), preserve_index=False)
            pq.write_table(mapping_table, staged.temporary(target))
        pq.write_table(table, staged.temporary(out_parquet))
    log.info("%s: %d clicks written to %s", path, len(table), out_parquet)
    return len(table)
