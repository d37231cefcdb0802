"""The tuned model: a loss's best setting (``best.yaml``) trained on train_full and evaluated on test.

The last two steps of the tuning rules (and the commands ``tune-train``, ``tune-evaluate``) read the study's files
and hand over to the training and evaluation stages' own drivers, so a tuned model is trained, checkpointed,
evaluated and recorded exactly like any other (``results/models/final/{loss}_tuned/``,
``results/recall_{loss}_tuned.txt``): its training is an ordinary training job whose hyperparameters are the best
setting's (``BestSetting.load(...).hyperparameters``, passed to ``TrainingJob.from_snakemake`` or ``from_args``),
and :func:`run_tuned_evaluation` adds the study it came from to its metrics record.
"""

from __future__ import annotations

from gru4rec_pipeline.evaluation.model_evaluation import run_model_evaluation
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.names import TUNED_SUFFIX
from gru4rec_pipeline.tuning.best import BestSetting, read_study_record


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
