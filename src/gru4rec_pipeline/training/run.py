"""The training stage's driver: :func:`run_training`, what the workflow's training scripts and the commands
``train``, ``tune-train`` and ``retrain`` call with their :class:`~gru4rec_pipeline.training.job.TrainingJob`.

It reads the job's inputs (:func:`load_inputs`: bad input stops the run before any process starts), holds the lock
on the model folder (:class:`TrainingLock`), trains in this process (``loop.train``) or launches the processes of a
data-parallel training (``parallel/``) and waits for them, and removes the checkpoints once the model is written
(a forced rerun then trains anew).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
from pathlib import Path

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError, PipelineError
from gru4rec_pipeline.files import write_json_atomic
from gru4rec_pipeline.training.job import TrainingJob
from gru4rec_pipeline.training.loop import TrainingInputs, train
from gru4rec_pipeline.training.parallel.group import launch
from gru4rec_pipeline.training.retraining import retraining_inputs

log = logging.getLogger("gru4rec_pipeline")

LOCK_NAME = ".training.lock"
LOCK_ATTEMPTS = 10  # opens of the lock file before a lock on the file at its path is given up


def run_training(job: TrainingJob) -> dict:
    """The training stage: train ``job`` and write its model folder; returns the training's summary."""
    inputs = load_inputs(job)
    folder = job.model_folder
    with TrainingLock(folder.path) as lock:
        if job.parallel.world_size > 1:
            job = _without_epoch_evaluation(job)
            lock.share()  # with rank 0, which holds it too while it trains
            summary = _launch_processes(job)
        else:
            summary = train(job, inputs)
        folder.remove_checkpoints()
    log.info("training summary: %s", summary)
    return summary


def load_inputs(job: TrainingJob) -> TrainingInputs:
    """The session arrays and vocabulary of ``job`` (a retrain's: ``retraining.retraining_inputs``), checked
    against each other, and the sessions of its per-epoch evaluation."""
    if job.warm_start is not None:
        return retraining_inputs(job)
    vocabulary = Vocabulary.load(job.vocab)
    train_arrays = SessionArrays.load(job.train)
    vocabulary.check_indices(train_arrays, job.train, job.vocab)
    curve = job.epoch_evaluation
    evaluation = SessionArrays.load(curve.sessions) if curve is not None else None
    identity = vocabulary.identity()
    return TrainingInputs(train_arrays, vocabulary.support, identity, evaluation, vocabulary_table=vocabulary)


def _without_epoch_evaluation(job: TrainingJob) -> TrainingJob:
    """The per-epoch evaluation runs in the training's own process: a data-parallel training goes without its
    learning curve (said so), and early stopping, which would be ignored there, is refused."""
    if job.epoch_evaluation is None:
        return job
    if job.epoch_evaluation.early_stopping is not None:
        raise ConfigError(
            "training.early_stopping",
            "early stopping needs the per-epoch evaluation, which a data-parallel training (training.processes or "
            "training.nodes above 1) does not run; turn one of them off",
        )
    log.warning("a data-parallel training is not evaluated after each epoch: history.csv has no learning curve")
    return dataclasses.replace(job, epoch_evaluation=None)


def _launch_processes(job: TrainingJob) -> dict:
    """Start the processes of a data-parallel training on ``job`` (written into the model folder for them) and
    return the summary rank 0 wrote."""
    folder = job.model_folder
    spec_path = folder.path / f".{folder.model.stem}.run.json"
    write_json_atomic(spec_path, job.to_dict())
    try:
        launch(job.parallel.processes, job.parallel.nodes, str(spec_path), job.run.threads)
    finally:
        spec_path.unlink(missing_ok=True)
    return json.loads(folder.summary.read_text())


class TrainingLock:
    """The lock on a training's output folder (``LOCK_NAME`` in it), held while the training runs.

    A training takes it exclusively: a second training of the folder (say, started after a hard-killed Snakemake
    left the first running) is refused instead of deleting files under the first, naming the holders' process ids
    (written in the file). A data-parallel training then shares it (:meth:`share`) with its rank 0, which joins with
    ``shared=True``, so the folder stays locked while any process of the training lives. The operating system
    releases a holder's part when the process ends, however it ends, so a lock left by a killed training never
    blocks the next one; the last holder to leave removes the file.
    """

    def __init__(self, folder: str | Path, shared: bool = False):
        self.path = Path(folder) / LOCK_NAME
        self.shared = shared
        self._handle = None
        self._made_folder = False

    def __enter__(self) -> "TrainingLock":
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._made_folder = True
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        for _ in range(LOCK_ATTEMPTS):
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holders = handle.read().split()
                handle.close()
                self._remove_made_folder()
                raise PipelineError(
                    f"{self.path.parent}: another training of this output is running "
                    f"({'process' if len(holders) < 2 else 'processes'} {', '.join(holders) or 'unknown'}, lock "
                    f"{self.path}); wait for it to finish or stop that process, then run again"
                ) from None
            if _same_file(handle, self.path):
                break
            handle.close()  # locked a file its last holder removed meanwhile: lock the one now in its place
        else:
            raise PipelineError(f"{self.path}: the lock file keeps being replaced; is another training starting?")
        if not self.shared:
            handle.seek(0)
            handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def share(self) -> None:
        """Let the training's rank 0 join (``shared=True``). Refused when another training took the lock in the
        moment the exclusive lock is turned into a shared one (the system does not do that atomically)."""
        try:
            fcntl.flock(self._handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineError(f"{self.path.parent}: another training took this output's lock") from None

    def __exit__(self, *exc) -> None:
        if self._handle is None:
            return
        try:  # the last holder removes the file (while still holding it: no one else can be locking it)
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(self._handle, self.path):
                self.path.unlink()
        except BlockingIOError:
            pass  # another process of the training still holds it
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None
        self._remove_made_folder()

    def _remove_made_folder(self) -> None:
        """The output folder this lock created, when nothing was written into it (a refused or failed run)."""
        if self._made_folder:
            try:
                self.path.parent.rmdir()
            except OSError:
                pass  # not empty: it holds what the training wrote


def _same_file(handle, path: Path) -> bool:
    """``handle`` is open on the file now at ``path`` (not on one removed from there)."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False
