"""Compact numpy columns gathered from the raw files' chunks as they are parsed.

The raw files are read chunk by chunk (``raw.iter_tables``); each chunk's columns become compact numpy arrays at
once and the chunk is dropped, so memory holds the columns the preprocessing needs, never the file's table:

- :func:`values`: a primitive arrow array's values as a numpy view, read from its buffer (and
  :func:`present_values`, those of its rows that are not missing);
- :class:`Column`: one array filled chunk by chunk; integer ids kept as int32 while every value fits;
- :class:`ValueCounts`: rows of each value of a dictionary-encoded column, and the rows equal to one value;
- :func:`distinct_count`: distinct integers, for the raw files' counts.

The arrays are read from arrow buffers directly: pyarrow's ``to_numpy`` and ``pa.array`` import pandas, which
this stage does not need (its import alone costs more memory and time than reading a small set).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

INT32 = np.iinfo(np.int32)


def values(array: pa.Array, dtype) -> np.ndarray:
    """The values of a primitive array without missing values, as a numpy view of its buffer."""
    dtype = np.dtype(dtype)
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def present_values(array: pa.Array, dtype) -> np.ndarray:
    """The values of a primitive array's rows that are not missing."""
    data = values(array, dtype)
    if array.null_count == 0:
        return data
    bits = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    present = np.unpackbits(bits, bitorder="little", count=array.offset + len(array))[array.offset :]
    return data[present.view(bool)]


def column_values(column: pa.ChunkedArray, dtype) -> list[np.ndarray]:
    """The values of each chunk of ``column`` (no missing values), as numpy views."""
    return [values(chunk, dtype) for chunk in column.chunks]


def numpy_array(values: np.ndarray, type: pa.DataType) -> pa.Array:
    """An arrow array over a contiguous numpy array of the matching type, without a copy."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(type, len(values), [None, pa.py_buffer(values)])


class Column:
    """A column filled chunk by chunk into one array of about the file's rows (``capacity``; grown by half when
    a chunk does not fit), so each value is copied once. ``integers``: kept as int32 while every value fits,
    widened to int64 the first time one does not."""

    def __init__(self, dtype, capacity: int, integers: bool = False):
        self.data = np.empty(capacity, dtype=np.int32 if integers else dtype)
        self.size = 0
        self.integers = integers

    def _resize(self, capacity: int, dtype) -> None:
        # Untouched rows of np.empty are not resident memory: only the filled part is copied.
        grown = np.empty(capacity, dtype=dtype)
        grown[: self.size] = self.data[: self.size]
        self.data = grown

    def append(self, part: np.ndarray) -> None:
        if self.integers and self.data.dtype == np.int32 and len(part):
            if part.min() < INT32.min or part.max() > INT32.max:
                self._resize(len(self.data), np.int64)
        end = self.size + len(part)
        if end > len(self.data):
            self._resize(max(end, len(self.data) * 3 // 2), self.data.dtype)
        self.data[self.size : end] = part
        self.size = end

    def extend(self, column: pa.ChunkedArray) -> None:
        """Append an integer (or timestamp, or date) arrow column's chunks (no missing values)."""
        for part in column_values(column, np.dtype(f"i{column.type.bit_width // 8}")):
            self.append(part)

    def finish(self) -> np.ndarray:
        return self.data[: self.size]


def _local_indices(chunk: pa.DictionaryArray) -> np.ndarray:
    return values(chunk.indices, np.int32)


class ValueCounts:
    """Rows of each value of a dictionary-encoded text column, chunk by chunk."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def add(self, column: pa.ChunkedArray) -> None:
        for chunk in column.chunks:
            per_entry = np.bincount(_local_indices(chunk), minlength=len(chunk.dictionary))
            for value, count in zip(chunk.dictionary.to_pylist(), per_entry.tolist()):
                if count:
                    self.counts[value] = self.counts.get(value, 0) + count

    def most_frequent_first(self) -> dict[str, int]:
        return dict(sorted(self.counts.items(), key=lambda item: (-item[1], item[0])))


def equal_rows(column: pa.ChunkedArray, value: str) -> np.ndarray:
    """Rows of a dictionary-encoded text column equal to ``value``."""
    parts = []
    for chunk in column.chunks:
        entries = chunk.dictionary.to_pylist()
        indices = _local_indices(chunk)
        parts.append(indices == entries.index(value) if value in entries else np.zeros(len(indices), dtype=bool))
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


def distinct_count(ids: np.ndarray) -> int:
    """The number of distinct integers in ``ids``."""
    if len(ids) == 0:
        return 0
    low, high = int(ids.min()), int(ids.max())
    if high - low <= 8 * len(ids):
        seen = np.zeros(high - low + 1, dtype=bool)
        seen[ids - low if low else ids] = True
        return int(np.count_nonzero(seen))
    ordered = np.sort(ids)
    return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1
