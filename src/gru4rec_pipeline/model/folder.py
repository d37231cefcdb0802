"""A trained model's folder, and using the model in it: loading ``model.pt`` and checking its vocabulary.

:class:`ModelFolder` is the one place that knows a model folder's file names (``names.MODEL_FOLDER_FILES``): the
weights (``model.pt``), the per-epoch history (``history.csv``), the training's summary (``training.json``), the
training state a retrain continues (``training_state.pt``), the vocabulary it was trained with (``vocab.parquet``,
a retrained model's grown; what ``recommend`` reads by default) and the per-epoch checkpoints while it trains
(``checkpoints/``). Training writes a folder, evaluation, recommendation and a retrain read one; they import this
module, not the training machinery.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_output, read_json, write_json_atomic
from gru4rec_pipeline.model.network import GRU4Rec
from gru4rec_pipeline.names import HISTORY_COLUMNS, MODEL_FOLDER_FILES


@dataclass(frozen=True)
class ModelFolder:
    """The folder ``path`` of one trained model: its files' paths, and reading and writing them."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def of(cls, model_path: str | Path) -> "ModelFolder":
        """The folder of the model file ``model_path``."""
        return cls(Path(model_path).parent)

    @property
    def model(self) -> Path:
        return self.path / MODEL_FOLDER_FILES["model"]

    @property
    def history(self) -> Path:
        return self.path / MODEL_FOLDER_FILES["history"]

    @property
    def summary(self) -> Path:
        return self.path / MODEL_FOLDER_FILES["summary"]

    @property
    def state(self) -> Path:
        return self.path / MODEL_FOLDER_FILES["state"]

    @property
    def vocab(self) -> Path:
        return self.path / MODEL_FOLDER_FILES["vocab"]

    @property
    def checkpoints(self) -> Path:
        return self.path / MODEL_FOLDER_FILES["checkpoints"]

    def load_model(self, device: str | torch.device = "cpu") -> GRU4Rec:
        return load_model(self.model, device)

    def read_summary(self) -> dict:
        return read_json(self.summary, "training summary")

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.summary, summary)

    def write_history(self, history: list[dict]) -> None:
        """``HISTORY_COLUMNS``, then any further columns of the rows (a learning curve's recall@k, mrr@k, eval_s)."""
        extra = [key for key in (history[0] if history else {}) if key not in HISTORY_COLUMNS]
        with atomic_output(self.history) as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*HISTORY_COLUMNS, *extra])
            writer.writeheader()
            writer.writerows(history)

    def remove_checkpoints(self) -> None:
        shutil.rmtree(self.checkpoints, ignore_errors=True)


def load_model(model_path: str | Path, device: str | torch.device = "cpu") -> GRU4Rec:
    """A model written by training (weights only: nothing is unpickled), in evaluation mode."""
    if Path(model_path).is_file() and Path(model_path).stat().st_size == 0:
        raise DataFormatError(model_path, "the model file is empty (0 bytes): a copy or write that failed; train again")
    try:
        payload = torch.load(model_path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DataFormatError(model_path, "model file not found") from None
    except IsADirectoryError:
        raise DataFormatError(model_path, "a directory, not a model file") from None
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no reason given"
        raise DataFormatError(model_path, f"cannot read the model ({type(exc).__name__}: {reason})") from None
    model = GRU4Rec.from_payload(payload, str(model_path)).to(device)
    return model.eval()


def check_vocabulary(model: GRU4Rec, vocabulary: Vocabulary, model_path, vocab_path) -> None:
    """The model was trained with this vocabulary: same items in the same order, else its scores would be
    read under other ItemIds."""
    trained_with = model.vocabulary
    if trained_with is None:
        raise DataFormatError(
            model_path,
            "the model does not record the vocabulary it was trained with (written by an older version); "
            "train it again",
        )
    if trained_with != vocabulary.identity():
        raise DataFormatError(
            vocab_path,
            f"this vocabulary ({vocabulary.n_items} items, fingerprint {vocabulary.fingerprint()[:12]}) is not "
            f"the one {model_path} was trained with ({trained_with['n_items']} items, fingerprint "
            f"{trained_with['fingerprint'][:12]}); use the vocab.parquet of the sessions it was trained on",
        )
