"""Codes numbering a text column's distinct values in the order of their first appearance, chunk by chunk.

As ``pandas.unique`` orders them, which is how the authors' scripts number Coveo's session and product hashes. The
CSV parser encodes each chunk on its own: its dictionary lists the chunk's values in the order they first appear
in it. Chunks wait until their dictionaries hold about as many entries as the values seen so far, then are coded
at once (hashing work goes with the values, not the rows):

- fixed-width values (hashes: every non-empty value of a width that is a multiple of 8 bytes) go by a 64-bit
  fingerprint of their bytes: the waiting entries' fingerprints are sorted (numpy, no Python objects) and looked
  up among those of the values seen, and every match is checked byte for byte, so the codes are exact;
- other values, or a fingerprint shared by two different values (about one chance in 10^8 at Coveo's size),
  go to arrow's hashing of the values seen and the waiting dictionaries one after the other, which is exact but
  hashes the values seen again at each merge: from then on, the column is coded that way.

Either way a value's code is the place of its first occurrence among the chunks' dictionaries in file order,
which is its place in the file's order of first appearance.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from gru4rec_pipeline.data.datasets.columns import Column, values

MIX = np.uint64(0x9E3779B97F4A7C15)
LENGTH_MIX = np.uint64(0xC2B2AE3D27D4EB4F)


class _NotFixedWidth(Exception):
    pass


def _entries(dictionary: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(each entry's length, the entries' bytes as rows of 64-bit words, zero for an empty entry: as many words as
    the non-empty entries have, none when there are none); _NotFixedWidth when their widths differ or are not
    multiples of 8 bytes."""
    k = len(dictionary)
    offsets = np.frombuffer(dictionary.buffers()[1], dtype=np.int32, count=k + 1, offset=4 * dictionary.offset)
    lengths = np.diff(offsets)
    filled = lengths > 0
    widths = lengths[filled]
    width = int(widths[0]) if len(widths) else 0
    if width % 8 or (widths != width).any():
        raise _NotFixedWidth
    data = np.frombuffer(dictionary.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    words = np.zeros((k, width // 8), dtype=np.uint64)
    words[filled] = data.view(np.uint64).reshape(-1, width // 8) if width else data[:0].view(np.uint64).reshape(0, 0)
    return lengths, words


def _widened(words: np.ndarray, width: int) -> np.ndarray:
    """Entries of at most ``width`` words, as wide: only entries of no words (empty ones) are widened."""
    if words.shape[1] == width:
        return words
    if words.shape[1]:
        raise _NotFixedWidth
    return np.zeros((words.shape[0], width), dtype=np.uint64)


def fingerprints(lengths: np.ndarray, words: np.ndarray) -> np.ndarray:
    """A 64-bit fingerprint of each entry's length and bytes (as words)."""
    hashes = lengths.astype(np.uint64) * LENGTH_MIX
    for column in range(words.shape[1]):
        hashes ^= words[:, column]
        hashes *= MIX
        hashes ^= hashes >> np.uint64(29)
    return hashes


class AppearanceCodes:
    """The int32 code of every row of a dictionary-encoded text column (:meth:`finish`), and the distinct values in
    code order (:meth:`values`)."""

    def __init__(self, value_type: pa.DataType, capacity: int, pending_entries: int = 1 << 18):
        self.value_type = value_type
        self.codes = Column(np.int32, capacity)
        self.pending: list[pa.DictionaryArray] = []
        self.pending_count = 0
        self.min_pending = pending_entries
        self.n_values = 0
        # Fingerprint mode: the fingerprints seen, sorted, with their codes; each code's length and bytes.
        self.fixed_width = True
        self.sorted_hashes = np.zeros(0, dtype=np.uint64)
        self.sorted_codes = np.zeros(0, dtype=np.int32)
        self.lengths = np.zeros(0, dtype=np.int32)
        self.rows = np.zeros((0, 0), dtype=np.uint64)
        # Exact mode: the values seen, in code order.
        self.seen: pa.Array | None = None

    def append(self, column: pa.ChunkedArray) -> None:
        for chunk in column.chunks:
            self.pending.append(chunk)
            self.pending_count += len(chunk.dictionary)
        if self.pending_count >= max(self.min_pending, self.n_values):
            self._merge()

    def finish(self) -> np.ndarray:
        """The code of every row appended."""
        self._merge()
        return self.codes.finish()

    def values(self) -> pa.Array:
        """The distinct values in code order."""
        if not self.fixed_width:
            return self.seen if self.seen is not None else _empty(self.value_type)
        lengths = self.lengths[: self.n_values]
        rows = np.ascontiguousarray(self.rows[: self.n_values]).view(np.uint8)
        data = rows[np.arange(rows.shape[1]) < lengths[:, None]]
        offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        return pa.Array.from_buffers(
            self.value_type, len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())]
        )

    def _merge(self) -> None:
        if not self.pending:
            return
        if self.fixed_width:
            try:
                entry_codes = self._fingerprint_codes()
            except _NotFixedWidth:
                self.seen, self.fixed_width = self.values(), False
                self.rows = self.lengths = None
        if not self.fixed_width:
            entry_codes = self._exact_codes()
        at = 0
        for chunk in self.pending:
            self.codes.append(entry_codes[at : at + len(chunk.dictionary)][values(chunk.indices, np.int32)])
            at += len(chunk.dictionary)
        self.pending, self.pending_count = [], 0

    def _exact_codes(self) -> np.ndarray:
        # Imported here: only the sets whose ids are text need it (it costs memory and time to import).
        import pyarrow.compute as pc

        seen = self.seen if self.seen is not None else _empty(self.value_type)
        encoded = pc.dictionary_encode(pa.concat_arrays([seen, *(chunk.dictionary for chunk in self.pending)]))
        self.seen = encoded.dictionary
        self.n_values = len(self.seen)
        return values(encoded.indices, np.int32)[len(seen) :]

    def _fingerprint_codes(self) -> np.ndarray:
        parts = [_entries(chunk.dictionary) for chunk in self.pending]
        width = max(self.rows.shape[1], *(part[1].shape[1] for part in parts))
        lengths = np.concatenate([part[0] for part in parts])
        words = np.concatenate([_widened(part[1], width) for part in parts])
        del parts
        rows = _widened(self.rows, width)
        hashes = fingerprints(lengths, words)
        distinct, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        # Every entry has the bytes of the first entry of its fingerprint (else two values share one).
        repeated = np.flatnonzero(first[inverse] != np.arange(len(inverse)))
        _check_same(lengths[repeated], words[repeated], lengths[first[inverse[repeated]]],
                    words[first[inverse[repeated]]])  # fmt: skip
        at = np.searchsorted(self.sorted_hashes, distinct)
        found = np.zeros(len(distinct), dtype=bool)
        inside = at < len(self.sorted_hashes)
        found[inside] = self.sorted_hashes[at[inside]] == distinct[inside]
        codes = np.empty(len(distinct), dtype=np.int32)
        codes[found] = self.sorted_codes[at[found]]
        _check_same(self.lengths[codes[found]], rows[codes[found]], lengths[first[found]], words[first[found]])
        new = np.flatnonzero(~found)
        by_appearance = new[np.argsort(first[new], kind="stable")]
        codes[by_appearance] = np.arange(self.n_values, self.n_values + len(new), dtype=np.int32)
        # The new values: their codes and fingerprints in the sorted index, their bytes in code order.
        self.sorted_hashes = np.insert(self.sorted_hashes, at[new], distinct[new])
        self.sorted_codes = np.insert(self.sorted_codes, at[new], codes[new])
        self.rows = np.concatenate([rows[: self.n_values], words[first[by_appearance]]])
        self.lengths = np.concatenate([self.lengths[: self.n_values], lengths[first[by_appearance]]])
        self.n_values += len(new)
        return codes[inverse]


def _check_same(lengths: np.ndarray, rows: np.ndarray, other_lengths: np.ndarray, other_rows: np.ndarray) -> None:
    """_NotFixedWidth unless the entries (lengths and words) are the same values (two values share a fingerprint)."""
    if not (np.array_equal(lengths, other_lengths) and np.array_equal(rows, other_rows)):
        raise _NotFixedWidth


def _empty(value_type: pa.DataType) -> pa.Array:
    return pa.Array.from_buffers(value_type, 0, [None, pa.py_buffer(np.zeros(1, np.int32)), pa.py_buffer(b"")])


class IntegerAppearanceCodes:
    """The int32 code of every row of an integer column numbering its distinct values in the order of their first
    appearance, and those values in code order: rows wait in batches of ``pending_rows``, whose distinct values are
    sorted and looked up among the values seen (kept sorted), so no value is hashed."""

    def __init__(self, capacity: int, pending_rows: int = 1 << 18):
        self.codes = Column(np.int32, capacity)
        self.pending: list[np.ndarray] = []
        self.pending_count = 0
        self.min_pending = pending_rows
        self.sorted_values = np.zeros(0, dtype=np.int64)
        self.sorted_codes = np.zeros(0, dtype=np.int32)
        self.n_values = 0

    def append(self, ids: np.ndarray) -> None:
        self.pending.append(ids)
        self.pending_count += len(ids)
        if self.pending_count >= self.min_pending:
            self._merge()

    def finish(self) -> np.ndarray:
        self._merge()
        return self.codes.finish()

    def values(self) -> np.ndarray:
        """The distinct values in code order."""
        ordered = np.empty(self.n_values, dtype=np.int64)
        ordered[self.sorted_codes] = self.sorted_values
        return ordered

    def _merge(self) -> None:
        if not self.pending:
            return
        ids = np.concatenate(self.pending)
        self.pending, self.pending_count = [], 0
        distinct, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        del ids
        at = np.searchsorted(self.sorted_values, distinct)
        found = np.zeros(len(distinct), dtype=bool)
        inside = at < len(self.sorted_values)
        found[inside] = self.sorted_values[at[inside]] == distinct[inside]
        codes = np.empty(len(distinct), dtype=np.int32)
        codes[found] = self.sorted_codes[at[found]]
        new = np.flatnonzero(~found)
        by_appearance = new[np.argsort(first[new], kind="stable")]
        codes[by_appearance] = np.arange(self.n_values, self.n_values + len(new), dtype=np.int32)
        self.n_values += len(new)
        self.sorted_values = np.insert(self.sorted_values, at[new], distinct[new])
        self.sorted_codes = np.insert(self.sorted_codes, at[new], codes[new])
        self.codes.append(codes[inverse])
