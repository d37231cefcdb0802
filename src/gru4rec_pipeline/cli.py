"""Command line: one subcommand per stage, usable without Snakemake.

Each stage module registers its own subcommand through ``register_cli(subparsers)``;
the subcommand stores its handler in ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from gru4rec_pipeline.errors import PipelineError
from gru4rec_pipeline.progress import configure_logging

# Modules that contribute subcommands, in the order they are listed in --help.
STAGE_MODULES = [
    "synthetic.archive",
    "data.download",
    "data.extract",
    "data.clicks",
    "data.owndata",
    "data.protocol",
    "data.sessions",
    "model.training",
    "evaluation.evaluate",
    "evaluation.baselines",
    "report.summary",
    "report.plots",
    "evaluation.recommend",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gru4rec-pipeline", description=__doc__)
    parser.add_argument("--log", help="append log lines to this file instead of stderr")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{name}":
                continue
            raise
        register = getattr(module, "register_cli", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log)
    try:
        return int(args.func(args) or 0)
    except PipelineError as exc:
        logging.getLogger("gru4rec_pipeline").error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
