"""Compiled kernels are cached once per user and machine: a second checkout of the same code loads them, a change
to any compiled module compiles them anew, and the user's own NUMBA_CACHE_DIR is respected."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from gru4rec_pipeline import compiled

PACKAGE = REPO / "src" / "gru4rec_pipeline"
# One small kernel, compiled in a fresh process: whether it came from the cache, and where that is.
FIRST_CALL = """
import json, numpy as np
from gru4rec_pipeline.model import kernels
kernels.row_max(np.ones(3, dtype=np.float32))
stats = kernels.row_max.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
                  "cache": stats.cache_path, "package": kernels.__file__}))
"""


def checkout(root: Path) -> Path:
    """A copy of the package at ``root`` (another clone of the repository), without its ``__pycache__``."""
    shutil.copytree(PACKAGE, root / "gru4rec_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def first_call(source: Path, environment: dict) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(environment, PYTHONPATH=str(source))
    result = subprocess.run(
        [sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True, timeout=300, cwd=source
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    assert found["package"].startswith(str(source)), found
    return found


def test_a_second_checkout_loads_the_kernels_the_first_one_compiled(tmp_path):
    user = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first, second = checkout(tmp_path / "clone-a"), checkout(tmp_path / "clone-b")
    compiled_once = first_call(first, user)
    assert (compiled_once["hits"], compiled_once["misses"]) == (0, 1)
    assert compiled_once["cache"] == str(
        tmp_path / "cache" / "gru4rec-pipeline" / "numba" / "gru4rec_pipeline" / "model"
    )
    loaded = first_call(second, user)
    assert (loaded["hits"], loaded["misses"]) == (1, 0) and loaded["cache"] == compiled_once["cache"]
    assert not list(first.rglob("*.nbi")) and not list(second.rglob("*.nbi"))  # nothing in the checkouts


def test_a_change_to_any_compiled_module_compiles_the_kernels_anew(tmp_path):
    """A kernel compiles in what it calls from other modules: the cache entry of one kernel is stale once another
    compiled module changes, even where its own module is the same."""
    user = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first, second = checkout(tmp_path / "clone-a"), checkout(tmp_path / "clone-b")
    first_call(first, user)
    weights = second / "gru4rec_pipeline" / "evaluation" / "knn_weights.py"
    weights.write_text(weights.read_text() + "\n# changed\n")
    recompiled = first_call(second, user)
    assert (recompiled["hits"], recompiled["misses"]) == (0, 1)


def test_the_users_own_cache_folder_is_respected(tmp_path):
    source = checkout(tmp_path / "clone")
    found = first_call(source, {"NUMBA_CACHE_DIR": str(tmp_path / "mine"), "XDG_CACHE_HOME": str(tmp_path / "no")})
    assert found["cache"] == str(tmp_path / "mine" / "gru4rec_pipeline" / "model")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    "xdg, expected",
    [("/srv/cache", "/srv/cache/gru4rec-pipeline/numba"), ("", "~/.cache/gru4rec-pipeline/numba")],
)
def test_the_user_cache_folder_follows_xdg(monkeypatch, xdg, expected):
    monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert compiled.user_cache_dir() == Path(os.path.expanduser(expected))


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert compiled.user_cache_dir() == Path(os.path.expanduser("~/.cache/gru4rec-pipeline/numba"))
