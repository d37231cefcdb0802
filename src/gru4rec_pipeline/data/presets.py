"""Which evaluation protocol the split stage applies (config ``protocol.preset``).

- ``rsc15``: RSC15's published GRU4Rec protocol (:mod:`.protocol`), the default;
- ``yoochoose``: the deduplicated protocol of the GRU4Rec authors' 2023 comparison (:mod:`.yoochoose`);
- ``window``: session-rec's sliding windows (:mod:`.window`), a split of its own per slice, written by
  :func:`~gru4rec_pipeline.data.window.split_window` under ``results/data/window/{slice}/``.
"""

from __future__ import annotations

from pathlib import Path

from gru4rec_pipeline.data.protocol import run_split
from gru4rec_pipeline.data.yoochoose import split_yoochoose
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.names import PROTOCOL_PRESETS


def run_preset_split(
    clicks_path: str | Path,
    split_paths: dict[str, str | Path],
    stats_path: str | Path,
    preset: str = "rsc15",
    test_clicks_path: str | Path | None = None,
    window: dict | None = None,
    **thresholds,
) -> dict:
    """The split stage under ``preset``; ``test_clicks_path``: yoochoose-test.dat's clicks (yoochoose only);
    ``window``: the window preset's settings (config protocol.window), unused here."""
    if preset == "rsc15":
        return run_split(clicks_path, split_paths, stats_path, **thresholds)
    if preset == "yoochoose":
        return split_yoochoose(clicks_path, split_paths, stats_path, test_clicks_path, **thresholds)
    if preset == "window":
        raise ConfigError(
            "protocol.preset",
            "window writes one split per slice (results/data/window/{slice}/, the rule split_window), not "
            "train_full/test/train_tr/valid: ask for results/window/summary.md, or set another preset",
        )
    raise ConfigError("protocol.preset", f"got {preset!r}, expected one of {', '.join(PROTOCOL_PRESETS)}")
