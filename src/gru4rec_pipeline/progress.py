"""Progress reporting: a bar on a terminal, sparse one-line messages in logs.

Cluster and Snakemake logs are files, where a redrawn bar becomes thousands of
carriage returns; there we write one line at most every ``interval`` seconds.

A stage script logs to its rule's log file (:func:`configure_logging`), which nobody watches while it runs: the lines
logged with ``**TERMINAL`` (a training's epochs, a long stage's progress about once a minute, the kernels'
compilation) also reach the terminal that Snakemake shows, prefixed with the log file's name.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

log = logging.getLogger("gru4rec_pipeline")

# ``log.info(..., **TERMINAL)``: a line for the terminal as well as the log file.
TERMINAL = {"extra": {"terminal": True}}
TERMINAL_INTERVAL_S = 60.0  # a long stage's progress on the terminal, at most this often


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Counts units of work; shows a tqdm bar on a terminal, else logs sparse lines.

    ``postfix`` (set through :meth:`set_postfix`) is appended to each line, e.g. a running loss.
    """

    def __init__(
        self,
        desc: str,
        total: float | None = None,
        unit: str = "it",
        interval: float = 30.0,
        enabled: bool = True,
        unit_scale: bool = False,
    ):
        self.desc = desc
        self.total = total
        self.unit = unit
        self.interval = interval
        self.enabled = enabled
        self.count = 0.0
        self.postfix = ""
        self.start = time.perf_counter()
        self._last_log = self._last_terminal = self.start
        self._bar = None
        if enabled and stderr_is_terminal():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=sys.stderr)

    def update(self, n: float = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last_log >= self.interval:
            self._last_log = now
            terminal = now - self._last_terminal >= TERMINAL_INTERVAL_S
            if terminal:
                self._last_terminal = now
            self._log_line(now, terminal=terminal)

    def set_postfix(self, text: str) -> None:
        self.postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def _log_line(self, now: float, final: bool = False, terminal: bool = False) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.count / elapsed
        done = f"{self.count:,.0f}"
        left = ""
        if self.total:
            done += f"/{self.total:,.0f} ({100.0 * self.count / self.total:.0f}%)"
            if not final and rate > 0:
                left = f", {time_left((self.total - self.count) / rate)} left"
        tail = f" {self.postfix}" if self.postfix else ""
        state = "done" if final else "progress"
        line = f"{self.desc} {state}: {done} {self.unit}, {elapsed:.1f} s, {rate:,.0f} {self.unit}/s{left}{tail}"
        log.info("%s", line, **(TERMINAL if terminal else {}))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled:
            self._log_line(time.perf_counter(), final=True)
        self.enabled = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(iterable: Iterable[T], desc: str, total: float | None = None, unit: str = "it", **kwargs) -> Iterator[T]:
    """Iterate while reporting progress."""
    with Progress(desc, total=total, unit=unit, **kwargs) as bar:
        for item in iterable:
            yield item
            bar.update(1)


def time_left(seconds: float) -> str:
    """``about 40 s``, ``about 3 min``, ``about 1 h 5 min``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"about {seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"about {minutes} min" if minutes < 60 else f"about {minutes // 60} h {minutes % 60} min"


def configure_logging(log_path: str | None = None, level: int = logging.INFO) -> None:
    """Send this package's log lines to stderr, or to ``log_path`` when given.

    Stage scripts call this with their Snakemake log file so every stage's messages
    (and its exceptions) end up in ``logs/<rule>/...``; the lines logged with ``**TERMINAL`` go to the
    terminal (the stderr before) as well, after the time and the log file's name.
    """
    handlers = []
    if log_path is not None:
        terminal = logging.StreamHandler(sys.stderr)
        terminal.addFilter(lambda record: getattr(record, "terminal", False))
        terminal.setFormatter(logging.Formatter(f"%(asctime)s {log_path}: %(message)s", "%H:%M:%S"))
        handlers.append(terminal)
        stream = open(log_path, "a", buffering=1)
        sys.stderr = stream
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler, *handlers]
    root.setLevel(level)
