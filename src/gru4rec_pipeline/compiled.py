"""Numba, imported for the package in this one place: where the compiled kernels are cached, and what stands in for
numba where it is not installed.

The compiled kernels (``model/kernels``, ``training/parallel/shared_kernels``, the kNN baselines) are compiled once
per user and machine. ``NUMBA_CACHE_DIR``, unless the user has set it, is ``gru4rec-pipeline/numba`` in the user's
cache folder (``XDG_CACHE_HOME``, else ``~/.cache``), and :class:`PackageCacheLocator` files a kernel there by its
module's place in the package and by the content of the package's compiled modules, not by the checkout's path (as
numba itself does): a second checkout of the same code, or the same checkout once its ``__pycache__`` is gone, loads
the kernels instead of compiling them again (about a minute on two cores). numba keys each entry by the CPU and by
its own version as well. :func:`announce_compilation` tells the terminal when the kernels compile.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from gru4rec_pipeline.progress import TERMINAL

CACHE_VARIABLE = "NUMBA_CACHE_DIR"
PACKAGE = Path(__file__).resolve().parent
# Loading every cached kernel takes well under a second; longer means they compile.
ANNOUNCE_AFTER_S = 2.0

log = logging.getLogger("gru4rec_pipeline")


def user_cache_dir() -> Path:
    """Where this user's compiled kernels live unless ``NUMBA_CACHE_DIR`` says otherwise."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, or relative (which the XDG specification says to ignore)
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gru4rec-pipeline" / "numba"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_VARIABLE) or user_cache_dir())


# Before numba is imported: it reads the variable once, then.
os.environ[CACHE_VARIABLE] = str(cache_dir())

try:
    from llvmlite import ir
    from numba import njit, types
    from numba.core import caching
    from numba.extending import intrinsic

    AVAILABLE = True
except ImportError:  # an install for GPU training only: every caller takes its tensor path instead
    AVAILABLE = False
    ir = types = caching = None

    def njit(*args, **options):
        return args[0] if args and callable(args[0]) else (lambda function: function)

    def intrinsic(function):
        return function


# ``cache=True``: compiled once per user and machine and reused by later processes (a Snakemake job each).
# ``error_model="numpy"``: no division-by-zero check per element, which would keep loops from being
# vectorized. Callers pass the scalars in the arrays' dtype so that float32 arithmetic stays float32.
COMPILE_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}


@functools.lru_cache(maxsize=1)
def compiled_sources_digest() -> str:
    """SHA-256 of the package's modules that define compiled functions (and of this one, whose options they compile
    with). A kernel compiles in the compiled functions it calls from other modules, so its cache entry is stale when
    any of them changes (numba's own stamp, its module's content, would miss those)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_bytes()
        if path.name == "compiled.py" or b"@njit" in text or b"@intrinsic" in text:
            digest.update(str(path.relative_to(PACKAGE)).encode())
            digest.update(text)
    return digest.hexdigest()


if AVAILABLE:

    class PackageCacheLocator(caching.InTreeCacheLocator):
        """numba's cache of a function of this package: ``NUMBA_CACHE_DIR`` / the module's folder in the package
        (``gru4rec_pipeline/model``, ...), stamped with :func:`compiled_sources_digest`."""

        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            self._cache_path = str(cache_dir().joinpath(*_package_folder(py_file).parts))

        def get_source_stamp(self):
            return compiled_sources_digest()

        @classmethod
        def from_function(cls, py_func, py_file):
            if _package_folder(py_file) is None:
                return None  # not this package's: numba's own locators
            return super().from_function(py_func, py_file)  # None where the folder cannot be written: numba's own

    caching.CacheImpl._locator_classes.insert(0, PackageCacheLocator)


def _package_folder(py_file) -> Path | None:
    """The folder of ``py_file`` from the package's parent (``gru4rec_pipeline/model``); None outside the package."""
    path = Path(py_file).resolve()
    return path.parent.relative_to(PACKAGE.parent) if PACKAGE in path.parents else None


@contextlib.contextmanager
def announce_compilation(what: str, after_s: float = ANNOUNCE_AFTER_S):
    """Around the first calls of compiled kernels: where they take longer than ``after_s`` (they compile rather than
    load from the cache), say so on the terminal (a line that reaches the terminal from a rule's log too), and how
    long it took in the end."""
    announced = threading.Event()
    started = time.perf_counter()

    def announce():
        announced.set()
        log.info(
            "compiling %s, once per user and machine, about a minute (cached in %s)", what, cache_dir(), **TERMINAL
        )

    timer = threading.Timer(after_s, announce)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()  # an announcement under way is written before the end's
        if announced.is_set():
            log.info("compiled %s in %.0f s", what, time.perf_counter() - started, **TERMINAL)
