"""The evaluation's output files: ``results/recall_{name}.txt`` for people, ``results/metrics/final/{name}.json`` for
code (for the tuning setting: ``results/tuning/recall_{name}.txt``, ``results/metrics/tuning/{name}.json``).

Both come from the same metrics dict (``recall`` and ``mrr`` by cut-off, ``events``, ``sessions``,
``tie_mode``; ``coverage`` and ``popularity`` by cut-off, in the recall file as comment lines); the JSON adds
what produced the numbers (model, hyperparameters, seed, device, timings, provenance).
"""

from __future__ import annotations

from pathlib import Path

from gru4rec_pipeline.files import write_json_atomic, write_text_atomic


def format_recall_text(metrics: dict, title: str | None = None) -> str:
    lines = [f"# {title}"] if title else []
    lines.append(f"# {metrics['events']} events in {metrics['sessions']} sessions, tie mode {metrics['tie_mode']}")
    for name, label in (("coverage", "Coverage"), ("popularity", "Popularity")):
        if name in metrics:
            lines.append("# " + ", ".join(f"{label}@{k}: {value:.4f}" for k, value in metrics[name].items()))
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
