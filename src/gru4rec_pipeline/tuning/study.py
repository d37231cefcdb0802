"""Where a study lives and how its workers share it.

- **Storage.** Optuna's journal storage in ``{folder}/{study}.journal`` (``folder``: ``results/tuning/{loss}``):
  every change is a line appended under a lock file, which works on a cluster's shared file system where
  SQLite's locking does not. With ``tuning.storage`` set to an RDB URL the study lives in that database instead.
- **The trial count.** A worker starts a trial only while the study's complete, pruned and running trials are
  fewer than the target, and it counts and starts under one lock (:class:`StudyLock`). A running trial ends
  complete, pruned or failed, so complete + pruned never exceeds the target however many workers race; a failed
  trial leaves room for another one.
- **Dead workers.** Worker slot ``i`` is one Snakemake job, so at most one process runs as worker ``i`` at a
  time. A trial left running by an earlier process of the same slot (killed, or interrupted with Ctrl-C), by a
  slot the config no longer has, or with no worker at all, belongs to a dead worker: it is marked failed with the
  reason and its parameters are queued as a new trial, which the next ``ask`` takes first (once: a retried trial
  whose worker dies again is not queued a third time).
- **No repeats.** Before every draw the worker's sampler is seeded anew from the configured seed, its slot and the
  number of trials the storage holds (``new_sampler``), so a restarted worker, or one extending the study to more
  trials, draws on from where the study is instead of replaying its first draws. A draw that repeats the
  parameters of a complete, pruned or running trial is failed at once as a repeat, not run, and drawn again; a
  finite space whose every setting the study holds stops the worker with an error.
- **The loop.** :func:`run_trials` starts trials and tells the study how each one ended: complete with the
  objective's value, pruned, or failed with the reason in its ``failure`` attribute (a PipelineError such as a
  diverged training; any other exception is recorded too, and stops the worker as the bug it is).
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock, JournalStorage
from optuna.trial import TrialState

from gru4rec_pipeline.errors import PipelineError

log = logging.getLogger(__name__)

# Seconds after which a lock file whose holder died is removed by force; holding it takes well under a second.
STUDY_LOCK_GRACE_SECONDS = 30
# User attributes of a trial.
WORKER = "worker"  # the worker slot that ran it
RUN = "run"  # the process of that slot (host:pid:random)
FAILURE = "failure"  # why it failed
RETRY_OF = "retry_of"  # the trial, left by a dead worker, whose parameters it runs again
DEFAULT = "default"  # the configured setting (the study's first trial)
REPEAT_OF = "repeat_of"  # the trial whose parameters a draw repeated (the draw is failed, not run)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# A worker whose trials keep failing stops: the space or the data is wrong, not one unlucky point.
MAX_FAILURES_IN_A_ROW = 10
# Draws in a row that repeat a held setting before a worker gives up on a space it cannot tell is exhausted.
MAX_REPEATS_IN_A_ROW = 50


@dataclass(frozen=True)
class StudyLocation:
    """A study's name and storage: the journal file in ``folder``, or the RDB URL ``storage``."""

    name: str
    folder: Path
    storage_url: str = ""

    @property
    def journal(self) -> Path | None:
        return None if self.storage_url else self.folder / f"{self.name}.journal"

    def describe(self) -> str:
        """The journal's path, or the URL without its password."""
        return str(self.journal) if self.journal else re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", self.storage_url)

    def storage(self):
        if self.journal is None:
            return self.storage_url
        self.folder.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(self.journal)))

    def create(self, sampler=None, pruner=None) -> optuna.Study:
        """Open the study, creating it if it is new."""
        return optuna.create_study(
            study_name=self.name,
            storage=self.storage(),
            sampler=sampler,
            pruner=pruner,
            direction="maximize",
            load_if_exists=True,
        )

    def load(self) -> optuna.Study:
        """Open an existing study; PipelineError naming the storage when there is none."""
        if self.journal is not None and not self.journal.exists():
            raise PipelineError(f"{self.journal}: no study journal here; run the study's workers first")
        try:
            return optuna.load_study(study_name=self.name, storage=self.storage())
        except KeyError:
            raise PipelineError(f"{self.describe()}: holds no study named {self.name}") from None

    def lock(self) -> "StudyLock":
        return StudyLock(self.folder / f"{self.name}.ask")


class StudyLock:
    """Exclusive access to a study's trial bookkeeping, across processes and machines sharing the folder.

    Optuna's own lock file for journal storage on network file systems (created with O_EXCL, NFSv3 or later);
    one whose holder died is removed after ``STUDY_LOCK_GRACE_SECONDS``.
    """

    def __init__(self, target: Path):
        target.parent.mkdir(parents=True, exist_ok=True)
        self._lock = JournalFileOpenLock(str(target), grace_period=STUDY_LOCK_GRACE_SECONDS)

    def __enter__(self) -> "StudyLock":
        self._lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def stale_reason(trial: optuna.trial.FrozenTrial, worker: int, workers: int, run: str) -> str | None:
    """Why the running ``trial`` belongs to a dead worker, seen from worker ``worker`` (process ``run``) of
    ``workers``; None when its worker may be alive."""
    slot, owner = trial.user_attrs.get(WORKER), trial.user_attrs.get(RUN)
    if slot is None:
        return "started without a worker (its process ended before naming itself)"
    if slot >= workers:
        return f"worker {slot} is not one of the {workers} workers the config runs now"
    if slot == worker and owner != run:
        return f"worker {slot} ended without finishing it (process {owner}, followed by {run})"
    return None


def retire_stale_trials(study: optuna.Study, worker: int, workers: int, run: str) -> list[int]:
    """Fail the running trials of dead workers and queue their parameters again; returns their numbers.
    Call it under the study's lock."""
    retired = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, worker, workers, run)
        if reason is None:
            continue
        retry = RETRY_OF not in trial.user_attrs
        suffix = "; its parameters run again as a new trial" if retry else "; a retry already, so not run again"
        # Through a handle on the stored trial: a frozen trial's attributes cannot be set.
        optuna.trial.Trial(study, trial._trial_id).set_user_attr(FAILURE, reason + suffix)
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        if retry:
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
        log.warning("trial %d: %s%s", trial.number, reason, suffix)
        retired.append(trial.number)
    return retired


def start_trial(
    study: optuna.Study,
    lock: StudyLock,
    target: int,
    distributions: dict,
    worker: int,
    workers: int,
    run: str,
    first_params: dict | None = None,
    new_sampler=None,
) -> optuna.Trial | None:
    """The next trial for worker ``worker``, its parameters drawn; None when the study holds ``target`` complete,
    pruned or running trials. An empty study first queues ``first_params`` (the configured setting).
    ``new_sampler(trials_held)``: the sampler for the next draw, given the number of trials in the storage."""
    with lock:
        retire_stale_trials(study, worker, workers, run)
        if first_params is not None and not study.get_trials(deepcopy=False):
            study.enqueue_trial(first_params, user_attrs={DEFAULT: True})
        counted = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if len(counted) >= target:
            return None
        held = {_setting_key(t.params): t.number for t in counted}
        for _ in range(MAX_REPEATS_IN_A_ROW):
            size = setting_count(distributions)
            if size is not None and len(held) >= size:
                break
            if new_sampler is not None:
                study.sampler = new_sampler(len(study.get_trials(deepcopy=False)))
            trial = study.ask(distributions)
            trial.set_user_attr(WORKER, worker)
            trial.set_user_attr(RUN, run)
            repeated = held.get(_setting_key(trial.params))
            if repeated is None:
                return trial
            trial.set_user_attr(REPEAT_OF, repeated)
            trial.set_user_attr(FAILURE, f"its parameters repeat trial {repeated}'s; not run, drawn again")
            study.tell(trial, state=TrialState.FAIL)
            log.info("trial %d repeats trial %d's parameters: drawn again", trial.number, repeated)
        raise PipelineError(
            f"the search space holds {len(held)} settings the study has tried and "
            f"{'no others' if size is not None and len(held) >= size else 'the sampler finds no others'}, "
            f"fewer than the {target} trials asked: lower tuning.trials or widen tuning.spaces"
        )


def _setting_key(params: dict) -> str:
    return repr(sorted(params.items()))


def setting_count(distributions: dict) -> int | None:
    """How many distinct settings the space holds; None where a dimension is continuous."""
    count = 1
    for distribution in distributions.values():
        if isinstance(distribution, CategoricalDistribution):
            count *= len(distribution.choices)
        elif getattr(distribution, "step", None) is not None and not getattr(distribution, "log", False):
            count *= int(round((distribution.high - distribution.low) / distribution.step)) + 1
        else:
            return None
    return count


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def new_run_id() -> str:
    """Names this process of a worker slot in its trials (host, pid, and a random part against pid reuse)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def record_trial(study: optuna.Study, trial: optuna.Trial, objective) -> tuple[TrialState, str]:
    """Run ``trial`` and tell the study how it ended; returns its state and, for a failure, the reason."""
    started = time.perf_counter()
    value, state, reason = None, TrialState.COMPLETE, ""
    try:
        value = objective(trial)
        if not math.isfinite(value):
            state, reason = TrialState.FAIL, f"the metric is {value}"
    except optuna.TrialPruned as stop:
        state, reason = TrialState.PRUNED, str(stop)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was failed by another worker, which took its worker for dead; dropped", trial.number)
        return TrialState.FAIL, "failed by another worker"
    except (PipelineError, ArithmeticError) as failure:
        state, reason = TrialState.FAIL, str(failure)
    except Exception as failure:
        # A bug, not a bad point: recorded, then the worker stops with it.
        _tell(study, trial, TrialState.FAIL, None, f"{type(failure).__name__}: {failure}")
        raise
    _tell(study, trial, state, value if state == TrialState.COMPLETE else None, reason)
    seconds = time.perf_counter() - started
    if state == TrialState.COMPLETE:
        log.info("trial %d complete in %.1f s: %.4f", trial.number, seconds, value)
    else:
        log.info("trial %d %s after %.1f s: %s", trial.number, state.name.lower(), seconds, reason)
    return state, reason


def _tell(study: optuna.Study, trial: optuna.Trial, state: TrialState, value, failure: str) -> None:
    try:
        if state == TrialState.FAIL:
            trial.set_user_attr(FAILURE, failure)
        study.tell(trial, value, state=state, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was failed by another worker meanwhile; its result is dropped", trial.number)


def run_trials(
    study: optuna.Study,
    location: StudyLocation,
    objective,
    target: int,
    distributions: dict,
    worker: int,
    workers: int,
    first_params: dict | None = None,
    run: str | None = None,
    new_sampler=None,
) -> dict:
    """Run trials until the study holds ``target`` complete, pruned or running ones; returns what this worker
    did (``trials``: their numbers, and how many ended complete, pruned and failed)."""
    run = run or new_run_id()
    lock = location.lock()
    done = {"trials": [], "complete": 0, "pruned": 0, "failed": 0}
    failures_in_a_row = 0
    while True:
        trial = start_trial(study, lock, target, distributions, worker, workers, run, first_params, new_sampler)
        if trial is None:
            return done
        state, reason = record_trial(study, trial, objective)
        done["trials"].append(trial.number)
        done[{TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(state, "failed")] += 1
        failures_in_a_row = failures_in_a_row + 1 if state == TrialState.FAIL else 0
        if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            raise PipelineError(
                f"study {location.name}: worker {worker}'s last {failures_in_a_row} trials failed, the last one with "
                f"'{reason}'; check the search space and the data"
            )
