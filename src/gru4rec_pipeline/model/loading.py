"""Using a trained model: choosing the device, loading ``model.pt``, checking it belongs to a vocabulary.

Evaluation and recommendation import this module, not the training machinery.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.model.network import GRU4Rec


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was requested but no CUDA device is available")
    return torch.device(device)


def configure_threads(threads: int) -> None:
    """Torch uses exactly ``threads`` CPU threads (a job's share of the machine, not all of it)."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass  # can only be set once per process, before any parallel work


def load_model(model_path: str | Path, device: str | torch.device = "cpu") -> GRU4Rec:
    """A model written by training (weights only: nothing is unpickled), in evaluation mode."""
    try:
        payload = torch.load(model_path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise DataFormatError(model_path, "model file not found") from None
    except Exception as exc:
        raise DataFormatError(model_path, f"cannot read the model: {exc}") from None
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
