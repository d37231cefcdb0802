"""Where the arithmetic runs: the torch device, and how many CPU threads a job uses.

Shared by training, evaluation and recommendation; a job uses exactly the threads Snakemake gave it, so jobs
side by side do not oversubscribe the machine.
"""

from __future__ import annotations

import torch

from gru4rec_pipeline.errors import ConfigError


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
