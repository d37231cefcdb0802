"""What a training leaves behind while it runs: per-epoch checkpoints, the history, the lock on its folder.

- A checkpoint after every epoch holds the weights, the optimizer, the dropout and sampler generators
  and the history (and, with early stopping, the same of the best epoch so far), so an interrupted training
  resumes after its last finished epoch and ends with the same weights as an uninterrupted one. It is only
  resumed by the very same training: same settings, data and training code (:func:`training_fingerprint` names
  its folder).
- ``history.csv``: one row per epoch (``names.HISTORY_COLUMNS``).
- :class:`TrainingLock`: one training per output folder. A second one (say, started after a hard-killed
  Snakemake left the first running) refuses to start instead of deleting files under the first; the processes
  of a data-parallel training hold it together.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from gru4rec_pipeline.errors import PipelineError
from gru4rec_pipeline.files import atomic_output
from gru4rec_pipeline.model.sampling import set_generator_state
from gru4rec_pipeline.names import HISTORY_COLUMNS

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "gru4rec_pipeline.checkpoint/2"
CHECKPOINT_NAME = "checkpoint.pt"
LOCK_NAME = ".training.lock"
LOCK_ATTEMPTS = 10  # opens of the lock file before a lock on the file at its path is given up
MODEL_CODE = Path(__file__).parent  # the training code a checkpoint belongs to


def training_fingerprint(settings: dict, train_path: str | Path) -> str:
    """A short hash of the settings, the training data and the training code (the model package's sources)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in [Path(train_path), *sorted(MODEL_CODE.glob("*.py"))]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def capture_state(step, sampler, epoch: int) -> dict:
    """A copy of what continues a training after ``epoch``: weights, optimizer state, dropout and sampler
    generators (``step``: the ``TrainStep``; ``sampler``: its ``NegativeSampler`` or None)."""
    return {
        "epoch": epoch,
        "model": {k: v.detach().cpu().clone() for k, v in step.model.state_dict().items()},
        "optimizer": {k: v.clone() for k, v in step.optimizer.state_dict().items()},
        "dropout_generator": step.dropout_generator.get_state(),
        "sampler": _cloned(sampler.state_dict()) if sampler is not None else None,
    }


def restore_state(state: dict, step, sampler) -> None:
    """Put a :func:`capture_state` back into the step and the sampler."""
    step.model.load_state_dict(state["model"])
    step.optimizer.load_state_dict(state["optimizer"])
    set_generator_state(step.dropout_generator, state["dropout_generator"], "dropout")
    if sampler is not None:
        sampler.load_state_dict(state["sampler"])


def _cloned(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {key: _cloned(item) for key, item in value.items()}
    return value


def checkpoint_payload(fingerprint: dict, state: dict, history: list, best: dict | None) -> dict:
    """The checkpoint after ``state["epoch"]``: the training's state, its history, and (early stopping) the state
    of the best epoch so far, which the model keeps in the end even when the training is resumed after it."""
    return {"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, **state, "history": history, "best": best}


def save_checkpoint(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # made by the first checkpoint: a failed epoch 1 leaves none
    with atomic_output(path) as temporary:
        torch.save(payload, temporary)


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint at ``path``; None when there is none or it cannot be used (the training starts over)."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: start over rather than fail
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        log.warning("ignoring %s: not a checkpoint of format %s", path, CHECKPOINT_FORMAT)
        return None
    return payload


def write_history(path: str | Path, history: list[dict]) -> None:
    """``HISTORY_COLUMNS``, then any further columns of the rows (a learning curve's recall@k, mrr@k, eval_s)."""
    extra = [key for key in (history[0] if history else {}) if key not in HISTORY_COLUMNS]
    with atomic_output(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*HISTORY_COLUMNS, *extra])
        writer.writeheader()
        writer.writerows(history)


class TrainingLock:
    """The lock on a training's output folder (``LOCK_NAME`` in it), held while the training runs.

    A training takes it exclusively: a second training of the folder is refused, naming the holders' process
    ids (written in the file). A data-parallel training then shares it (:meth:`share`) with its rank 0, which
    joins with ``shared=True``, so the folder stays locked while any process of the training lives. The
    operating system releases a holder's part when the process ends, however it ends, so a lock left by a killed
    training never blocks the next one; the last holder to leave removes the file.
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
