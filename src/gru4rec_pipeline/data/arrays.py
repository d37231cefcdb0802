"""Sessions as flat arrays: the format training and evaluation read.

A split with ``n`` sessions and ``m`` events is held as
- ``offsets``   int64[n + 1]: session ``s`` owns events ``offsets[s]:offsets[s + 1]``;
- ``items``     int64[m]:     dense item index into the training vocabulary (0 .. n_items - 1);
- ``times``     float64[m]:   UTC epoch seconds of each event;
- ``session_ids`` int64[n]:   the original SessionId of each session;
- ``vocabulary``:             the fingerprint of the vocabulary the item indices refer to
                              (``Vocabulary.fingerprint``; empty when not known).
Sessions are ordered by start time (ties by SessionId), events within a session by time.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_output

# The sessions stage writes these files; what to do about one that is missing or damaged.
REBUILD = (
    "the sessions stage writes it: delete it and run the workflow again (rule build_sessions), "
    "or run `gru4rec-pipeline sessions`"
)


@dataclass(frozen=True)
class SessionArrays:
    offsets: np.ndarray
    items: np.ndarray
    times: np.ndarray
    session_ids: np.ndarray
    vocabulary: str = ""

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1])

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def session(self, s: int) -> np.ndarray:
        return self.items[self.offsets[s] : self.offsets[s + 1]]

    def validate(self, source: str | Path = "<memory>") -> None:
        if self.offsets.ndim != 1 or len(self.offsets) < 1 or self.offsets[0] != 0:
            raise DataFormatError(source, "offsets must be a 1-d array starting at 0")
        if np.any(np.diff(self.offsets) < 0):
            raise DataFormatError(source, "offsets must be non-decreasing")
        if len(self.items) != self.offsets[-1] or len(self.times) != self.offsets[-1]:
            raise DataFormatError(source, f"offsets end at {self.offsets[-1]} but there are {len(self.items)} items")
        if len(self.session_ids) != self.n_sessions:
            raise DataFormatError(source, f"{len(self.session_ids)} session ids for {self.n_sessions} sessions")

    def save(self, path: str | Path) -> None:
        """Write to ``path`` (.npz) atomically: a temporary file renamed into place."""
        # Through an open file: given a name, numpy would append ".npz" to one without it.
        with atomic_output(path) as temporary, open(temporary, "wb") as stream:
            np.savez(
                stream,
                offsets=self.offsets,
                items=self.items,
                times=self.times,
                session_ids=self.session_ids,
                vocabulary=np.array(self.vocabulary),
            )

    @classmethod
    def load(cls, path: str | Path) -> "SessionArrays":
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"offsets", "items", "times", "session_ids"} - set(data.files)
                if missing:
                    raise DataFormatError(path, f"missing arrays {sorted(missing)}; {REBUILD}")
                arrays = cls(
                    offsets=data["offsets"].astype(np.int64, copy=False),
                    items=data["items"].astype(np.int64, copy=False),
                    times=data["times"].astype(np.float64, copy=False),
                    session_ids=data["session_ids"].astype(np.int64, copy=False),
                    vocabulary=str(data["vocabulary"]) if "vocabulary" in data.files else "",
                )
        except FileNotFoundError:
            raise DataFormatError(path, f"session arrays file not found; {REBUILD}") from None
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise DataFormatError(path, f"damaged session arrays file ({exc}); {REBUILD}") from None
        arrays.validate(path)
        return arrays
