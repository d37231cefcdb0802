"""Dense integer codes of id columns, and counts and masks over them: the vectorized core of the data stages.

Ids (RSC15 item ids span ~4e8) become dense codes 0 .. n-1 once; then per-session and per-item counts are
``np.bincount`` calls and filters are boolean masks over the rows, with no per-row Python. Row-level work
runs in blocks of ``CHUNK_ROWS`` rows (see :func:`row_blocks`).
"""

from __future__ import annotations

import numpy as np

# Row-level work goes through these helpers in blocks of CHUNK_ROWS rows: numpy turns index
# arrays into intp (int64) before bincount or fancy indexing, so whole-array calls on the 33M
# RSC15 rows would each allocate a 264 MB temporary; in blocks the codes stay int32.
CHUNK_ROWS = 1 << 22


def row_blocks(n: int):
    return (slice(start, min(start + CHUNK_ROWS, n)) for start in range(0, n, CHUNK_ROWS))


def _code_dtype(n_bins: int):
    return np.int32 if n_bins < 2**31 else np.int64


def dense_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Map integer ids to dense codes (int32 when they fit): returns (codes, number of codes).

    Sorted ids (session ids of a sorted split) are numbered by run, compact id ranges shifted
    by their minimum (codes of absent ids stay unused), other ids looked up in a hash index of
    their distinct values (RSC15 item ids span ~4e8).
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int32), 0
    new_run = np.empty(n, dtype=bool)
    new_run[0] = True
    np.not_equal(values[1:], values[:-1], out=new_run[1:])
    if not (values[1:] < values[:-1]).any():
        codes = np.cumsum(new_run, dtype=_code_dtype(n))
        codes -= 1
        return codes, int(codes[-1]) + 1
    del new_run
    low, high = int(values.min()), int(values.max())
    span = high - low + 1
    if span <= 2 * n + 1024:
        codes = np.empty(n, dtype=_code_dtype(span))
        for block in row_blocks(n):
            np.subtract(values[block], low, out=codes[block], casting="unsafe")
        return codes, span
    # Imported here: the stages that need only the blocks (the public data sets' split stage, through the test window
    # check) import no pandas.
    import pandas as pd

    index = pd.Index(pd.unique(values))
    codes = np.empty(n, dtype=_code_dtype(len(index)))
    for block in row_blocks(n):
        codes[block] = index.get_indexer(values[block])
    return codes, len(index)


def count_codes(codes: np.ndarray, n_bins: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Occurrences of each code (among ``rows`` when given)."""
    counts = np.zeros(n_bins, dtype=np.int64)
    for block in row_blocks(len(codes)):
        selected = codes[block] if rows is None else codes[block][rows[block]]
        counts += np.bincount(selected, minlength=n_bins)
    return counts


def codes_present(codes: np.ndarray, n_bins: int, rows: np.ndarray) -> np.ndarray:
    """Which codes occur among ``rows``."""
    seen = np.zeros(n_bins, dtype=bool)
    for block in row_blocks(len(codes)):
        seen[codes[block][rows[block]]] = True
    return seen


def lookup_codes(flags: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``flags[codes]`` for a per-code boolean table."""
    out = np.empty(len(codes), dtype=bool)
    for block in row_blocks(len(codes)):
        out[block] = flags[codes[block]]
    return out
