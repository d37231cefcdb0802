"""The learning-curve figure: recall@k, MRR@k and NDCG@k after every epoch, one line per trained model, in the
model's colour, marker and line style (:mod:`~gru4rec_pipeline.report.styles`).

Reads the ``recall@k`` / ``mrr@k`` / ``ndcg@k`` columns that the per-epoch evaluation adds to each
``results/models/{setting}/{model}/history.csv`` (k: the largest cut-off the histories share; NDCG where every
history has it). A history without them (``training.eval_every_epoch: false``) is left out, and said so in the
figure.
"""

from __future__ import annotations

from pathlib import Path

from gru4rec_pipeline.names import ACCURACY_METRICS
from gru4rec_pipeline.report.plots import _loss_position, _pyplot, _save, history_name, read_history
from gru4rec_pipeline.report.styles import model_styles
from gru4rec_pipeline.report.tables import METRIC_LABELS


def shared_cutoff(histories) -> int | None:
    """The largest k with recall@k and mrr@k in every history that has a learning curve."""
    sets = [
        {
            int(c.split("@")[1])
            for c in history.columns
            if c.startswith("recall@") and f"mrr@{c.split('@')[1]}" in history
        }
        for _, history in histories
    ]
    common = set.intersection(*sets) if sets else set()
    return max(common) if common else None


def plot_learning_curve(history_paths: list[str | Path], out_png: str | Path, split: str) -> None:
    """A panel per metric (recall@k, MRR@k, NDCG@k) against the epoch; ``split`` names where the curve was
    measured."""
    plt = _pyplot()
    histories = sorted(((history_name(p), read_history(p)) for p in history_paths), key=_loss_position)
    with_curve = [(name, history) for name, history in histories if any(c.startswith("mrr@") for c in history)]
    cutoff = shared_cutoff(with_curve)
    metrics = [m for m in ACCURACY_METRICS if cutoff and all(f"{m}@{cutoff}" in history for _, history in with_curve)]
    metrics = metrics or ["recall", "mrr"]
    styles = model_styles(name for name, _ in with_curve)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 4.0), squeeze=False)
    axes = axes[0]
    for name, history in with_curve if cutoff else []:
        for ax, metric in zip(axes, metrics):
            ax.plot(history["epoch"], history[f"{metric}@{cutoff}"], label=name, **styles[name])
    for ax, metric in zip(axes, (METRIC_LABELS[metric] for metric in metrics)):
        ax.set_title(f"{metric}@{cutoff} on {split} after each epoch" if cutoff else f"{metric}: no learning curve")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    left_out = [name for name, _ in histories if name not in dict(with_curve)]
    if left_out:
        fig.text(0.01, 0.01, "no per-epoch evaluation: " + ", ".join(left_out), fontsize=8)
    if with_curve and cutoff:
        axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    _save(fig, out_png)
