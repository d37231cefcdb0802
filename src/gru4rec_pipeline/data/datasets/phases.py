"""The phases of a split stage: the memory each one freed given back, and where time and memory went.

``with phase("read"):`` ends by giving the memory the block freed back to the system (arrow's allocator and
glibc's keep freed blocks for reuse, and a block left between two live ones is never returned: the process's
peak would grow phase after phase), then logs the CPU seconds (all threads) and wall seconds the block took, the
process's resident memory then and its peak so far (MiB), on this module's logger at INFO with the figures in the
record's ``phase`` attribute, for a benchmark to collect (``bench/bench_datasets.py`` prints them).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import pyarrow as pa

log = logging.getLogger(__name__)


def resident_mib() -> float | None:
    """The process's resident memory now, in MiB (None where ``/proc`` does not say)."""
    try:
        with open("/proc/self/statm") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_mib() -> float | None:
    """The process's peak resident memory so far, in MiB (None where the system does not say)."""
    try:
        import resource  # Unix only
    except ImportError:
        return None
    # Linux reports KiB, macOS bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _malloc_trim():
    """glibc's ``malloc_trim`` (None elsewhere), found among the interpreter's own symbols."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


MALLOC_TRIM = _malloc_trim()


def give_back_memory() -> None:
    """Return the freed memory arrow's allocator and the C allocator hold to the system."""
    pa.default_memory_pool().release_unused()
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


@contextmanager
def phase(name: str) -> Iterator[None]:
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    give_back_memory()
    figures = {
        "phase": name,
        "cpu_s": round(time.process_time() - cpu, 4),
        "wall_s": round(time.perf_counter() - wall, 4),
        "resident_mib": resident_mib(),
        "peak_mib": peak_mib(),
    }
    log.info(
        "%s: %.2f s CPU, %.2f s wall; %s MiB resident, %s MiB at the peak so far",
        name,
        figures["cpu_s"],
        figures["wall_s"],
        "?" if figures["resident_mib"] is None else f"{figures['resident_mib']:.0f}",
        "?" if figures["peak_mib"] is None else f"{figures['peak_mib']:.0f}",
        extra={"phase": figures},
    )
