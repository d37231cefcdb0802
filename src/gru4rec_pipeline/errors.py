"""Errors that name what was found, where, and what was expected."""

from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """Base class for the errors this package raises on bad input."""


class DataFormatError(PipelineError):
    """A data file does not have the expected format.

    ``line`` is 1-based; ``None`` when the problem is not tied to one line.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.detail = message
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(PipelineError):
    """A configuration key has a value that cannot be used."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config key '{key}': {message}")
