"""The command blocks of README.md and docs/*.md, read the way tests/test_docs.py runs them.

A fenced block whose info string is ``bash``, ``sh``, ``shell`` or ``console`` holds commands, and every such block
carries a marker, an HTML comment among the comment lines right above its fence, saying how the test runs it:

    <!-- doctest: run -->            each command as written, in a fresh copy of the workflow
    <!-- doctest: run tiny -->       the same, every ``snakemake`` command on the tiny preset (config/tiny.yaml
                                     joins its ``--configfile`` files, or is given with ``--configfile``)
    <!-- doctest: run tiny-run -->   in a copy of a finished run of the whole workflow on the tiny preset, its
                                     ``snakemake`` commands on the tiny preset too
    <!-- doctest: run tuned-run -->  in a copy of a finished tiny bpr_max study and its tuned model (the test
                                     suite's ``tuned_run``), its ``snakemake`` commands with that run's overlays
    <!-- doctest: dry-run -->        in a fresh copy: ``snakemake`` with ``--dry-run``, ``make`` with ``-n``,
                                     ``gru4rec-pipeline`` only parsed by its argument parser; other commands run
                                     as written, so they must be cheap
    <!-- doctest: skip: REASON -->   not run; REASON says what it needs (a cluster, a GPU, data of your own)

Options follow the mode, separated by ``;``: ``output`` checks, in a console block, that every output line shown
appears in what the command printed (``...`` stands for any text; leading text such as a log line's time stamp is
allowed), and ``given PATH`` puts an empty file at PATH first (a stand-in for data that a dry run only checks
exists). In a console block, lines starting with ``$ `` are commands and the others their output; in the other
blocks every line is a command. A command continues on the next line after a trailing backslash or an open quote.
Every command must succeed, except, in a block marked ``run``, one whose shown output has a line starting with
``error:`` or an exception name (``WorkflowError ...``): that one must fail, and the block must be marked ``output``
so that its message is checked.

Figures and output shown from a run (a block, a table, a picture) carry, right above them, the command that
produced them, so that they can be made again:

    <!-- results: COMMAND -->                 shown as that command printed or wrote it
    <!-- results: COMMAND; regenerate: WHY -->  measured before a change (WHY) that moves it: run COMMAND again
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
PLACES = ("tiny-run", "tuned-run")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
COMMENT = re.compile(r"^\s*<!--.*-->\s*$")
MARKER = re.compile(r"^\s*<!--\s*doctest:\s*(?P<text>.*?)\s*-->\s*$")
RESULTS = re.compile(r"^\s*<!--\s*results:\s*(?P<command>.*?)\s*(?:;\s*regenerate:\s*(?P<why>.*?)\s*)?-->\s*$")
SHOWN_ERROR = re.compile(r"^(error:|[\w.]*Error\b)")
# Parses a gru4rec-pipeline command line with the real parser, without running the command.
PARSE_ONLY = "import sys; from gru4rec_pipeline.cli import build_parser; build_parser().parse_args(sys.argv[1:])"


@dataclass(frozen=True)
class Marker:
    mode: str  # run, dry-run or skip
    place: str = "fresh"  # fresh, tiny-run or tuned-run
    tiny: bool = False
    output: bool = False
    given: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Command:
    text: str
    shown: tuple[str, ...] = ()

    @property
    def expects_failure(self) -> bool:
        return any(SHOWN_ERROR.match(line.strip()) for line in self.shown)


@dataclass(frozen=True)
class Block:
    path: str
    line: int  # of the opening fence, counted from 1
    language: str
    body: tuple[str, ...]
    marker: Marker | None
    problems: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def runs_commands(self) -> bool:
        return self.language in SHELL_LANGUAGES


def parse_marker(text: str) -> Marker:
    """The marker's text after ``doctest:``; ValueError names what is wrong with it."""
    if text.startswith("skip"):
        reason = text[len("skip") :].lstrip(":").strip()
        if not text.startswith("skip:") or not reason:
            raise ValueError("a skip needs its reason: <!-- doctest: skip: REASON -->")
        return Marker("skip", reason=reason)
    head, *options = [part.strip() for part in text.split(";")]
    words = head.split()
    if not words or words[0] not in ("run", "dry-run"):
        raise ValueError(f"unknown mode {head!r}: expected run, dry-run or skip: REASON")
    mode, place, tiny = words[0], "fresh", False
    for word in words[1:]:
        if word == "tiny":
            tiny = True
        elif word in PLACES and mode == "run" and place == "fresh":
            place = word
        else:
            raise ValueError(f"unknown word {word!r} after {mode}: expected tiny, tiny-run or tuned-run (run only)")
    output, given = False, []
    for option in options:
        if option == "output":
            output = True
        elif option.startswith("given "):
            given.append(option[len("given ") :].strip())
        else:
            raise ValueError(f"unknown option {option!r}: expected output or given PATH")
    return Marker(mode, place, tiny or place in PLACES, output, tuple(given))


def read_blocks(root: Path, relative: str) -> list[Block]:
    """Every fenced block of one Markdown file, with its marker (None when it has none) and its problems."""
    lines = (root / relative).read_text().splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].lower()
        end = index + 1
        while end < len(lines) and not (lines[end].strip().startswith(fence) and set(lines[end].strip()) == {fence[0]}):
            end += 1
        body = tuple(
            line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in lines[index + 1 : end]
        )
        marker, problems = None, []
        above = index - 1
        while above >= 0 and (not lines[above].strip() or COMMENT.match(lines[above])):
            found = MARKER.match(lines[above])
            if found:
                if marker is not None:
                    problems.append("two doctest markers")
                try:
                    marker = parse_marker(found["text"])
                except ValueError as exc:
                    problems.append(str(exc))
            above -= 1
        if not info:
            problems.append("a fence without an info string (bash, console, text, yaml, ...)")
        elif info in SHELL_LANGUAGES and marker is None and not problems:
            problems.append("a command block without a <!-- doctest: ... --> marker")
        elif info not in SHELL_LANGUAGES and marker is not None:
            problems.append(f"a doctest marker on a {info} block, which holds no commands")
        blocks.append(Block(relative, index + 1, info, body, marker, tuple(problems)))
        index = end + 1
    return blocks


def _complete(text: str) -> bool:
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:  # an open quote: the command goes on
        return False
    return True


def commands(block: Block) -> list[Command]:
    """The block's commands, each with the output lines shown after it (console blocks)."""
    found: list[list] = []  # [text, shown lines]
    console = block.language == "console"
    continuing = False
    for line in block.body:
        if continuing:
            found[-1][0] += "\n" + line
        elif console and line.startswith("$ "):
            found.append([line[2:], []])
        elif console:
            if not found:
                raise ValueError(f"{block.name}: a console block starts with a command ('$ ...'), not {line!r}")
            found[-1][1].append(line)
            continue
        elif line.strip() and not line.lstrip().startswith("#"):
            found.append([line, []])
        else:
            continue
        continuing = not _complete(found[-1][0])
    return [Command(text, tuple(shown)) for text, shown in found]


def with_configfiles(argv: list[str], files: tuple[str, ...]) -> list[str]:
    """``argv`` of a snakemake command with ``files`` read after its own ``--configfile`` files."""
    if "--configfile" not in argv:
        return [*argv, "--configfile", *files]
    end = argv.index("--configfile") + 1
    while end < len(argv) and not argv[end].startswith("-"):
        end += 1
    present = set(argv[argv.index("--configfile") + 1 : end])
    return [*argv[:end], *(name for name in files if name not in present), *argv[end:]]


def prepared(command: Command, marker: Marker, configfiles: tuple[str, ...]) -> str:
    """The shell text the test runs for ``command`` under ``marker`` (as written where nothing changes)."""
    try:
        argv = shlex.split(command.text.replace("\\\n", " "), comments=True)
    except ValueError:
        return command.text
    if not argv:
        return command.text
    program, dry = argv[0], marker.mode == "dry-run"
    if program == "snakemake" and (marker.tiny or dry):
        if marker.tiny:
            argv = with_configfiles(argv, configfiles)
        if dry and not {"-n", "--dry-run", "--dryrun"} & set(argv):
            argv.append("--dry-run")
    elif program == "make" and dry:
        argv.insert(1, "-n")
    elif program == "gru4rec-pipeline" and dry:
        argv = [sys.executable, "-c", PARSE_ONLY, *argv[1:]]
    else:
        return command.text
    return shlex.join(argv)


def shown_line_pattern(shown: str) -> re.Pattern:
    """A shown output line as a pattern: ``...`` is any text, runs of white space are one space."""
    parts = [re.escape(" ".join(part.split())) for part in shown.strip().split("...")]
    return re.compile(".*".join(parts))


def missing_output(shown: tuple[str, ...], printed: str) -> list[str]:
    """The shown lines (other than ``...`` and blank ones) that no printed line matches."""
    printed_lines = [" ".join(line.split()) for line in printed.splitlines()]
    missing = []
    for line in shown:
        if not line.strip() or line.strip() == "...":
            continue
        pattern = shown_line_pattern(line)
        if not any(pattern.search(candidate) for candidate in printed_lines):
            missing.append(line)
    return missing


@dataclass(frozen=True)
class ResultsMark:
    path: str
    line: int  # of the comment, counted from 1
    command: str
    regenerate: str  # why the figures below predate the code, or ""
    shows: str  # what the comment stands above: "block", "table", "picture" or "" (nothing it can stand for)


def results_marks(root: Path, relative: str) -> list[ResultsMark]:
    """Every ``<!-- results: ... -->`` comment of one Markdown file, with what it stands above."""
    lines = (root / relative).read_text().splitlines()
    marks = []
    for index, line in enumerate(lines):
        found = RESULTS.match(line)
        if not found:
            continue
        below = index + 1
        while below < len(lines) and (not lines[below].strip() or COMMENT.match(lines[below])):
            below += 1
        following = lines[below].strip() if below < len(lines) else ""
        shows = (
            "block"
            if FENCE.match(following)
            else "table"
            if following.startswith("|")
            else "picture"
            if following.startswith("![")
            else ""
        )
        marks.append(ResultsMark(relative, index + 1, found["command"], found["why"] or "", shows))
    return marks
