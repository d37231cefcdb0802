"""The item vocabulary: which items a model knows, their dense indices and their training support.

Built from the training split: its distinct ItemIds in ascending order get the indices 0 .. n_items - 1,
and each item's support is its number of training events (the negative sampler draws by it). Stored as
``vocab.parquet`` with the columns ItemId, ItemIdx and Support (int64); every reader goes through
:meth:`Vocabulary.load`, which checks the file.

:meth:`Vocabulary.fingerprint` identifies the ItemId order, which is what gives an index its meaning:
a model records the fingerprint of the vocabulary it was trained with, and whatever reads the model's
scores with a vocabulary (evaluation, recommendation) refuses one with another fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_output

VOCAB_SCHEMA = pa.schema([("ItemId", pa.int64()), ("ItemIdx", pa.int64()), ("Support", pa.int64())])
EXPECTED = "expected columns ItemId, ItemIdx, Support (int64), one row per item, ItemIdx 0 .. n_items - 1"


@dataclass(frozen=True)
class Vocabulary:
    """``item_ids[i]`` is the ItemId of index ``i``, ``support[i]`` its training events."""

    item_ids: np.ndarray
    support: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return self.n_items

    @classmethod
    def from_item_ids(cls, item_ids: np.ndarray) -> "Vocabulary":
        """The items occurring in ``item_ids`` (the training split's ItemId column) and their counts."""
        distinct, support = np.unique(np.asarray(item_ids, dtype=np.int64), return_counts=True)
        return cls(distinct, support.astype(np.int64))

    def index_of(self, item_ids: np.ndarray) -> np.ndarray:
        """The index of each ItemId, -1 for items not in the vocabulary (int64, same shape)."""
        return (
            pd.Index(self.item_ids)
            .get_indexer(np.asarray(item_ids, dtype=np.int64).ravel())
            .reshape(np.shape(item_ids))
        )

    def item_of(self, indices: np.ndarray) -> np.ndarray:
        """The ItemId of each index."""
        return self.item_ids[np.asarray(indices, dtype=np.int64)]

    def fingerprint(self) -> str:
        """SHA-256 of the ItemIds in index order: equal exactly when two vocabularies number items alike."""
        return hashlib.sha256(np.ascontiguousarray(self.item_ids, dtype="<i8").tobytes()).hexdigest()

    def identity(self) -> dict:
        """What a model stores to name the vocabulary it was trained with."""
        return {"n_items": self.n_items, "fingerprint": self.fingerprint()}

    def check_indices(self, arrays, arrays_path, vocab_path) -> None:
        """Session arrays (``SessionArrays``) were built with this vocabulary: their item indices mean its items."""
        if arrays.vocabulary and arrays.vocabulary != self.fingerprint():
            raise DataFormatError(
                arrays_path,
                f"its item indices refer to another vocabulary than {vocab_path} (fingerprint "
                f"{arrays.vocabulary[:12]}, not {self.fingerprint()[:12]}); use the vocab.parquet written with it",
            )
        if arrays.n_events and (arrays.items.min() < 0 or arrays.items.max() >= self.n_items):
            raise DataFormatError(
                arrays_path,
                f"item indices {arrays.items.min()}..{arrays.items.max()} do not fit the {self.n_items} items "
                f"of {vocab_path}",
            )

    def validate(self, source: str | Path = "<vocabulary>") -> None:
        if self.item_ids.ndim != 1 or self.support.shape != self.item_ids.shape:
            raise DataFormatError(source, f"ItemId and Support must be columns of one length; {EXPECTED}")
        if self.n_items == 0:
            raise DataFormatError(source, "the vocabulary has no items (the training split is empty)")
        if len(np.unique(self.item_ids)) != self.n_items:
            raise DataFormatError(source, f"an ItemId occurs in more than one row; {EXPECTED}")
        if np.any(self.support < 0):
            raise DataFormatError(source, "Support must not be negative")

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"ItemId": self.item_ids, "ItemIdx": np.arange(self.n_items, dtype=np.int64), "Support": self.support}
        )

    def save(self, path: str | Path) -> None:
        """Write ``vocab.parquet`` atomically."""
        self.validate(path)
        table = pa.Table.from_pandas(self.to_frame(), schema=VOCAB_SCHEMA, preserve_index=False)
        with atomic_output(path) as temporary:
            pq.write_table(table, temporary)

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        path = Path(path)
        if not path.exists():
            raise DataFormatError(path, "vocabulary file not found")
        try:
            frame = pq.read_table(path).to_pandas()
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataFormatError(path, f"not a parquet file ({exc}); {EXPECTED}") from None
        missing = [column for column in VOCAB_SCHEMA.names if column not in frame.columns]
        if missing:
            raise DataFormatError(path, f"missing columns {missing}; {EXPECTED}")
        if any(frame[column].dtype.kind not in "iu" for column in VOCAB_SCHEMA.names):
            raise DataFormatError(path, f"non-integer columns {dict(frame.dtypes.astype(str))}; {EXPECTED}")
        index = frame["ItemIdx"].to_numpy(np.int64)
        if not np.array_equal(np.sort(index), np.arange(len(index))):
            raise DataFormatError(path, f"ItemIdx is not a permutation of 0 .. {len(index) - 1}; {EXPECTED}")
        order = np.argsort(index)
        vocabulary = cls(frame["ItemId"].to_numpy(np.int64)[order], frame["Support"].to_numpy(np.int64)[order])
        vocabulary.validate(path)
        return vocabulary
