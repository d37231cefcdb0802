"""The processes a data-parallel training starts, which end with the process that started them, however it ends.

- ``python -m gru4rec_pipeline.training.parallel.processes JOB.json`` (:func:`worker`): one process of the
  training, as torchrun or srun start it (``group.launch``; by hand: one torchrun launcher per node with the same
  rendezvous), never the user's own command line. ``JOB.json`` is the training job (``TrainingJob.to_dict``);
  every process reads the same one, joins the process group (``group``), loads the job's inputs and trains its
  lanes; rank 0 holds the output folder's lock while it trains (shared with the launching process:
  ``run.TrainingLock``).
- ``python -m gru4rec_pipeline.training.parallel.processes PID COMMAND...`` (:func:`guard`): runs COMMAND
  (torchrun, srun) in its own place, unless process PID, which started it, has ended already: how ``group.launch``
  starts the launcher.

Why: a data-parallel training is three generations of processes: the launching one (``run.run_training``, which
holds the output folder's lock), torchrun's agent (or srun), and the workers, which torchrun starts in sessions of
their own. A launching process killed outright (``kill -9``, a lost job) runs no cleanup, and torchrun killed with
it would leave the workers training, unlocked, to write the model of a failed run. So the agent and every worker
ask the kernel for a signal (SIGTERM: torchrun then stops its workers; a worker ends on the spot) when their parent
ends: Linux's parent-death signal (:func:`end_with_parent`; elsewhere the launching process's own cleanup remains).
This module imports nothing heavy at its top, so that a worker asks before torch's imports take their seconds.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path

PARENT = os.getppid()  # the process that started this one, read before torch's imports take their seconds
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


def guard(argv: list[str]) -> None:
    """Run the command ``argv[1:]`` in this process's place, ending with process ``argv[0]``."""
    parent_pid, command = int(argv[0]), argv[1:]
    end_with_parent(parent_pid)
    os.execvp(command[0], command)


def worker(spec_path: str) -> int:
    """One process of the training ``spec_path`` describes (module docstring)."""
    end_with_parent(PARENT)
    from gru4rec_pipeline.compute import resolve_device
    from gru4rec_pipeline.training.job import TrainingJob
    from gru4rec_pipeline.training.loop import train
    from gru4rec_pipeline.training.parallel.group import join_process_group, leave_process_group
    from gru4rec_pipeline.training.run import TrainingLock, load_inputs

    job = TrainingJob.from_dict(json.loads(Path(spec_path).read_text()))
    # The rank as the launcher gave it (torchrun or srun), for every line including the process group's own.
    rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "?"))
    logging.basicConfig(level=logging.INFO, format=f"rank {rank}: %(message)s", stream=sys.stderr)
    group = join_process_group(job.parallel.world_size, resolve_device(job.run.device).type)
    try:
        inputs = load_inputs(job)
        if group.is_writer:
            with TrainingLock(job.folder, shared=True):
                train(job, inputs, group)
        else:
            train(dataclasses.replace(job, run=dataclasses.replace(job.run, progress=False)), inputs, group)
    finally:
        leave_process_group()
    return 0


if __name__ == "__main__":
    # One argument: a worker's job; a process id and a command: the guard around the launcher.
    if len(sys.argv) > 2:
        guard(sys.argv[1:])
    sys.exit(worker(sys.argv[1]))
