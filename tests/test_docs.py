"""The documentation's commands run as written, its links lead somewhere, and its architecture page is complete.

How a command block is marked, and what each marker makes this test do, is in the docstring of
``tests/doc_blocks.py``. Blocks that train for minutes are dry runs; blocks that read a finished run work in a copy
of the test suite's tiny run (``tiny_run``) or tiny study (``tuned_run``), which other tests share.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import REPO, TINY, WORKFLOW_RUNS, copy_workflow
from doc_blocks import FENCE, Block, Command, commands, missing_output, prepared, read_blocks, results_marks

DOCS = ["README.md", *sorted(f"docs/{page.name}" for page in (REPO / "docs").glob("*.md"))]
# What a fresh copy needs beyond the workflow: `make -n setup` reads the Makefile and its prerequisites.
PROJECT_FILES = ["Makefile", "pyproject.toml", "requirements.txt", "requirements-dev.txt"]
BLOCK_TIMEOUT_S = 900


def all_blocks() -> list[Block]:
    return [block for relative in DOCS for block in read_blocks(REPO, relative)]


COMMAND_BLOCKS = [block for block in all_blocks() if block.runs_commands and block.marker is not None]


def test_every_command_block_is_marked():
    problems = [f"{block.name}: {problem}" for block in all_blocks() for problem in block.problems]
    for block in COMMAND_BLOCKS:
        try:
            found = commands(block)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if not found:
            problems.append(f"{block.name}: a command block without a command")
        unchecked = [command.text for command in found if must_fail(block, command) and not block.marker.output]
        if unchecked:
            problems.append(f"{block.name}: {unchecked[0]!r} should fail; mark the block 'output' to check its message")
    assert not problems, "\n".join(problems)


def test_every_results_mark_stands_above_what_it_produced():
    """A ``<!-- results: COMMAND -->`` names a command and stands right above the block, table or picture it made;
    the marks that say ``regenerate`` are the figures to make again."""
    problems = []
    for relative in DOCS:
        for mark in results_marks(REPO, relative):
            if not mark.command:
                problems.append(f"{mark.path}:{mark.line}: a results mark without its command")
            if not mark.shows:
                problems.append(f"{mark.path}:{mark.line}: a results mark above no block, table or picture")
    assert not problems, "\n".join(problems)


def prepare(block: Block, workdir: Path, finished: Path | None = None) -> Path:
    """The folder the block runs in: a fresh copy of the workflow, or a copy of the ``finished`` run."""
    if finished is None:
        copy_workflow(workdir)
    else:
        shutil.copytree(finished, workdir, symlinks=True)
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, workdir / name)
    # `source .venv/bin/activate` finds the environment running the tests.
    if not (workdir / ".venv").exists():
        (workdir / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    for given in block.marker.given:
        (workdir / given).parent.mkdir(parents=True, exist_ok=True)
        (workdir / given).touch()
    return workdir


def must_fail(block: Block, command: Command) -> bool:
    return command.expects_failure and block.marker.mode == "run"


def configfiles(finished: Path | None) -> tuple[str, ...]:
    """The config files of the run a block works in: the tiny preset, and for a copy of one of the test suite's
    finished runs the overlays that run wrote into its ``config/`` (tests/conftest.py: ``tuned_run``'s study)."""
    if finished is None:
        return TINY[1:]
    written = [path.name for path in (finished / "config").glob("*.yaml") if not (REPO / "config" / path.name).exists()]
    return (*TINY[1:], *(f"config/{name}" for name in sorted(written)))


def run_block(block: Block, workdir: Path, outputs: Path, config: tuple[str, ...]) -> Path:
    """Run the block's commands in order in ``workdir``, as one bash script, each one's output and exit status in
    ``outputs``; the script stops after the first command that ends other than the block says."""
    outputs.mkdir(parents=True)
    lines = []
    for number, command in enumerate(commands(block)):
        text = prepared(command, block.marker, config)
        out, status = outputs / f"{number}.out", outputs / f"{number}.rc"
        lines.append(f"{{ {text}\n}} > {out} 2>&1 < /dev/null; echo $? > {status}")
        lines.append(f"[ $(cat {status}) {'-ne' if must_fail(block, command) else '-eq'} 0 ] || exit 0")
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    env["PYTHONUNBUFFERED"] = "1"
    subprocess.run(["bash", "-c", "\n".join(lines)], cwd=workdir, env=env, timeout=BLOCK_TIMEOUT_S, check=True)
    return outputs


def run_in_fresh_copy(block: Block, folder: Path) -> Path:
    return run_block(block, prepare(block, folder / "workflow-copy"), folder / "outputs", configfiles(None))


@pytest.fixture(scope="session")
def fresh_copy_runs(request, tmp_path_factory):
    """The selected blocks that run in a fresh copy, started side by side, one per core: each has its own copy,
    and most are dry runs whose time goes into loading the workflow."""
    selected = [
        item.callspec.params["block"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_documented_commands_run"
    ]
    fresh = [block for block in selected if block.marker.mode != "skip" and block.marker.place == "fresh"]
    with ThreadPoolExecutor(max_workers=min(4, len(os.sched_getaffinity(0)))) as pool:
        yield {block.name: pool.submit(run_in_fresh_copy, block, tmp_path_factory.mktemp("doc")) for block in fresh}
        pool.shutdown(cancel_futures=True)


def failure(block: Block, text: str, outputs: Path, number: int, why: str) -> str:
    printed = (outputs / f"{number}.out").read_text(errors="replace") if (outputs / f"{number}.out").exists() else ""
    return f"{block.name}: {why}\n$ {text}\n{printed[-4000:]}"


def block_id(block: Block) -> str:
    """``README.md:40-dry-run``, ``docs/tuning.md:30-run-tuned-run``: select with -k by file, line, mode or place."""
    marker = block.marker
    return "-".join([block.name, marker.mode, *([marker.place] if marker.place != "fresh" else [])])


# The fixture that gives each place a block may run in other than a fresh copy: a finished run of the workflow.
PLACE_FIXTURES = {"tiny-run": "tiny_run", "tuned-run": "tuned_run"}


def block_param(block: Block):
    """A block run in a finished run of the workflow is slow, as every test that takes such a run is
    (conftest.WORKFLOW_RUNS): the fixture is asked for inside the test, where the hook that marks those tests
    cannot see it."""
    slow = PLACE_FIXTURES.get(block.marker.place) in WORKFLOW_RUNS
    return pytest.param(block, id=block_id(block), marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("block", [block_param(block) for block in COMMAND_BLOCKS])
def test_documented_commands_run(block: Block, request, tmp_path: Path):
    marker = block.marker
    if marker.mode == "skip":
        pytest.skip(marker.reason)
    if marker.place == "fresh":
        config = configfiles(None)
        outputs = request.getfixturevalue("fresh_copy_runs")[block.name].result(timeout=BLOCK_TIMEOUT_S)
    else:
        finished = request.getfixturevalue(PLACE_FIXTURES[marker.place])
        config = configfiles(finished)
        outputs = run_block(block, prepare(block, tmp_path / "run-copy", finished), tmp_path / "outputs", config)
    for number, command in enumerate(commands(block)):
        text = prepared(command, marker, config)
        assert (outputs / f"{number}.rc").exists(), failure(block, text, outputs, number - 1, "stopped before it")
        status = int((outputs / f"{number}.rc").read_text())
        if must_fail(block, command):
            assert status != 0, failure(block, text, outputs, number, "succeeded; the docs show it failing")
        else:
            assert status == 0, failure(block, text, outputs, number, f"failed with exit status {status}")
        if marker.output:
            missing = missing_output(command.shown, (outputs / f"{number}.out").read_text(errors="replace"))
            assert not missing, failure(block, text, outputs, number, f"did not print {missing}")


def package_modules() -> list[str]:
    """The package's modules by their path below ``src/gru4rec_pipeline/`` (``data/clicks.py``), read from the tree;
    an ``__init__.py`` only where it defines something."""
    package = REPO / "src" / "gru4rec_pipeline"
    return sorted(
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if "__pycache__" not in path.parts
        and (path.name != "__init__.py" or re.search(r"^(def|class) ", path.read_text(), re.M))
    )


def names(text: str, name: str) -> bool:
    """``text`` names the file ``name`` (``clicks.py``, ``data/clicks.py``) as a whole path, not inside a longer one."""
    return re.search(rf"(?<![\w./-]){re.escape(name)}(?![\w/-])", text) is not None


def sections(markdown: str) -> list[tuple[str, str]]:
    """The page cut at its headings: (heading, the text up to the next heading)."""
    parts = re.split(r"^(#{1,6} .*)$", markdown, flags=re.M)
    return [("", parts[0])] + [(parts[index], parts[index + 1]) for index in range(1, len(parts) - 1, 2)]


def unnamed_on_architecture_page(page: str, rule_files: list[str], modules: list[str]) -> list[str]:
    """The rule files and modules the page does not name. A module counts as named by its whole path below the
    package (``data/datasets/registry.py``), or, in a section whose heading names its subpackage (``data/``), by the
    rest of its path (``datasets/registry.py``, ``registry.py``); a top-level module by its file name."""
    page = page.replace("src/gru4rec_pipeline/", "")
    unnamed = [name for name in rule_files if not names(page, name)]
    for module in modules:
        parts = module.split("/")
        if names(page, module):
            continue
        if len(parts) > 1:
            heading_names = (f"{parts[0]}/", f"{parts[0]}`")
            in_sections = [text for heading, text in sections(page) if any(n in heading for n in heading_names)]
            suffixes = ["/".join(parts[start:]) for start in range(1, len(parts))]
            if any(names(text, suffix) for text in in_sections for suffix in suffixes):
                continue
        unnamed.append(module)
    return unnamed


def test_the_architecture_page_names_every_rule_file_and_module():
    """docs/architecture.md names each rule file of workflow/rules and each module of the package, as the tree
    holds them today: a new file fails this test until the page says where it belongs."""
    page = (REPO / "docs" / "architecture.md").read_text()
    rule_files = sorted(path.name for path in (REPO / "workflow" / "rules").glob("*.smk"))
    unnamed = unnamed_on_architecture_page(page, rule_files, package_modules())
    assert not unnamed, f"docs/architecture.md does not name {unnamed}"


def test_the_architecture_check_reads_paths_and_sections():
    page = (
        "`common.smk`\n`names.py`, `data/clicks.py`\n## `training/`: how a model is trained\n"
        "`loop.py`, `parallel/group.py`\n## `report/`\n`tables.py`\n"
    )
    modules = ["names.py", "data/clicks.py", "training/loop.py", "training/parallel/group.py", "report/plots.py"]
    modules += ["data/loop.py", "data/clicks_extra.py", "tables.py"]
    assert unnamed_on_architecture_page(page, ["common.smk", "data.smk"], modules) == [
        "data.smk",
        "report/plots.py",
        "data/loop.py",
        "data/clicks_extra.py",
    ]


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings (outside fenced blocks): lower case, punctuation dropped, spaces as
    hyphens."""
    anchors, fence = set(), None
    for line in markdown.splitlines():
        stripped = line.strip()
        if fence is not None:
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                fence = None
        elif FENCE.match(line):
            fence = FENCE.match(line)["fence"]
        elif re.match(r"#{1,6}\s", stripped):
            heading = stripped.lstrip("#").strip()
            anchors.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return anchors


def test_links_between_the_pages_lead_somewhere():
    problems = []
    for relative in DOCS:
        page = REPO / relative
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path_part, _, anchor = target.partition("#")
            linked = (page.parent / path_part).resolve() if path_part else page
            if not linked.exists():
                problems.append(f"{relative}: link to {target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text()):
                problems.append(f"{relative}: link to {target}: no such heading")
    assert not problems, "\n".join(problems)


# A file of the repository named in a page's prose: `workflow/rules/model.smk`, `model/network.py`, `retrain.smk`.
NAMED_FILE = re.compile(r"`([\w.-]+(?:/[\w.-]+)*\.(?:py|smk|yaml|md|png|txt|toml|sh))`")
# Where a named file may live: the repository, the package (modules by their path below it), the rule and script
# folders, the page's own folder. Outputs (results/, logs/) are not files of the repository.
NAMED_FILE_ROOTS = ("", "src/gru4rec_pipeline", "workflow/rules", "workflow/scripts")


def missing_named_files(root: Path, relative: str) -> list[str]:
    """The repository files that a page names in its prose (outside command blocks) and that do not exist: a
    module moved or renamed leaves the page naming the old path. A bare file name counts only for rule files; a
    module's path may leave out the subpackages above it (`parallel/group.py` for `training/parallel/group.py`); a
    path whose first folder is neither the repository's nor the package's names another project's file."""
    text = re.sub(r"^(\s*)(`{3,}|~{3,}).*?^\1\2", "", (root / relative).read_text(), flags=re.M | re.S)
    missing = []
    for name in NAMED_FILE.findall(text):
        if name.startswith(("results/", "logs/")) or ("/" not in name and not name.endswith(".smk")):
            continue
        # A path whose first folder this repository does not have is another project's (the official code's).
        first = name.split("/")[0]
        if "/" in name and not any((root / folder / first).is_dir() for folder in NAMED_FILE_ROOTS[:2]):
            continue
        places = [root / folder / name for folder in NAMED_FILE_ROOTS] + [(root / relative).parent / name]
        # Under a heading naming its subpackage, a module goes by the rest of its path (`parallel/group.py`).
        places += list((root / "src" / "gru4rec_pipeline").glob(f"*/**/{name}")) if "/" in name else []
        if not any(place.exists() for place in places):
            missing.append(name)
    return missing


def test_the_files_the_pages_name_exist():
    problems = [
        f"{relative}: names {name}, which does not exist"
        for relative in DOCS
        for name in missing_named_files(REPO, relative)
    ]
    assert not problems, "\n".join(problems)


def test_a_page_naming_a_moved_module_is_caught(tmp_path: Path):
    (tmp_path / "src" / "gru4rec_pipeline" / "model").mkdir(parents=True)
    (tmp_path / "src" / "gru4rec_pipeline" / "model" / "network.py").touch()
    (tmp_path / "src" / "gru4rec_pipeline" / "training" / "parallel").mkdir(parents=True)
    (tmp_path / "src" / "gru4rec_pipeline" / "training" / "parallel" / "group.py").touch()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(
        "`model/network.py`, `src/gru4rec_pipeline/model/network.py`, `model/gone.py`, `gone.smk`, `network.py`,\n"
        "`results/models/final/bpr/model.pt`, `parallel/group.py`, `training/group.py`, `paramfiles/x.py`\n"
        "```text\n`model/in_a_block.py`\n```\n"
    )
    assert missing_named_files(tmp_path, "docs/page.md") == ["model/gone.py", "gone.smk", "training/group.py"]


def test_the_readme_is_a_path_to_every_page():
    """The README links every page of docs/ and stays short: a topic that needs more goes to docs/."""
    readme = (REPO / "README.md").read_text()
    unlinked = [page for page in DOCS[1:] if f"({page})" not in readme]
    assert not unlinked, f"README.md does not link {unlinked}"
    assert len(readme.splitlines()) <= 260, "README.md has grown past 260 lines: move a topic to a page in docs/"


def test_the_marking_catches_an_unmarked_block_and_an_unchecked_failure(tmp_path: Path):
    (tmp_path / "page.md").write_text(
        "```bash\nsnakemake\n```\n\n<!-- doctest: run -->\n```console\n$ false\nerror: no\n```\n\n```\nls\n```\n"
    )
    blocks = read_blocks(tmp_path, "page.md")
    assert [block.problems for block in blocks] == [
        ("a command block without a <!-- doctest: ... --> marker",),
        (),
        ("a fence without an info string (bash, console, text, yaml, ...)",),
    ]
    assert commands(blocks[1])[0].expects_failure and not blocks[1].marker.output


def test_results_marks_are_read_with_what_they_stand_above(tmp_path: Path):
    (tmp_path / "page.md").write_text(
        "<!-- results: make run -->\n```text\nx\n```\n<!-- results: make run; regenerate: older code -->\n\n"
        "| a |\n\n<!-- results: -->\n![a figure](a.png)\n<!-- results: make run -->\nprose\n"
    )
    marks = [(mark.command, mark.regenerate, mark.shows) for mark in results_marks(tmp_path, "page.md")]
    assert marks == [
        ("make run", "", "block"),
        ("make run", "older code", "table"),
        ("", "", "picture"),
        ("make run", "", ""),
    ]


def test_commands_are_prepared_as_the_marker_says(tmp_path: Path):
    (tmp_path / "page.md").write_text(
        "<!-- doctest: dry-run -->\n```bash\nsnakemake --cores 2 results/x.txt --configfile a.yaml  # note\n"
        "make run\ngru4rec-pipeline train --help\nls\n```\n"
        "<!-- doctest: run tiny -->\n```bash\nsnakemake --cores 2 t --configfile a.yaml --config x=1\n"
        "snakemake --config own_data='{path: a,\n    ids: map}'\n```\n"
    )
    dry, tiny = read_blocks(tmp_path, "page.md")
    dry_commands = [prepared(command, dry.marker, TINY[1:]) for command in commands(dry)]
    assert dry_commands[0] == "snakemake --cores 2 results/x.txt --configfile a.yaml --dry-run"
    assert dry_commands[1] == "make -n run"
    assert "build_parser" in dry_commands[2] and dry_commands[2].endswith(" train --help")
    assert dry_commands[3] == "ls"
    tiny_commands = [prepared(command, tiny.marker, TINY[1:]) for command in commands(tiny)]
    assert tiny_commands[0] == "snakemake --cores 2 t --configfile a.yaml config/tiny.yaml --config x=1"
    assert len(tiny_commands) == 2 and tiny_commands[1].endswith("--configfile config/tiny.yaml")
