"""Retraining: a trained model continues on new clicks, with a vocabulary that grows (``gru4rec-pipeline retrain``,
the workflow's ``retrain_model`` and rolling-evaluation rules).

A retrain is a training job with a warm start (``job.retraining_job``: the parent's hyperparameters and seed).
When it runs, :func:`retraining_inputs` checks the parent (its model and the training state beside it, its
vocabulary), maps the new clicks to the grown vocabulary (``data/increment.py``: the data stage's readers and
protocol filters; old items keep their index, new ones are appended) and hands the training a
:class:`ParentState`, which the trainer applies right after the network, the step and the sampler are built (and
before a checkpoint of the retrain itself is resumed): weights, Adagrad accumulators and momentum, and the dropout
and sampler streams continue; the sampler draws by the support of the new clicks (``support_decay`` mixes in the
parent's). So a retrain on the very same data with no new item is the parent's training continued for more epochs,
bit for bit on the CPU.

Growing the vocabulary: item matrices (output weights and bias, a separate input embedding, the one-hot input
layer) and their per-row optimizer state are built at the grown size with fresh rows, drawn as at the start of
a training; the parent's rows are copied over the first ``n_parent`` of them, one copy of each matrix per
retrain. Dense parameters and their state are copied as they are; the generators continue their streams.

The output is an ordinary model folder (and its ``vocab.parquet``, the grown vocabulary) that ``evaluate``,
``recommend`` and a further retrain accept; its ``training.json`` names the parent model and the clicks it was
retrained on (``retrained_from``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gru4rec_pipeline.data.increment import new_sessions, utc
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError, PipelineError
from gru4rec_pipeline.files import file_sha256
from gru4rec_pipeline.model.folder import ModelFolder, check_vocabulary, load_model
from gru4rec_pipeline.model.network import weights_digest
from gru4rec_pipeline.training.loop import TrainingInputs
from gru4rec_pipeline.training.sampler import set_generator_state
from gru4rec_pipeline.training.state import TrainingState

# Parameters with one row per item: they grow with the vocabulary.
ITEM_ROW_PARAMETERS = ("item_weight", "item_bias", "input_embedding", "gru_input_weights.0")


@dataclass
class ParentState:
    """What a retrain starts from: the parent's weights, and its training state (optimizer state, generators)."""

    weights: dict[str, Tensor]
    state: TrainingState
    source: str  # the training state's file, for errors

    @property
    def n_items(self) -> int:
        return int(self.weights["item_weight"].shape[0])

    @property
    def time_range(self) -> tuple[float, float]:
        return self.state.time_range

    @property
    def epochs(self) -> int:
        return self.state.epochs

    def apply(self, step, sampler) -> None:
        """Overwrite the freshly built ``step`` (network, optimizer, dropout) and ``sampler`` with the parent's."""
        try:
            self._apply(step, sampler)
        except PipelineError as exc:
            raise DataFormatError(self.source, str(exc)) from None

    def _apply(self, step, sampler) -> None:
        current = step.model.state_dict()  # tensors sharing the parameters' storage
        for name, source in self.weights.items():
            _copy_rows(current[name], source, name, grows=name in ITEM_ROW_PARAMETERS)
        shapes = {name: tuple(source.shape) for name, source in self.weights.items()}
        snapshot = self.state.last
        for name, target in step.optimizer.state.items():
            source = snapshot.optimizer.get(name)
            if source is None:
                raise PipelineError(f"the training state has no optimizer state {name!r}: it belongs to another model")
            if name == "dense":
                _copy_dense_state(target, source, step.dense_names, shapes, current)
            else:
                _copy_rows(target, source, f"optimizer state {name}", grows=name in ITEM_ROW_PARAMETERS)
        set_generator_state(step.dropout_generator, snapshot.dropout_generator, "dropout")
        if sampler is not None and snapshot.sampler is not None:
            sampler.load_state_dict(snapshot.sampler)


def _copy_rows(target: Tensor, source: Tensor, name: str, grows: bool) -> None:
    """``source`` into the first rows of ``target``: equal shapes, or (``grows``: one row per item) ``target`` with
    more rows, the grown vocabulary's new items."""
    if target.shape == source.shape:
        target.copy_(source)
    elif grows and target.shape[1:] == source.shape[1:] and target.shape[0] >= source.shape[0]:
        target[: source.shape[0]].copy_(source)
    else:
        raise PipelineError(f"{name}: the parent's shape {tuple(source.shape)} does not fit {tuple(target.shape)}")


def _copy_dense_state(target: Tensor, source: Tensor, names: list[str], parent_shapes: dict, current: dict) -> None:
    """The flat dense optimizer state [2, total], segment by segment: a segment that grew (the item matrices of
    ce_full, row-major) takes the parent's values as its prefix, the new items' part stays zero."""
    new_offset = old_offset = 0
    for name in names:
        new_size, old_size = current[name].numel(), int(torch.Size(parent_shapes[name]).numel())
        if old_size > new_size:
            raise PipelineError(f"optimizer state of {name}: the parent's {old_size} values do not fit {new_size}")
        target[:, new_offset : new_offset + old_size].copy_(source[:, old_offset : old_offset + old_size])
        new_offset, old_offset = new_offset + new_size, old_offset + old_size
    if old_offset != source.shape[1]:
        raise PipelineError("the training state's dense optimizer state does not match the model's parameters")


def load_parent(model_path) -> ParentState:
    """The model ``model_path`` and its training state; clear errors, naming the file, for a state that belongs to
    another model (and those of ``TrainingState.load``)."""
    model = load_model(model_path)
    folder = ModelFolder.of(model_path)
    state = TrainingState.load(folder.state)
    continues, weights = state.weights_sha256, weights_digest(model.state_dict())
    if continues != weights or state.vocabulary != model.vocabulary:
        raise DataFormatError(
            folder.state,
            f"this training state belongs to another model than {model_path}: it continues the weights with "
            f"SHA-256 {continues[:12]}, and {model_path} holds {weights[:12]} (a state copied from another "
            "training's folder, of another loss or seed?); retrain from the model.pt it was written with",
        )
    weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return ParentState(weights, state, str(folder.state))


def retraining_inputs(job) -> TrainingInputs:
    """What the retrain ``job`` trains on: the new clicks (``job.train``) as sessions of the vocabulary
    (``job.vocab``, the parent's) grown by their new items, the parent's state, and the record its summary keeps
    of both. Nothing is written when an input is refused."""
    warm_start = job.warm_start
    vocabulary = Vocabulary.load(job.vocab)
    check_vocabulary(load_model(warm_start.parent), vocabulary, warm_start.parent, job.vocab)
    parent = load_parent(warm_start.parent)
    new = new_sessions(job.train, vocabulary, warm_start.protocol, warm_start.support_decay, parent.time_range)
    record = {
        "model": str(warm_start.parent),
        "model_sha256": file_sha256(warm_start.parent),
        "vocab": str(job.vocab),
        "parent_items": parent.n_items,
        "parent_data": f"{utc(parent.time_range[0])} .. {utc(parent.time_range[1])}",
        "parent_epochs": parent.epochs,
        "clicks": str(job.train),
        "clicks_sha256": file_sha256(job.train),
        "clicks_data": f"{utc(new.time_range[0])} .. {utc(new.time_range[1])}",
        "clicks_counts": new.counts,
        "new_items": new.new_items,
        "items": new.vocabulary.n_items,
        "support_decay": warm_start.support_decay,
    }
    return TrainingInputs(
        new.arrays,
        new.vocabulary.support,
        new.vocabulary.identity(),
        parent=parent,
        record={"retrained_from": record},
        vocabulary_table=new.vocabulary,
    )
