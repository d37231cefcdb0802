"""The files a finished study hands on: ``best.yaml`` (its best setting) and ``study.json`` (what it found).

- ``best.yaml`` holds the best trial's hyperparameters in the config's own format, the loss's whole entry
  (``training.losses.{loss}``) with comment lines saying where it comes from: paste it into the config, or let
  the workflow retrain with it (``results/recall_{loss}_tuned.txt``). :class:`BestSetting` writes and reads it,
  and refuses a file that is not a usable setting of its loss.
- ``study.json``: the study, its storage, the metric, how many trials ended how, the best trial (number, value,
  parameters) and the configured setting's trial; the tuned model's metrics record carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.files import read_json, write_text_atomic
from gru4rec_pipeline.model.hyperparameters import Hyperparameters

STUDY_KEYS = ("study", "storage", "metric", "target_trials", "finished_trials", "best_trial", "best_value")


@dataclass(frozen=True)
class BestSetting:
    """A loss's best tuned hyperparameters: a ``training.losses.{loss}`` entry."""

    loss: str
    hyperparameters: dict

    def save(self, path: str | Path, comment_lines: list[str] = ()) -> None:
        """Write ``path`` atomically, after ``# `` comment lines."""
        header = "".join(f"# {line}\n" for line in comment_lines)
        body = yaml.safe_dump(self.hyperparameters, sort_keys=False, default_flow_style=None)
        write_text_atomic(path, header + body)

    @classmethod
    def load(cls, path: str | Path, loss: str) -> "BestSetting":
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataFormatError(path, "best setting not found; the study's summarize_study step writes it") from None
        except yaml.YAMLError as exc:
            raise DataFormatError(path, f"not valid YAML: {exc}") from None
        if not isinstance(values, dict):
            raise DataFormatError(path, f"expected a mapping of hyperparameters (a training.losses.{loss} entry)")
        try:
            Hyperparameters.from_dict({**values, "loss": loss})
        except ConfigError as exc:
            raise DataFormatError(path, f"not a usable setting of loss {loss}: {exc}") from None
        return cls(loss, values)


def read_study_record(path: str | Path) -> dict:
    """``study.json``, checked for the keys its readers use."""
    record = read_json(path, "study record")
    missing = [key for key in STUDY_KEYS if not isinstance(record, dict) or key not in record]
    if missing:
        raise DataFormatError(path, f"missing keys {missing}; the study's summarize_study step writes this file")
    return record
