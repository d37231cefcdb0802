"""Where a split stage's time and memory go: each phase's CPU and wall seconds, and the memory after it.

``with timed("read"):`` logs, when the block ends, the CPU seconds (all threads) and wall seconds it took, the
process's resident memory then and its peak so far (MiB), on this module's logger at INFO with the figures in
the record's ``phase`` attribute, for a benchmark to collect (``bench/bench_datasets.py`` prints them).
"""

from __future__ import annotations

import logging
import os
import resource
import time
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)


def resident_mib() -> float | None:
    """The process's resident memory now, in MiB (None where ``/proc`` does not say)."""
    try:
        with open("/proc/self/statm") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_mib() -> float:
    """The process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def timed(phase: str) -> Iterator[None]:
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    figures = {
        "phase": phase,
        "cpu_s": round(time.process_time() - cpu, 4),
        "wall_s": round(time.perf_counter() - wall, 4),
        "resident_mib": resident_mib(),
        "peak_mib": peak_mib(),
    }
    log.info(
        "%s: %.2f s CPU, %.2f s wall; %s MiB resident, %.0f MiB at the peak so far",
        phase,
        figures["cpu_s"],
        figures["wall_s"],
        "?" if figures["resident_mib"] is None else f"{figures['resident_mib']:.0f}",
        figures["peak_mib"],
        extra={"phase": figures},
    )
