"""The package's import graph runs one way: stage subpackages import earlier stages and the shared modules at the
top, never a later stage, and no modules import each other in a circle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "gru4rec_pipeline"
# What a part of the package may import besides itself: the shared top-level modules (names, errors, files,
# progress, compute, config_check) and earlier stages. The command line sits on top of everything.
MAY_IMPORT = {
    "top": set(),
    "data": {"top"},
    "synthetic": {"top"},
    "report": {"top"},
    "model": {"top", "data"},
    "evaluation": {"top", "data", "model", "synthetic", "report"},
    "training": {"top", "data", "model", "evaluation"},
    "tuning": {"top", "data", "model", "training", "evaluation", "report"},
    "cli": {"top", "data", "synthetic", "model", "training", "evaluation", "tuning", "report"},
}
ENTRY_POINTS = {"gru4rec_pipeline.__main__"}


def module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (inside functions too)."""
    modules = module_files()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() and len(parts) == 2 else "top"


def test_parts_import_only_earlier_stages_and_shared_modules():
    wrong = []
    for module, imported in import_graph().items():
        if module in ENTRY_POINTS:
            continue
        for target in imported:
            if part_of(target) != part_of(module) and part_of(target) not in MAY_IMPORT[part_of(module)]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_every_part_of_the_package_is_placed():
    assert {part_of(module) for module in module_files()} <= set(MAY_IMPORT)


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
