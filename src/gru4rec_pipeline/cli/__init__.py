"""The command line: one subcommand per stage, calling the same driver as the workflow's stage script.

The parsers are built here from plain settings (``names``) and import nothing heavy: ``--help`` answers
without loading numpy or torch; each subcommand imports its stage when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from gru4rec_pipeline import __version__
from gru4rec_pipeline.cli import data, evaluation, model, report, retrain, tuning
from gru4rec_pipeline.errors import PipelineError
from gru4rec_pipeline.files import clean_up_on_sigterm, no_space_error
from gru4rec_pipeline.progress import configure_logging

# Groups of subcommands, in the order --help lists them (the order of the stages).
COMMAND_GROUPS = [data, model, retrain, evaluation, tuning, report]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gru4rec-pipeline",
        description="GRU4Rec on RSC15: every stage of the workflow as a command of its own.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log", help="append log lines to this file instead of stderr")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log)
    clean_up_on_sigterm()
    try:
        return int(args.run(args) or 0)
    except (PipelineError, OSError) as exc:
        if isinstance(exc, OSError):  # an unwritable --out, a folder given as a file, a full disk: one line too
            exc = no_space_error(exc, exc.filename or "?") or f"{exc.filename or '?'}: {exc.strerror or exc}"
        logging.getLogger("gru4rec_pipeline").error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
