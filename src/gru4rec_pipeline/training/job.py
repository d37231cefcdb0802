"""A training, described once: :class:`TrainingJob`.

A job says what a training reads, computes and writes, and how it runs:

- ``train`` and ``vocab``: the session arrays it trains on and their vocabulary (a retrain: the new clicks, and
  the vocabulary its parent was trained with);
- ``folder``: the model folder it writes (``model/folder.py``);
- ``hyperparameters``: what it computes (``model/hyperparameters.py``);
- ``run``: how it runs: seed, device, threads, engine, progress output, per-epoch checkpoints;
- ``parallel``: the processes of a data-parallel training (per node, nodes) and how they combine their gradients;
- ``epoch_evaluation``: the model evaluated after every epoch (the learning curve), with early stopping;
- ``warm_start``: the parent model a retrain continues on new clicks (:func:`retraining_job`).

The workflow's training scripts build one with :meth:`TrainingJob.from_snakemake`, the command line with
:meth:`TrainingJob.from_args`, a tuning trial directly; a data-parallel training hands it to its processes as JSON
(:meth:`TrainingJob.to_dict`, :meth:`TrainingJob.from_dict`). Every one of them then calls
``run.run_training(job)``. :meth:`TrainingJob.identity` is the one definition of what makes a checkpoint
resumable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from gru4rec_pipeline.errors import ConfigError, DataFormatError, PipelineError
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.files import file_sha256
from gru4rec_pipeline.model.folder import ModelFolder
from gru4rec_pipeline.model.hyperparameters import Hyperparameters
from gru4rec_pipeline.names import DEFAULT_CUTOFFS, DEFAULT_TIE_MODE, DEVICES, ENGINES, EXCHANGES, SPLITS
from gru4rec_pipeline.training.state import TrainingState

PACKAGE = Path(__file__).resolve().parents[1]
# The code a checkpoint belongs to: what GRU4Rec computes and how it is trained.
TRAINING_CODE = ("model", "training")


@dataclass(frozen=True)
class RunOptions:
    """How a training runs; none of it changes what it computes on one device (a checkpoint resumes across it)."""

    seed: int = 42
    device: str = "auto"
    threads: int = 1
    engine: str = "auto"  # names.ENGINES
    progress: bool = True
    checkpoints: bool = True  # a checkpoint after every epoch, resumed by a rerun, removed once the model is written

    def __post_init__(self):
        _require("device", self.device in DEVICES, self.device, f"one of {', '.join(DEVICES)}")
        _require("training.engine", self.engine in ENGINES, self.engine, f"one of {', '.join(ENGINES)}")
        _require("training.threads", self.threads >= 1, self.threads, "a positive integer")


@dataclass(frozen=True)
class ParallelOptions:
    """A data-parallel training: ``processes`` per node on ``nodes`` nodes train one model (1 x 1: one process);
    ``exchange`` (``names.EXCHANGES``) is how they combine their gradients."""

    processes: int = 1
    nodes: int = 1
    exchange: str = "auto"

    def __post_init__(self):
        _require("training.processes", self.processes >= 1, self.processes, "a positive integer")
        _require("training.nodes", self.nodes >= 1, self.nodes, "a positive integer")
        _require("training.exchange", self.exchange in EXCHANGES, self.exchange, f"one of {', '.join(EXCHANGES)}")

    @property
    def world_size(self) -> int:
        return self.processes * self.nodes


@dataclass(frozen=True)
class EpochEvaluationOptions:
    """The model evaluated after every epoch on the session arrays ``sessions`` (of the split ``split``) at
    ``cutoffs``; ``early_stopping``: ``{patience, metric}`` (None: none)."""

    sessions: str
    split: str = "test"
    cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS
    tie_mode: str = DEFAULT_TIE_MODE
    batch_size: int = 512
    early_stopping: dict | None = None

    def __post_init__(self):
        _require("eval_split", self.split in SPLITS, self.split, f"one of {', '.join(SPLITS)}")
        object.__setattr__(self, "cutoffs", tuple(int(k) for k in self.cutoffs))
        if self.early_stopping is not None and not self.early_stopping.get("patience"):
            object.__setattr__(self, "early_stopping", None)

    @classmethod
    def of(cls, sessions, split: str, settings: dict, early_stopping: dict | None = None) -> "EpochEvaluationOptions":
        """From the config's ``evaluation`` section (``settings``) and ``training.early_stopping``."""
        values = EvaluationSettings.from_dict(settings or {})
        stopping = dict(early_stopping) if early_stopping else None
        return cls(str(sessions), split, values.cutoffs, values.tie_mode, values.batch_size, stopping)

    @property
    def settings(self) -> EvaluationSettings:
        return EvaluationSettings(self.cutoffs, self.tie_mode, self.batch_size)


@dataclass(frozen=True)
class WarmStart:
    """A retrain's start: the parent model ``parent`` (its ``training_state.pt`` beside it), continued on new clicks
    filtered by ``protocol`` (the config's section: min_session_length, min_item_support); ``support_decay``: the
    weight of the parent's item support in the sampler's."""

    parent: str
    protocol: dict | None = None
    support_decay: float = 0.0


@dataclass(frozen=True)
class TrainingJob:
    """One training (module docstring)."""

    train: str
    vocab: str
    folder: str
    hyperparameters: Hyperparameters
    run: RunOptions = field(default_factory=RunOptions)
    parallel: ParallelOptions = field(default_factory=ParallelOptions)
    epoch_evaluation: EpochEvaluationOptions | None = None
    warm_start: WarmStart | None = None

    def __post_init__(self):
        for name in ("train", "vocab", "folder"):
            object.__setattr__(self, name, str(getattr(self, name)))
        if self.warm_start is not None and self.parallel.world_size > 1:
            raise ConfigError("training.processes", "a retrain runs in one process; set processes and nodes to 1")

    @property
    def model_folder(self) -> ModelFolder:
        return ModelFolder(self.folder)

    def identity(self) -> dict:
        """What a checkpoint must match to be resumed: the hyperparameters but the epoch count, the seed, the data
        (the training and vocabulary files' bytes; a retrain's parent model and state, and how the new clicks are
        read), and the number of processes. The run's length and the rest of how it runs are not part of it:
        a training resumes with more epochs, on another engine, device or thread count."""
        hyperparameters = {k: v for k, v in self.hyperparameters.to_dict().items() if k != "epochs"}
        identity = {
            "hyperparameters": hyperparameters,
            "seed": self.run.seed,
            "train": file_sha256(self.train),
            "vocab": file_sha256(self.vocab),
            "processes": self.parallel.world_size,
        }
        if self.warm_start is not None:
            parent = ModelFolder.of(self.warm_start.parent)
            identity["warm_start"] = {
                "parent": file_sha256(parent.model),
                "parent_state": file_sha256(parent.state),
                "protocol": self.warm_start.protocol,
                "support_decay": self.warm_start.support_decay,
            }
        return identity

    def identity_digest(self) -> str:
        """A SHA-256 of :meth:`identity` and of the training code (the sources of ``model/`` and ``training/``):
        the checkpoint's folder name and its record of whose it is."""
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=str).encode())
        for part in TRAINING_CODE:
            for path in sorted((PACKAGE / part).rglob("*.py")):
                digest.update(str(path.relative_to(PACKAGE)).encode())
                digest.update(path.read_bytes())
        return digest.hexdigest()

    # -- as JSON, for the processes of a data-parallel training ----------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainingJob":
        curve, warm = values.get("epoch_evaluation"), values.get("warm_start")
        return cls(
            values["train"],
            values["vocab"],
            values["folder"],
            Hyperparameters.from_dict(values["hyperparameters"]),
            RunOptions(**values["run"]),
            ParallelOptions(**values["parallel"]),
            EpochEvaluationOptions(**curve) if curve is not None else None,
            WarmStart(**warm) if warm is not None else None,
        )

    # -- the entry points' builders --------------------------------------------------------------------------------
    @classmethod
    def from_snakemake(cls, smk, hyperparameters: dict | None = None) -> "TrainingJob":
        """The job of a training rule (``train_model`` and the rules using it, ``train_tuned_model``,
        ``retrain_model``) from its ``snakemake`` object: inputs, the model folder of ``output.model``, params,
        threads; ``hyperparameters``: the loss's setting where it is not ``params.hyperparameters`` (a tuned
        model's, from its study's best.yaml). The rule's job threads are shared by its processes on a node."""
        params, inputs = smk.params, smk.input
        folder = Path(smk.output.model).parent
        engine = getattr(params, "engine", "auto")
        if hasattr(inputs, "clicks"):  # a retrain
            run = RunOptions(device=params.device, threads=smk.threads, engine=engine, progress=False)
            warm_start = WarmStart(inputs.model, params.protocol, params.support_decay)
            return retraining_job(warm_start, inputs.clicks, inputs.vocab, folder, params.epochs, run)
        parallel = ParallelOptions(
            getattr(params, "processes", 1), getattr(params, "nodes", 1), getattr(params, "exchange", "auto")
        )
        threads = max(1, smk.threads // parallel.processes)
        run = RunOptions(seed=params.seed, device=params.device, threads=threads, engine=engine)
        values = params.hyperparameters if hyperparameters is None else hyperparameters
        curve = None
        if params.eval_every_epoch:
            split, stopping = getattr(params, "eval_split", "test"), getattr(params, "early_stopping", None)
            curve = EpochEvaluationOptions.of(inputs.evaluation, split, params.evaluation, stopping)
        loss = Hyperparameters.from_dict({**values, "loss": smk.wildcards.loss})
        return cls(inputs.train, inputs.vocab, folder, loss, run, parallel, curve)

    @classmethod
    def from_args(cls, args, hyperparameters: dict | None = None) -> "TrainingJob":
        """The job of the commands ``train``, ``tune-train`` and ``retrain`` from their parsed arguments
        (``cli/``); ``hyperparameters``: the loss's setting (``--set`` values, a study's best setting)."""
        run = RunOptions(
            seed=getattr(args, "seed", 42),
            device=args.device,
            threads=args.threads,
            engine=getattr(args, "engine", "auto"),
            progress=not args.quiet,
            checkpoints=not getattr(args, "no_checkpoints", False),
        )
        if args.command == "retrain":
            protocol = {"min_session_length": args.min_session_length, "min_item_support": args.min_item_support}
            warm_start = WarmStart(args.model, protocol, args.support_decay)
            return retraining_job(warm_start, args.clicks, args.vocab, args.out, args.epochs, run)
        parallel = ParallelOptions(
            getattr(args, "processes", 1), getattr(args, "nodes", 1), getattr(args, "exchange", "auto")
        )
        curve = None
        if getattr(args, "early_stopping", 0) and not getattr(args, "eval", None):
            raise ConfigError("--early-stopping", "needs the per-epoch evaluation: give --eval (a valid split)")
        if getattr(args, "eval", None):
            stopping = {"patience": args.early_stopping, "metric": args.early_stopping_metric}
            settings = {"cutoffs": args.cutoffs, "tie_mode": args.tie_mode, "batch_size": args.eval_batch_size}
            curve = EpochEvaluationOptions.of(args.eval, args.eval_split, settings, stopping)
        loss = Hyperparameters.from_dict({**(hyperparameters or {}), "loss": args.loss})
        return cls(args.train, args.vocab, args.out, loss, run, parallel, curve)


def retraining_job(warm_start: WarmStart, clicks, vocab, folder, epochs: int, run: RunOptions) -> TrainingJob:
    """A retrain as a training job: the parent model of ``warm_start`` continued on the clicks ``clicks`` (yoochoose
    .dat or an event Parquet file) for ``epochs`` epochs, its vocabulary ``vocab`` grown by their new items, into
    the model folder ``folder``. The hyperparameters and the seed are the parent's (its training state's); ``run``
    says how it runs. Nothing is read but the parent's training state: the rest is checked when it runs."""
    parent = ModelFolder.of(warm_start.parent)
    if Path(folder).resolve() == parent.path.resolve():
        raise PipelineError(f"{folder}: the retrained model would replace its parent {parent.model}; choose another")
    if not parent.state.exists():
        raise DataFormatError(
            warm_start.parent,
            f"no {parent.state.name} beside it: the model was written by a version that does not keep its "
            "optimizer's state, which a retrain continues; train it again with this version",
        )
    state = TrainingState.load(parent.state)
    hyperparameters = Hyperparameters.from_dict({**state.hyperparameters, "epochs": epochs})
    run = dataclasses.replace(run, seed=state.seed)
    return TrainingJob(clicks, vocab, folder, hyperparameters, run, warm_start=warm_start)


def _require(key: str, ok: bool, value, expected: str) -> None:
    if not ok:
        raise ConfigError(key, f"got {value!r}, expected {expected}")
