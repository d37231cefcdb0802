"""Provenance records: config hash, git state, versions."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from gru4rec_pipeline.report.provenance import collect_provenance, config_sha256, git_state


def test_config_hash_ignores_key_order_but_not_values():
    config = {"training": {"losses": {"bpr": {"epochs": 3}}}, "seed": 42}
    reordered = {"seed": 42, "training": {"losses": {"bpr": {"epochs": 3}}}}
    changed = {"seed": 43, "training": {"losses": {"bpr": {"epochs": 3}}}}
    assert config_sha256(config) == config_sha256(reordered)
    assert config_sha256(config) != config_sha256(changed)
    assert len(config_sha256(config)) == 64


def test_config_hash_accepts_values_json_cannot_hold(tmp_path):
    assert config_sha256({"path": tmp_path, "layers": (100,)}) == config_sha256(
        {"path": str(tmp_path), "layers": [100]}
    )


def test_outside_git_the_state_is_unknown(tmp_path):
    assert git_state(tmp_path) == {"git_commit": "unknown", "git_dirty": "unknown"}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_and_dirtiness(tmp_path):
    def git(*args):
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "file.txt").write_text("one\n")
    git("add", "file.txt")
    git("commit", "-q", "-m", "first")
    commit = git("rev-parse", "HEAD")

    assert git_state(tmp_path) == {"git_commit": commit, "git_dirty": False}
    (tmp_path / "untracked.txt").write_text("not part of the commit\n")
    assert git_state(tmp_path)["git_dirty"] is False
    (tmp_path / "file.txt").write_text("two\n")
    assert git_state(tmp_path) == {"git_commit": commit, "git_dirty": True}


def test_collect_provenance_is_complete_and_serialisable(tmp_path):
    record = collect_provenance({"seed": 1}, repo_dir=tmp_path)
    assert record["config_sha256"] == config_sha256({"seed": 1})
    for name in ["python", "torch", "pandas", "pyarrow", "numpy", "snakemake"]:
        assert record["versions"][name], name
    assert record["hostname"]
    assert record["created_utc"].endswith("Z")
    assert json.loads(json.dumps(record)) == record
