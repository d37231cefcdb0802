"""The tuned model: a loss's best setting (``best.yaml``) retrained on train_full and evaluated on test.

Two drivers, the last two steps of the tuning rules (and the commands ``tune-train``, ``tune-evaluate``): they read
the study's files and hand over to the training and evaluation stages' own drivers, so a tuned model is trained,
checkpointed, evaluated and recorded exactly like any other (``results/models/final/{loss}_tuned/``,
``results/recall_{loss}_tuned.txt``), its metrics record adding the study it came from.
"""

from __future__ import annotations

from gru4rec_pipeline.evaluation.model_evaluation import run_model_evaluation
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.names import TUNED_SUFFIX
from gru4rec_pipeline.training.loop import run_training
from gru4rec_pipeline.tuning.best import BestSetting, read_study_record


def run_tuned_training(
    best_path,
    train_path,
    vocab_path,
    loss: str,
    model_path,
    history_path,
    summary_path,
    checkpoint_root=None,
    seed: int = 42,
    device: str = "auto",
    threads: int = 1,
    progress: bool = True,
    epoch_evaluation=None,
    state_path=None,
) -> dict:
    """Train ``loss`` with the setting in ``best_path`` (its epochs included) on the sessions ``train_path``;
    ``epoch_evaluation`` (the learning curve) and ``state_path`` (the training state a retrain starts from) as
    in :func:`~gru4rec_pipeline.training.loop.run_training`."""
    best = BestSetting.load(best_path, loss)
    return run_training(
        train_path,
        vocab_path,
        loss,
        best.hyperparameters,
        model_path,
        history_path,
        summary_path,
        checkpoint_root=checkpoint_root,
        seed=seed,
        device=device,
        threads=threads,
        progress=progress,
        epoch_evaluation=epoch_evaluation,
        state_path=state_path,
    )


def run_tuned_evaluation(
    best_path,
    study_path,
    model_path,
    training_summary_path,
    eval_path,
    vocab_path,
    recall_path,
    metrics_path,
    loss: str,
    settings: EvaluationSettings | None = None,
    seed: int | None = None,
    device: str = "auto",
    threads: int = 1,
    config: dict | None = None,
    ranks_path=None,
    dataset: dict | None = None,
) -> dict:
    """Evaluate the tuned model of ``loss``; its record names the study, the best trial and its valid metric
    (``dataset``: the data source record the outputs name)."""
    best = BestSetting.load(best_path, loss)
    study = read_study_record(study_path)
    return run_model_evaluation(
        loss + TUNED_SUFFIX,
        model_path,
        eval_path,
        vocab_path,
        recall_path,
        metrics_path,
        settings=settings,
        device=device,
        threads=threads,
        training_summary_path=training_summary_path,
        hyperparameters=best.hyperparameters,
        seed=seed,
        config=config,
        extra={"loss": loss, "tuning": study},
        ranks_path=ranks_path,
        dataset=dataset,
    )
