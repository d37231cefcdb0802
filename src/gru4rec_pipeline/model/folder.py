"""Using a trained model: loading ``model.pt`` and checking it belongs to a vocabulary.

Evaluation and recommendation import this module, not the training machinery.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.model.network import GRU4Rec


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
