"""Where a result came from: code version, configuration, library versions, machine, time.

Every evaluate stage stores this record next to its metrics so that a number in the
summary can be traced back to the exact commit and configuration that produced it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

UNKNOWN = "unknown"

# Distribution names (as pip knows them) whose versions change results or speed.
TRACKED_PACKAGES = ["torch", "numpy", "pandas", "pyarrow", "snakemake", "matplotlib", "gru4rec-pipeline"]


def config_sha256(config: dict) -> str:
    """SHA-256 of the configuration as canonical JSON (sorted keys, no whitespace).

    Key order and formatting do not change the hash; any value does. Values that JSON
    cannot hold (paths, tuples) are hashed through their string form.
    """
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def package_versions(names: list[str] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed version of each distribution; "not installed" where it is missing.

    Read from the package metadata, so nothing heavy (torch) is imported for it.
    """
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _git(repo_dir: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(repo_dir: str | Path | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the git checkout holding ``repo_dir`` (default: working directory).

    ``dirty`` is True when tracked files differ from the commit (untracked files do not
    count, as with ``git describe --dirty``). Outside git, without git, or before the
    first commit both fields are "unknown".
    """
    repo = Path(repo_dir) if repo_dir is not None else Path.cwd()
    commit = _git(repo, "rev-parse", "--verify", "HEAD")
    if not commit:
        return {"git_commit": UNKNOWN, "git_dirty": UNKNOWN}
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    dirty: bool | str = UNKNOWN if status is None else bool(status)
    return {"git_commit": commit, "git_dirty": dirty}


def collect_provenance(config: dict, repo_dir: str | Path | None = None) -> dict[str, Any]:
    """A JSON-serialisable record of what produced a result.

    Keys: git_commit, git_dirty, config_sha256, versions (python and TRACKED_PACKAGES),
    hostname, platform, created_utc (ISO-8601 with a Z suffix).
    """
    record = git_state(repo_dir)
    record["config_sha256"] = config_sha256(config)
    record["versions"] = package_versions()
    record["hostname"] = socket.gethostname()
    record["platform"] = platform.platform()
    record["created_utc"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return record
