"""The shape of the training code, read from its syntax: what GRU4Rec computes (``model/``) apart from how it is
trained (``training/``), modules cut along seams, short argument lists, and one place for each concept."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "src" / "gru4rec_pipeline"
MODEL, TRAINING = PACKAGE / "model", PACKAGE / "training"
PARALLEL = TRAINING / "parallel"
# Python code the project runs: the package and the workflow's stage scripts.
CODE = [*sorted(PACKAGE.rglob("*.py")), *sorted((REPO / "workflow" / "scripts").glob("*.py"))]

MODEL_MODULES, MODEL_LINES = 6, 1_450
TRAINING_MODULES, TRAINING_MODULE_LINES = 15, 350
FMT_SKIPS = 47  # in the package; the restructure left 2 fewer than it found (49) and none may come back


def modules(folder: Path) -> list[Path]:
    """The package modules under ``folder`` that hold code (an empty ``__init__.py`` is none)."""
    return [path for path in sorted(folder.rglob("*.py")) if path.read_text().strip()]


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def docstrings(module: ast.Module) -> set[int]:
    """The ids of the module's docstring nodes (module, classes, functions)."""
    found = set()
    for node in ast.walk(module):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def code_words(path: Path) -> set[str]:
    """The identifiers and string constants of a module's code: names, attributes, arguments, definitions,
    keywords and strings other than docstrings (not comments)."""
    module = tree(path)
    skipped = docstrings(module)
    words = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, ast.arg):
            words.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            words.add(node.name)
        elif isinstance(node, ast.keyword) and node.arg:
            words.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            words.add(node.value)
    return words


def functions(path: Path):
    """(qualified name, node, is a method) of every function defined in the module."""
    module = tree(path)
    for node in module.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node, False
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{item.name}", item, True


def arguments(node: ast.FunctionDef, method: bool) -> int:
    """A function's parameters, ``self``/``cls`` of a method not counted."""
    spec = node.args
    count = len(spec.posonlyargs) + len(spec.args) + len(spec.kwonlyargs)
    count += (spec.vararg is not None) + (spec.kwarg is not None)
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
    return count - (method and not static)


def function(path: Path, name: str) -> tuple[ast.FunctionDef, bool]:
    found = [(node, method) for qualified, node, method in functions(path) if qualified == name]
    assert len(found) == 1, f"{path.name} defines {name} {len(found)} times"
    return found[0]


# -- sizes ------------------------------------------------------------------------------------------------------------
def test_model_is_what_gru4rec_computes_in_a_few_modules():
    found = modules(MODEL)
    lines = sum(len(path.read_text().splitlines()) for path in found)
    assert len(found) <= MODEL_MODULES, [path.name for path in found]
    assert lines <= MODEL_LINES, f"model/ holds {lines} lines"


def test_training_is_cut_along_seams():
    found = modules(TRAINING)
    assert len(found) <= TRAINING_MODULES, [str(path.relative_to(TRAINING)) for path in found]
    long = {str(path.relative_to(TRAINING)): n for path in found if (n := len(path.read_text().splitlines())) > 350}
    assert not long, f"modules over {TRAINING_MODULE_LINES} lines: {long}"


def test_no_formatting_is_switched_off_to_fit_a_module_under_its_cap():
    count = sum(path.read_text().count("# fmt: skip") for path in PACKAGE.rglob("*.py"))
    assert count <= FMT_SKIPS


# -- arguments --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "module, name, most",
    [
        ("run.py", "run_training", 1),
        ("loop.py", "run_epochs", 3),
        ("step.py", "TrainStep.__init__", 5),
    ],
)
def test_the_drivers_take_few_arguments(module, name, most):
    node, method = function(TRAINING / module, name)
    assert arguments(node, method) <= most
    if name == "run_training":
        assert [arg.arg for arg in node.args.args] == ["job"]


def compiled(node: ast.FunctionDef) -> bool:
    """A numba kernel: it takes arrays and scalars (numba passes no objects), so its arguments are its data."""
    return any(isinstance(d, ast.Call) and getattr(d.func, "id", None) == "njit" for d in node.decorator_list)


def test_no_public_function_of_training_takes_more_than_six_arguments():
    crowded = [
        f"{path.relative_to(TRAINING)}:{name} ({arguments(node, method)})"
        for path in modules(TRAINING)
        for name, node, method in functions(path)
        if not name.split(".")[-1].startswith("_") and not compiled(node) and arguments(node, method) > 6
    ]
    assert not crowded, crowded


# -- one place per concept --------------------------------------------------------------------------------------------
def definitions(paths, pattern: str) -> list[str]:
    """Functions and classes (and their methods) whose name matches ``pattern``, by module."""
    found = []
    for path in paths:
        for name, _, _ in functions(path):
            if re.search(pattern, name.split(".")[-1]):
                found.append(f"{path.relative_to(PACKAGE)}:{name}")
    return found


def test_a_trainings_identity_is_defined_once():
    found = definitions(modules(MODEL) + modules(TRAINING), r"identity|fingerprint")
    assert found == ["training/job.py:TrainingJob.identity", "training/job.py:TrainingJob.identity_digest"]


def test_one_training_state_format():
    formats = []
    for path in modules(MODEL) + modules(TRAINING):
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id.endswith("_FORMAT") for target in node.targets
            ):
                formats.append(f"{path.relative_to(PACKAGE)}:{node.targets[0].id}")
    # The model file's own format, and one for everything that continues a training.
    assert formats == ["model/network.py:MODEL_FORMAT", "training/state.py:TRAINING_STATE_FORMAT"]


def test_the_per_epoch_evaluation_with_early_stopping_lives_in_one_place():
    classes = [
        f"{path.relative_to(PACKAGE)}:{node.name}"
        for path in modules(PACKAGE)
        for node in ast.walk(tree(path))
        if isinstance(node, ast.ClassDef) and re.search(r"EarlyStopping|EpochEvaluation$", node.name)
    ]
    assert classes == ["evaluation/epoch_evaluation.py:EarlyStopping", "evaluation/epoch_evaluation.py:EpochEvaluation"]


def calls_of(name: str) -> list[str]:
    return [
        str(path.relative_to(REPO))
        for path in CODE
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)
    ]


def test_epoch_evaluation_is_built_in_one_place():
    assert calls_of("EpochEvaluation") == ["src/gru4rec_pipeline/training/loop.py"]
    assert calls_of("EarlyStopping") == ["src/gru4rec_pipeline/evaluation/epoch_evaluation.py"]


def test_the_training_summary_file_is_named_in_one_module():
    naming = sorted(
        str(path.relative_to(REPO)) for path in CODE if any("training.json" in word for word in code_words(path))
    )
    assert naming == ["src/gru4rec_pipeline/names.py"]


def test_lanes_and_the_exchange_stay_in_the_data_parallel_package():
    """Outside ``training/parallel/``, only the step (its lanes, the exchange it hands its gradients to) and the
    job (the parallel options) speak of them."""
    mentioning = sorted(
        str(path.relative_to(PACKAGE))
        for path in modules(MODEL) + modules(TRAINING)
        if PARALLEL not in path.parents
        and any(re.search(r"lane|exchange", word, re.IGNORECASE) for word in code_words(path))
    )
    assert len(mentioning) <= 2, mentioning
    assert mentioning == ["training/job.py", "training/step.py"]


def test_the_architecture_page_names_every_rule_file_and_module():
    """docs/architecture.md describes the house: a rule file or module it does not name is one it does not
    describe."""
    page = (REPO / "docs" / "architecture.md").read_text()
    rule_files = [path.name for path in sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    unnamed = [name for name in rule_files if f"`{name}`" not in page]
    unnamed += [
        str(path.relative_to(PACKAGE))
        for path in modules(PACKAGE)
        if path.name not in ("__init__.py", "__main__.py")
        and f"`{path.name}`" not in page
        and f"`{path.relative_to(PACKAGE).relative_to(path.relative_to(PACKAGE).parts[0])}`" not in page
    ]
    assert not unnamed, unnamed
