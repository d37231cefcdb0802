"""The data sets' array building blocks against plain numpy and pandas: numbering by first appearance, the
packed sorts, the tie order, in-place compaction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from gru4rec_pipeline.data.datasets import appearance
from gru4rec_pipeline.data.datasets.appearance import AppearanceCodes, IntegerAppearanceCodes
from gru4rec_pipeline.data.datasets.arrays import compress_in_place, dense_ranks
from gru4rec_pipeline.data.datasets.sessionize import sort_by_group_time, sort_packed, sort_ties_by_item


def dictionary_chunks(texts: list[bytes], chunk_rows: int) -> list[pa.ChunkedArray]:
    """The texts as the CSV parser hands them over: chunk by chunk, each with its own dictionary."""
    columns = []
    for start in range(0, len(texts), chunk_rows):
        part = texts[start : start + chunk_rows]
        local = list(dict.fromkeys(part))
        indices = np.array([local.index(text) for text in part], dtype=np.int32)
        offsets = np.zeros(len(local) + 1, dtype=np.int32)
        np.cumsum([len(text) for text in local], out=offsets[1:])
        dictionary = pa.Array.from_buffers(
            pa.binary(), len(local), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(local))]
        )
        indices_array = pa.Array.from_buffers(pa.int32(), len(part), [None, pa.py_buffer(indices)])
        columns.append(pa.chunked_array([pa.DictionaryArray.from_arrays(indices_array, dictionary)]))
    return columns


def random_texts(rng, n: int, distinct: int, width: int | None) -> list[bytes]:
    pool = [rng.bytes(width) if width is not None else rng.bytes(int(rng.integers(1, 30))) for _ in range(distinct)]
    pool[3] = b""  # an empty value (a page view without a product) among them
    return [pool[i] for i in rng.zipf(1.3, n) % distinct]


def coded(texts: list[bytes], chunk_rows: int, pending: int) -> tuple[np.ndarray, list[bytes], AppearanceCodes]:
    coder = AppearanceCodes(pa.binary(), capacity=len(texts) // 2, pending_entries=pending)
    for column in dictionary_chunks(texts, chunk_rows):
        coder.append(column)
    codes = coder.finish()
    return codes, coder.values().to_pylist(), coder


@pytest.mark.parametrize("width", [64, 8, None], ids=["hashes", "words", "varying"])
def test_text_codes_number_values_by_first_appearance(width):
    rng = np.random.default_rng(width or 0)
    texts = random_texts(rng, 5000, 700, width)
    codes, values, coder = coded(texts, chunk_rows=97, pending=150)
    expected, uniques = pd.factorize(pd.Series(texts, dtype=object))
    np.testing.assert_array_equal(codes, expected)
    assert values == list(uniques)
    assert coder.fixed_width == (width is not None)


def test_a_shared_fingerprint_falls_back_to_exact_codes(monkeypatch):
    rng = np.random.default_rng(5)
    texts = random_texts(rng, 3000, 400, 64)
    # Every value the same fingerprint from the second merge on: the byte check must catch it.
    real = appearance.fingerprints
    calls = []

    def colliding(lengths, matrix):
        calls.append(len(lengths))
        hashes = real(lengths, matrix)
        return hashes if len(calls) == 1 else np.zeros_like(hashes)

    monkeypatch.setattr(appearance, "fingerprints", colliding)
    codes, values, coder = coded(texts, chunk_rows=50, pending=100)
    expected, uniques = pd.factorize(pd.Series(texts, dtype=object))
    np.testing.assert_array_equal(codes, expected)
    assert values == list(uniques) and not coder.fixed_width and len(calls) == 2


def test_integer_codes_number_values_by_first_appearance():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 10**12, 3000)[rng.zipf(1.2, 40_000) % 3000]
    coder = IntegerAppearanceCodes(capacity=100, pending_rows=777)
    for start in range(0, len(ids), 1000):
        coder.append(ids[start : start + 1000])
    expected, uniques = pd.factorize(ids)
    np.testing.assert_array_equal(coder.finish(), expected)
    np.testing.assert_array_equal(coder.values(), uniques)


def lexsorted(*keys):
    """``np.lexsort`` with the first key most significant (stable: ties in row order)."""
    return np.lexsort(keys[::-1])


@pytest.mark.parametrize(
    ("groups_high", "ticks_high", "time_ordered"),
    [(500, 10**6, True), (500, 10**6, False), (2**30, 2**40, False)],
    ids=["rows-for-time", "group-time-row", "argsort"],
)
def test_sort_by_group_time_is_a_stable_sort(groups_high, ticks_high, time_ordered):
    rng = np.random.default_rng(2)
    n = 20_000
    groups = rng.integers(-7, groups_high, n).astype(np.int64)
    ticks = rng.integers(0, ticks_high, n // 3)[rng.integers(0, n // 3, n)]  # repeated times: ties
    if time_ordered:
        ticks.sort()
    items, flags = rng.integers(0, 50, n).astype(np.int32), rng.random(n) < 0.5
    order = lexsorted(groups, ticks)
    expected = [groups[order], ticks[order], items[order], flags[order]]
    got = sort_by_group_time(groups.copy(), ticks.copy(), items.copy(), flags.copy())
    for column, want in zip(got, expected):
        np.testing.assert_array_equal(column, want)


def test_sort_packed_and_ties_by_item_order_by_all_three():
    rng = np.random.default_rng(3)
    n = 10_000
    columns = [rng.integers(0, 300, n), rng.integers(10**9, 10**9 + 50, n), rng.integers(0, 40, n)]
    order = lexsorted(*columns)
    packed = [column.copy() for column in columns]
    assert sort_packed(packed)
    for column, original in zip(packed, columns):
        np.testing.assert_array_equal(column, original[order])
    # The same order in two steps: by group and time, then ties by item.
    groups, ticks, items = sort_by_group_time(*(column.copy() for column in columns))
    sort_ties_by_item(groups, ticks, items)
    for column, original in zip((groups, ticks, items), columns):
        np.testing.assert_array_equal(column, original[order])
    assert not sort_packed([rng.integers(0, 2**40, 10), rng.integers(0, 2**40, 10)])


def test_compress_in_place_and_dense_ranks(monkeypatch):
    from gru4rec_pipeline.data.datasets import arrays

    monkeypatch.setattr(arrays, "BLOCK_ROWS", 7)
    rng = np.random.default_rng(4)
    values, rows = rng.integers(0, 100, 50), rng.random(50) < 0.6
    expected = values[rows]
    np.testing.assert_array_equal(compress_in_place(values, rows), expected)
    for ids in (rng.integers(5, 60, 40), rng.integers(0, 10**12, 40)):
        ranks, distinct = dense_ranks(ids)
        np.testing.assert_array_equal(distinct, np.unique(ids))
        np.testing.assert_array_equal(distinct[ranks], ids)
