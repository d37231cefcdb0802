"""Next-item evaluation of a trained GRU4Rec: recall@k and MRR@k of every prediction in the evaluation sessions.

In a session ``i0 .. iL-1`` the model predicts ``i1`` from ``[i0]``, ``i2`` from ``[i0, i1]``, and so on:
``L - 1`` events per session, each ranked against all ``n_items`` training items (see
:mod:`gru4rec_pipeline.evaluation.ranking` for the tie modes and the exact ranking methods). The model runs
session-parallel: ``batch_size`` sessions side by side, each starting from a zero hidden state; a finished
session's lane takes the next session.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from gru4rec_pipeline.compute import configure_threads, resolve_device
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.evaluation.beyond_accuracy import TopListAccumulator, top_items_of_outputs
from gru4rec_pipeline.evaluation.event_ranks import RankCollector
from gru4rec_pipeline.evaluation.output_ranking import (
    CertifiedRanker,
    count_outputs_brute_force,
)
from gru4rec_pipeline.evaluation.ranking import (
    MetricAccumulator,
    check_cutoffs,
    check_tie_mode,
    rank_limit,
)
from gru4rec_pipeline.evaluation.stage import (
    EvaluationSettings,
    check_eval_items,
    finish_metrics,
    load_evaluation_data,
    write_results,
)
from gru4rec_pipeline.files import read_json
from gru4rec_pipeline.model.folder import check_vocabulary, load_model
from gru4rec_pipeline.names import DEFAULT_CUTOFFS, DEFAULT_TIE_MODE, RANKING_METHODS
from gru4rec_pipeline.progress import Progress
from gru4rec_pipeline.report.provenance import collect_provenance

log = logging.getLogger(__name__)


def session_parallel_outputs(model, eval_arrays: SessionArrays, batch_size: int, device):
    """Yield ``(outputs [B, d], targets [B], target positions [B])`` step by step, ``batch_size`` sessions side
    by side; a target's position indexes ``eval_arrays.items``.

    Sessions with fewer than two events predict nothing and are skipped. The state tensors of
    ``model.init_state`` are indexed by session along their first dimension.
    """
    lengths = eval_arrays.lengths()
    sessions = np.flatnonzero(lengths >= 2)
    if len(sessions) == 0:
        return
    offsets = torch.as_tensor(eval_arrays.offsets[sessions], device=device)
    last_input = torch.as_tensor(eval_arrays.offsets[sessions] + lengths[sessions] - 2, device=device)
    items = torch.as_tensor(eval_arrays.items, device=device)
    lanes = min(batch_size, len(sessions))
    lane_session = torch.arange(lanes, device=device)  # index into ``sessions``
    position = offsets[lane_session].clone()  # index of each lane's current input event
    next_session = lanes
    state = model.init_state(lanes)
    while len(lane_session):
        outputs, state = model.step(items[position], state)
        yield outputs, items[position + 1], position + 1
        finished = position == last_input[lane_session]
        position = position + 1
        if not bool(finished.any()):
            continue
        refill = torch.nonzero(finished).squeeze(1)[: max(len(sessions) - next_session, 0)]
        if len(refill):
            new = torch.arange(next_session, next_session + len(refill), device=device)
            next_session += len(refill)
            lane_session[refill] = new
            position[refill] = offsets[new]
            finished[refill] = False
            state = [layer.index_fill(0, refill, 0.0) for layer in state]  # a new session starts from zero
        keep = torch.nonzero(~finished).squeeze(1)
        if len(keep) < len(lane_session):
            lane_session, position = lane_session[keep], position[keep]
            state = [layer[keep] for layer in state]


def choose_ranking_method(method: str) -> str:
    """``auto`` is ``certified`` on every device: float32 scores where they are unambiguous, in
    cache-sized tiles on the CPU and in one piece on a GPU."""
    if method not in RANKING_METHODS:
        raise ConfigError("method", f"got {method!r}, expected one of {', '.join(RANKING_METHODS)}")
    return "certified" if method == "auto" else method


@torch.no_grad()
def evaluate_model(
    model,
    eval_arrays: SessionArrays,
    cutoffs=DEFAULT_CUTOFFS,
    tie_mode: str = DEFAULT_TIE_MODE,
    batch_size: int = 512,
    device=None,
    progress: bool = True,
    method: str = "auto",
    rank_chunk: int = 8192,
    source: str = "<model>",
    item_support=None,
    ranks_out: RankCollector | None = None,
) -> dict:
    """Recall@k and MRR@k of ``model`` on ``eval_arrays`` (see the module docstring); ``source`` names
    the model in errors. With ``item_support`` (training events per item) also coverage@k and popularity@k
    (:mod:`~gru4rec_pipeline.evaluation.beyond_accuracy`); ``ranks_out`` receives every event's rank."""
    cutoffs = check_cutoffs(cutoffs)
    check_tie_mode(tie_mode)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    check_eval_items(eval_arrays, model.n_items)
    method = choose_ranking_method(method)
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    weights, bias = model.output_weights()
    if not (torch.isfinite(weights).all() and torch.isfinite(bias).all()):
        raise DataFormatError(
            source, "the output weights are not finite (NaN or inf): the model did not train properly"
        )
    ranker = CertifiedRanker(weights, bias) if method == "certified" else None
    limit = rank_limit(cutoffs, tie_mode)
    accumulator = MetricAccumulator(cutoffs, tie_mode)
    top_lists = TopListAccumulator(item_support, cutoffs) if item_support is not None else None
    pending_outputs, pending_targets, pending_positions, pending = [], [], [], 0

    def rank_pending() -> None:
        nonlocal pending_outputs, pending_targets, pending_positions, pending
        if not pending:
            return
        outputs = torch.cat(pending_outputs)
        targets = torch.cat(pending_targets)
        if not bool(torch.isfinite(outputs).all()):
            # a NaN score compares false with everything and would rank its target first
            raise DataFormatError(
                source, "the hidden outputs are not finite (NaN or inf): the model did not train properly"
            )
        if method == "brute-force":
            higher, ties = count_outputs_brute_force(outputs, targets, weights, bias)
        else:
            higher, ties = ranker.count(outputs, targets, limit)
        ranks = accumulator.add_counts(higher, ties)
        if top_lists is not None:
            top_lists.add(top_items_of_outputs(outputs, weights, bias, top_lists.depth))
        if ranks_out is not None:
            ranks_out.add(torch.cat(pending_positions).cpu().numpy(), ranks.cpu().numpy())
        bar.update(len(targets))
        pending_outputs, pending_targets, pending_positions, pending = [], [], [], 0

    n_predictions = int(np.maximum(eval_arrays.lengths() - 1, 0).sum())
    with Progress("evaluate", total=n_predictions, unit="event", enabled=progress, unit_scale=True) as bar:
        for outputs, targets, positions in session_parallel_outputs(model, eval_arrays, batch_size, device):
            pending_outputs.append(outputs)
            pending_targets.append(targets)
            pending_positions.append(positions)
            pending += len(targets)
            if pending >= rank_chunk:
                rank_pending()
        rank_pending()
    model.train(was_training)
    sessions = int((eval_arrays.lengths() >= 2).sum())
    beyond = top_lists.result() if top_lists is not None else {}
    return finish_metrics(accumulator, sessions, time.perf_counter() - started, tie_mode, method=method, **beyond)


def run_model_evaluation(
    name: str,
    model_path,
    eval_path,
    vocab_path,
    recall_path,
    metrics_path,
    settings: EvaluationSettings | None = None,
    device: str = "auto",
    threads: int = 1,
    training_summary_path=None,
    hyperparameters: dict | None = None,
    seed: int | None = None,
    method: str = "auto",
    config: dict | None = None,
    extra: dict | None = None,
    ranks_path=None,
    dataset: dict | None = None,
) -> dict:
    """Evaluate the trained GRU4Rec ``model_path`` (loss ``name``); ``config``: what provenance records;
    ``extra``: further keys for the metrics record (a tuned model's study); ``ranks_path``: where every
    event's rank goes (:mod:`~gru4rec_pipeline.evaluation.event_ranks`); ``dataset``: the data source record
    the outputs name."""
    settings = settings or EvaluationSettings()
    configure_threads(threads)
    arrays, vocabulary = load_evaluation_data(eval_path, vocab_path)
    torch_device = resolve_device(device)
    model = load_model(model_path, device=torch_device)
    check_vocabulary(model, vocabulary, model_path, vocab_path)
    collector = RankCollector(arrays, max(check_cutoffs(settings.cutoffs))) if ranks_path is not None else None
    metrics = evaluate_model(
        model,
        arrays,
        cutoffs=settings.cutoffs,
        tie_mode=settings.tie_mode,
        batch_size=settings.batch_size,
        device=torch_device,
        method=method,
        source=str(model_path),
        item_support=vocabulary.support,
        ranks_out=collector,
    )
    training = read_json(training_summary_path, "training summary") if training_summary_path else {}
    record = {
        "model": name,
        "kind": "gru4rec",
        "hyperparameters": hyperparameters,
        "seed": seed,
        "device": str(torch_device),
        "epochs": training.get("epochs"),
        "timings": {
            "train_seconds": training.get("train_seconds"),
            "train_events_per_s": training.get("events_per_s"),
            "train_device": training.get("device"),
            "eval_seconds": metrics.get("seconds"),
            "eval_events_per_s": metrics.get("events_per_s"),
        },
        "provenance": collect_provenance(config or {}),
        **(extra or {}),
    }
    title = f"GRU4Rec, loss {name}"
    return write_results(metrics, recall_path, metrics_path, title, record, ranks_path, collector, dataset)
