"""Small helpers the command groups share."""

from __future__ import annotations

import argparse
import json

from gru4rec_pipeline.errors import ConfigError


def provenance_config(args: argparse.Namespace) -> dict:
    """What a command's provenance record holds in place of the workflow's config: its own arguments."""
    return {"command": args.command, **{k: str(v) for k, v in vars(args).items() if k not in ("run", "command")}}


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of a ``--set`` option; the value is read as JSON when it is JSON (numbers, lists)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value.strip()


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
