"""Synthetic raw files of the public data sets, under their published names: one writer per set.

``synthetic/<set>.py`` defines each set's writer and its presets: ``tiny`` (tests, seconds), ``default`` (the
whole pipeline in minutes), ``full`` (the published size). Read them with ``data/datasets/stage.py``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.synthetic.browsing import scaled_spec

# Each set's module (named in full, so that the workflow counts it among the stage's code) and its writer.
SYNTHETIC_WRITERS = {
    "rees46": ("gru4rec_pipeline.synthetic.rees46", "write_rees46_raw"),
    "coveo": ("gru4rec_pipeline.synthetic.coveo", "write_coveo_raw"),
    "retailrocket": ("gru4rec_pipeline.synthetic.retailrocket", "write_retailrocket_raw"),
    "diginetica": ("gru4rec_pipeline.synthetic.diginetica", "write_diginetica_raw"),
}


def write_synthetic_raw(
    name: str, folder: str | Path, preset: str = "tiny", seed: int = 42, n_events: int | None = None
) -> dict:
    """Synthetic raw files of ``name`` in ``folder``: the preset's size (tiny, default, full: the published
    size), or about ``n_events`` rows at the full preset's proportions."""
    if name not in SYNTHETIC_WRITERS:
        raise ConfigError(
            "dataset", f"no synthetic raw files for {name!r}; expected one of {', '.join(SYNTHETIC_WRITERS)}"
        )
    module = importlib.import_module(SYNTHETIC_WRITERS[name][0])
    if preset not in module.PRESETS:
        raise ConfigError("synthetic.preset", f"got {preset!r}, expected one of {', '.join(module.PRESETS)}")
    spec = module.PRESETS[preset] if n_events is None else scaled_spec(module.PRESETS["full"], int(n_events))
    return getattr(module, SYNTHETIC_WRITERS[name][1])(folder, spec, seed=seed)


def published_size(name: str) -> int:
    """The raw rows of ``name`` at its published size (its ``full`` preset)."""
    if name not in SYNTHETIC_WRITERS:
        raise ConfigError(
            "dataset", f"no synthetic raw files for {name!r}; expected one of {', '.join(SYNTHETIC_WRITERS)}"
        )
    return importlib.import_module(SYNTHETIC_WRITERS[name][0]).PRESETS["full"].n_events
