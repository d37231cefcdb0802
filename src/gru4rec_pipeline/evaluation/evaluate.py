"""Next-item evaluation: recall@k and MRR@k of every prediction in the evaluation sessions.

In a session ``i0 .. iL-1`` the model predicts ``i1`` from ``[i0]``, ``i2`` from ``[i0, i1]``, and so on:
``L - 1`` events per session, each ranked against all ``n_items`` training items (see
:mod:`gru4rec_pipeline.evaluation.ranking` for the tie modes and the exact ranking methods).

- :func:`evaluate_model` runs a GRU4Rec model session-parallel: ``batch_size`` sessions side by side,
  each starting from a zero hidden state; a finished session's lane takes the next session.
- :func:`evaluate_scorer` evaluates anything implementing :class:`SessionScorer` (the baselines,
  the synthetic data's oracle) with the same ranks and metrics.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.evaluation.ranking import (
    DEFAULT_CUTOFFS,
    CertifiedRanker,
    MetricAccumulator,
    check_cutoffs,
    check_tie_mode,
    rank_dense,
    rank_limit,
    rank_outputs_brute_force,
)
from gru4rec_pipeline.names import DEFAULT_CUTOFFS, RANKING_METHODS
from gru4rec_pipeline.files import write_json_atomic, write_text_atomic
from gru4rec_pipeline.progress import Progress

log = logging.getLogger(__name__)


class SessionScorer(Protocol):
    """A next-item predictor that is not a neural network (baselines, oracle)."""

    def session_scores(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        """float64 [len(items) - 1, n_items]: row ``j`` scores every item as the successor of
        ``items[j]`` given ``items[: j + 1]`` (vocabulary indices); higher is better."""


def check_eval_items(eval_arrays: SessionArrays, n_items: int) -> None:
    if eval_arrays.n_events and (eval_arrays.items.min() < 0 or eval_arrays.items.max() >= n_items):
        raise DataFormatError(
            "<evaluation sessions>",
            f"item indices must lie in 0..{n_items - 1} (the training vocabulary), "
            f"found {eval_arrays.items.min()}..{eval_arrays.items.max()}",
        )


def _finish(accumulator: MetricAccumulator, sessions: int, seconds: float, tie_mode: str, **extra) -> dict:
    metrics = accumulator.result()
    metrics.update(
        sessions=sessions,
        seconds=seconds,
        events_per_s=metrics["events"] / seconds if seconds > 0 else 0.0,
        tie_mode=tie_mode,
        cutoffs=accumulator.cutoffs,
        **extra,
    )
    return metrics


# ----------------------------------------------------------------------------- model


def session_parallel_outputs(model, eval_arrays: SessionArrays, batch_size: int, device):
    """Yield ``(outputs [B, d], targets [B])`` step by step, ``batch_size`` sessions side by side.

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
        yield outputs, items[position + 1]
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
        raise ValueError(f"ranking method must be one of {', '.join(RANKING_METHODS)}, got {method!r}")
    return "certified" if method == "auto" else method


@torch.no_grad()
def evaluate_model(
    model,
    eval_arrays: SessionArrays,
    cutoffs=DEFAULT_CUTOFFS,
    tie_mode: str = "standard",
    batch_size: int = 512,
    device=None,
    progress: bool = True,
    method: str = "auto",
    rank_chunk: int = 8192,
) -> dict:
    """Recall@k and MRR@k of ``model`` on ``eval_arrays`` (see the module docstring)."""
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
        raise ValueError("the model's output weights are not finite (NaN or inf): it did not train properly")
    ranker = CertifiedRanker(weights, bias) if method == "certified" else None
    limit = rank_limit(cutoffs, tie_mode)
    accumulator = MetricAccumulator(cutoffs)
    pending_outputs, pending_targets, pending = [], [], 0

    def rank_pending() -> None:
        nonlocal pending_outputs, pending_targets, pending
        if not pending:
            return
        outputs = torch.cat(pending_outputs)
        targets = torch.cat(pending_targets)
        if not bool(torch.isfinite(outputs).all()):
            # a NaN score compares false with everything and would rank its target first
            raise ValueError("the model's hidden outputs are not finite (NaN or inf): it did not train properly")
        if method == "brute-force":
            ranks = rank_outputs_brute_force(outputs, targets, weights, bias, tie_mode)
        else:
            ranks = ranker.rank(outputs, targets, tie_mode, limit)
        accumulator.add(ranks)
        bar.update(len(targets))
        pending_outputs, pending_targets, pending = [], [], 0

    n_predictions = int(np.maximum(eval_arrays.lengths() - 1, 0).sum())
    with Progress("evaluate", total=n_predictions, unit="event", enabled=progress, unit_scale=True) as bar:
        for outputs, targets in session_parallel_outputs(model, eval_arrays, batch_size, device):
            pending_outputs.append(outputs)
            pending_targets.append(targets)
            pending += len(targets)
            if pending >= rank_chunk:
                rank_pending()
        rank_pending()
    model.train(was_training)
    sessions = int((eval_arrays.lengths() >= 2).sum())
    return _finish(accumulator, sessions, time.perf_counter() - started, tie_mode, method=method)


# ----------------------------------------------------------------------------- other scorers


def evaluate_scorer(
    scorer: SessionScorer,
    eval_arrays: SessionArrays,
    n_items: int,
    cutoffs=DEFAULT_CUTOFFS,
    tie_mode: str = "standard",
    progress: bool = True,
    rank_chunk: int = 256,
) -> dict:
    """Recall@k and MRR@k of a :class:`SessionScorer`, ranked exactly like a model's scores."""
    cutoffs = check_cutoffs(cutoffs)
    check_tie_mode(tie_mode)
    check_eval_items(eval_arrays, n_items)
    started = time.perf_counter()
    accumulator = MetricAccumulator(cutoffs)
    pending_scores, pending_targets, pending = [], [], 0
    lengths = eval_arrays.lengths()
    sessions = np.flatnonzero(lengths >= 2)
    with Progress("evaluate", total=int((lengths[sessions] - 1).sum()), unit="event", enabled=progress) as bar:
        for s in sessions:
            a, b = eval_arrays.offsets[s], eval_arrays.offsets[s + 1]
            scores = np.asarray(scorer.session_scores(eval_arrays.items[a:b], eval_arrays.times[a:b]), dtype=np.float64)
            if scores.shape != (b - a - 1, n_items):
                raise ValueError(f"scorer returned scores of shape {scores.shape}, expected {(b - a - 1, n_items)}")
            pending_scores.append(scores)
            pending_targets.append(eval_arrays.items[a + 1 : b])
            pending += b - a - 1
            if pending >= rank_chunk or s == sessions[-1]:
                ranks = rank_dense(np.concatenate(pending_scores), np.concatenate(pending_targets), tie_mode)
                accumulator.add(ranks)
                bar.update(pending)
                pending_scores, pending_targets, pending = [], [], 0
    return _finish(accumulator, len(sessions), time.perf_counter() - started, tie_mode)


# ----------------------------------------------------------------------------- outputs


def format_recall_text(metrics: dict, title: str | None = None) -> str:
    lines = [f"# {title}"] if title else []
    lines.append(f"# {metrics['events']} events in {metrics['sessions']} sessions, tie mode {metrics['tie_mode']}")
    lines += [f"Recall@{k}: {value:.4f}" for k, value in metrics["recall"].items()]
    lines += [f"MRR@{k}: {value:.4f}" for k, value in metrics["mrr"].items()]
    return "\n".join(lines) + "\n"


def write_recall_txt(metrics: dict, path: str | Path, title: str | None = None) -> None:
    """Human-readable metrics, one per line (``Recall@20: 0.7283``), after ``#`` comment lines."""
    write_text_atomic(path, format_recall_text(metrics, title))


def write_metrics_json(metrics: dict, path: str | Path, extra: dict | None = None) -> None:
    """Every metric and cut-off, plus ``extra`` (model, hyperparameters, seed, timings, device, provenance)."""
    record = dict(extra or {})
    record.update(metrics)
    write_json_atomic(path, record)


# ----------------------------------------------------------------------------- command line


def _run_evaluate(args) -> int:
    from gru4rec_pipeline.model.training import load_model, resolve_device

    device = resolve_device(args.device)
    model = load_model(args.model, device=device)
    eval_arrays = SessionArrays.load(args.eval)
    metrics = evaluate_model(
        model,
        eval_arrays,
        cutoffs=args.cutoffs,
        tie_mode=args.tie_mode,
        batch_size=args.batch_size,
        device=device,
        method=args.method,
    )
    print(format_recall_text(metrics, title=str(args.model)), end="")
    if args.out_txt:
        write_recall_txt(metrics, args.out_txt, title=str(args.model))
    if args.out_json:
        write_metrics_json(metrics, args.out_json, extra={"model": str(args.model), "device": str(device)})
    return 0


def register_cli(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="recall@k and MRR@k of a trained model on evaluation sessions")
    parser.add_argument("--model", required=True, help="trained model (model.pt)")
    parser.add_argument("--eval", required=True, help="evaluation sessions (.npz session arrays)")
    parser.add_argument("--cutoffs", type=int, nargs="+", default=list(DEFAULT_CUTOFFS), help="cut-offs k")
    parser.add_argument("--tie-mode", default="standard", choices=["standard", "conservative", "median"])
    parser.add_argument("--batch-size", type=int, default=512, help="sessions evaluated side by side")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--method", default="auto", choices=RANKING_METHODS, help="exact ranking method")
    parser.add_argument("--out-txt", help="write the human-readable metrics here")
    parser.add_argument("--out-json", help="write all metrics as JSON here")
    parser.set_defaults(func=_run_evaluate)
