"""The snakemake commands the README and docs/ show parse as written: `--config` and `--configfile` take every
word up to the next option, so a target after them would be read as a config entry and the command would fail."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import REPO

DOCS = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# What each option that takes several words accepts: a config entry (key=value), a config file.
CONFIG_ENTRY = re.compile(r"^[A-Za-z_][\w.]*=")
CONFIG_FILE = re.compile(r"\.(ya?ml|json)$")
LIST_OPTIONS = {"--config": CONFIG_ENTRY, "-C": CONFIG_ENTRY, "--configfile": CONFIG_FILE, "--configfiles": CONFIG_FILE}
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}


def shell_commands(text: str) -> list[str]:
    """The commands in a markdown text: each line of a fenced block (lines joined where a quote is left open or
    a line ends with a backslash) and each inline code span, with a `$ ` prompt left out."""
    commands = []
    fences = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)  # also a fence indented in a list
    for block in fences.findall(text):
        pending = ""
        for line in block.splitlines():
            pending = f"{pending}\n{line}" if pending else line
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # a quote open across lines
                continue
            commands.append(pending)
            pending = ""
    for span in re.findall(r"`([^`]+)`", fences.sub("", text)):
        commands.append(" ".join(span.split()))
    return [re.sub(r"^\s*\$ ", "", command) for command in commands if "snakemake " in command]


def swallowed_words(command: str) -> list[str]:
    """Words that `--config`/`--configfile` of a snakemake command would take although they are no config entry or
    config file (a target, most often)."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return []
    starts = [index for index, word in enumerate(words) if word.endswith("snakemake")]
    bad = []
    for index in range(starts[0] + 1 if starts else len(words), len(words)):
        expected = LIST_OPTIONS.get(words[index])
        if expected is None:
            continue
        for word in words[index + 1 :]:
            if word.startswith("-") or word in SHELL_OPERATORS:
                break
            if not expected.search(word):
                bad.append(f"{words[index]} ... {word}")
    return bad


def test_the_check_finds_a_target_after_config():
    assert swallowed_words("snakemake --cores 8 --config archive=/data/a.7z results/recall_bpr.txt") == [
        "--config ... results/recall_bpr.txt"
    ]
    assert swallowed_words("snakemake --configfile config/config.yaml my.yaml results/recall_bpr.txt") == [
        "--configfile ... results/recall_bpr.txt"
    ]
    assert swallowed_words("snakemake results/recall_bpr.txt --config archive=/data/a.7z --cores 8") == []
    assert shell_commands("run `snakemake --config a=1\n  b.txt` here") == ["snakemake --config a=1 b.txt"]
    listed = "- an item:\n\n  ```console\n  $ snakemake --configfile a.yaml\n  error: `b`\n  ```\n"
    assert [command.strip() for command in shell_commands(listed)] == ["snakemake --configfile a.yaml"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(REPO)))
def test_documented_snakemake_commands_put_targets_before_config(doc: Path):
    problems = [
        f"{command!r}: {word}" for command in shell_commands(doc.read_text()) for word in swallowed_words(command)
    ]
    assert not problems, "targets after --config/--configfile, read as config:\n" + "\n".join(problems)
