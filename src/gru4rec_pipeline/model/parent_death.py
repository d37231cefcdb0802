"""Processes that end with the process that started them, however it ends (Linux's parent-death signal).

A data-parallel training is three generations of processes: the launcher (``training.run_training``, which holds
the output folder's lock), torchrun's agent (or srun), and the workers, which torchrun starts in sessions of their
own. A launcher killed outright (``kill -9``, a lost job) runs no cleanup, and torchrun killed with it would leave
the workers training, unlocked, to write the model of a failed run. So the agent and every worker ask the kernel
for a signal (SIGTERM: torchrun then stops its workers; a worker ends on the spot) when their parent ends:

- ``python -m gru4rec_pipeline.model.parent_death PID COMMAND...`` runs COMMAND in its own place (exec keeps the
  request), unless process PID, which started it, has ended already: how ``distributed.launch`` starts torchrun;
- :func:`end_with_parent` is what a worker calls first.

Elsewhere than on Linux there is no such signal: the launcher's own cleanup (``distributed.launch``) remains.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def end_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> bool:
    """Have ``signum`` sent to this process when its parent ends; ``parent_pid``: the parent that started it. A
    process whose parent has ended already (it now has another) gets the signal at once. False where the
    system has no parent-death signal."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    if os.getppid() != parent_pid:  # the parent ended before the request: no signal would ever come
        os.kill(os.getpid(), signum)
    return True


def main(argv: list[str]) -> None:
    parent_pid, command = int(argv[0]), argv[1:]
    end_with_parent(parent_pid)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
