"""The evaluation's output files: ``results/recall_{name}.txt`` for people, ``results/metrics/final/{name}.json`` for
code (for the tuning setting: ``results/tuning/recall_{name}.txt``, ``results/metrics/tuning/{name}.json``).

Both come from the same metrics dict (``recall``, ``mrr`` and ``ndcg`` by cut-off, ``events``, ``sessions``,
``tie_mode``; ``coverage`` and ``popularity`` by cut-off, in the recall file as comment lines); the recall file
lists ``Recall@k``, then ``MRR@k``, then ``NDCG@k`` lines (a metrics dict without ``ndcg`` has no NDCG lines);
the JSON adds
what produced the numbers (model, hyperparameters, seed, device, timings, provenance), and how much ties decided:

- ``tie_decided_hits`` (by cut-off k): the share of the hits at k that ties decided, i.e. of the events counted as
  hits in this tie mode, those that are misses when every item scoring exactly like the target ranks before it
  (the conservative rank). Always 0 in the conservative mode; the recall file gives it as a comment line when it
  is not 0 somewhere.
- ``tie_dependent_events`` (by cut-off k): the share of all events whose hit at k depends on how ties are broken
  (a hit with every tied item after the target, a miss with every one before it); the same in every tie mode.
- ``unscored_targets`` (baselines and oracle): the share of events whose target the scorer did not score (a miss
  in every tie mode, see :mod:`~gru4rec_pipeline.evaluation.scorer_evaluation`).

Both name the data set the numbers were measured on (``results/data/source.json``,
:mod:`gru4rec_pipeline.data.source`): the recall file in a comment line, the JSON under ``data``.
"""

from __future__ import annotations

from pathlib import Path

from gru4rec_pipeline.files import write_json_atomic, write_text_atomic


def format_recall_text(metrics: dict, title: str | None = None, dataset: dict | None = None) -> str:
    """``dataset``: the data source record (its ``description`` line is shown)."""
    lines = [f"# {title}"] if title else []
    if dataset:
        lines.append(f"# data: {dataset.get('description', 'not recorded')}")
    lines.append(f"# {metrics['events']} events in {metrics['sessions']} sessions, tie mode {metrics['tie_mode']}")
    for name, label in (("coverage", "Coverage"), ("popularity", "Popularity")):
        if name in metrics:
            lines.append("# " + ", ".join(f"{label}@{k}: {value:.4f}" for k, value in metrics[name].items()))
    decided = metrics.get("tie_decided_hits") or {}
    if any(value > 0 for value in decided.values()):
        shares = ", ".join(f"{share:.1%} of hits@{k}" for k, share in decided.items())
        lines.append(f"# Decided by ties in mode {metrics['tie_mode']} (misses when tied items rank first): {shares}")
    lines += [f"Recall@{k}: {value:.4f}" for k, value in metrics["recall"].items()]
    lines += [f"MRR@{k}: {value:.4f}" for k, value in metrics["mrr"].items()]
    lines += [f"NDCG@{k}: {value:.4f}" for k, value in (metrics.get("ndcg") or {}).items()]
    return "\n".join(lines) + "\n"


def write_recall_txt(metrics: dict, path: str | Path, title: str | None = None, dataset: dict | None = None) -> None:
    """Human-readable metrics, one per line (``Recall@20: 0.7283``, then MRR@k, NDCG@k), after ``#`` comment
    lines."""
    write_text_atomic(path, format_recall_text(metrics, title, dataset))


def write_metrics_json(metrics: dict, path: str | Path, extra: dict | None = None) -> None:
    """Every metric and cut-off, plus ``extra`` (model, hyperparameters, seed, timings, device, provenance)."""
    record = dict(extra or {})
    record.update(metrics)
    write_json_atomic(path, record)
