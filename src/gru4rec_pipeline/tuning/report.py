"""A finished study, for people and for the next stage: best.yaml, study.json, trials.tsv and two figures.

:func:`run_study_report` is the driver (the workflow's ``summarize_study`` rule and the command
``gru4rec-pipeline tune-report``). It opens the study its workers name, refuses one that holds fewer finished
trials than configured (a worker ended early: running the workflow again continues it), and writes

- ``best.yaml`` and ``study.json`` (:mod:`~gru4rec_pipeline.tuning.best`);
- ``trials.tsv``: one row per trial: number, state, the metric (last epoch), the sampled parameters, the metric
  after every epoch, duration, worker, and why it failed or whose parameters it ran again;
- ``optimization_history.png``: each trial's value and the best so far (Optuna's matplotlib figure);
- ``param_importances.png``: how much each hyperparameter decided reaching the best trials, by PED-ANOVA
  (Optuna's evaluator that needs no further packages).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from gru4rec_pipeline.errors import DataFormatError, PipelineError
from gru4rec_pipeline.files import atomic_output, read_json, write_json_atomic, write_text_atomic
from gru4rec_pipeline.tuning.best import BestSetting
from gru4rec_pipeline.tuning.settings import TuningSettings
from gru4rec_pipeline.tuning.space import SearchSpace
from gru4rec_pipeline.tuning.study import DEFAULT, FAILURE, FINISHED, RETRY_OF, RUN, WORKER, StudyLocation
from gru4rec_pipeline.tuning.trial import BEST_EPOCH
from gru4rec_pipeline.tuning.worker import route_optuna_messages

log = logging.getLogger(__name__)


def study_of_workers(record_paths: list[str | Path]) -> str:
    """The study the workers' records name; they must all name the same one."""
    names = {}
    for path in record_paths:
        record = read_json(path, "worker record")
        if not isinstance(record, dict) or "study" not in record:
            raise DataFormatError(path, "expected a worker record with the key 'study'")
        names.setdefault(record["study"], []).append(str(path))
    if len(names) != 1:
        raise PipelineError(f"the workers ran different studies: {names}; run them again (they share one study)")
    return next(iter(names))


def trials_table(study: optuna.Study, space: SearchSpace, metric: str) -> pd.DataFrame:
    """One row per trial (see the module docstring)."""
    trials = study.get_trials(deepcopy=False)
    epochs = max((max(t.intermediate_values, default=0) for t in trials), default=0)
    rows = []
    for trial in trials:
        row = {"number": trial.number, "state": trial.state.name.lower(), metric: trial.value}
        hyperparameters = space.hyperparameters(trial.params)
        for name in space.names:
            value = hyperparameters[name] if name in trial.params else None
            row[name] = value[0] if name == "layers" and value is not None else value
        for epoch in range(1, epochs + 1):
            row[f"{metric}_epoch{epoch}"] = trial.intermediate_values.get(epoch)
        finished = trial.datetime_complete is not None and trial.datetime_start is not None
        row["duration_s"] = (trial.datetime_complete - trial.datetime_start).total_seconds() if finished else None
        row["worker"] = trial.user_attrs.get(WORKER)
        row["default"] = bool(trial.user_attrs.get(DEFAULT, False))
        row["retry_of"] = trial.user_attrs.get(RETRY_OF)
        row["failure"] = trial.user_attrs.get(FAILURE, "")
        row["run"] = trial.user_attrs.get(RUN, "")
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in ("worker", "retry_of"):
        if column in table:
            table[column] = table[column].astype("Int64")
    return table


def _figure_size(fig) -> None:
    fig.set_size_inches(8, 4.5)


def _save_figure(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    try:
        with atomic_output(path) as temporary:
            fig.savefig(temporary, format="png", bbox_inches="tight", dpi=110)
    finally:
        plt.close(fig)


def _message_figure(title: str, message: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.set_title(title)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def plot_study(study: optuna.Study, metric: str, history_path: str | Path, importances_path: str | Path) -> None:
    """The optimization history and the parameter importances; where Optuna cannot compute the importances
    (too few complete trials, nothing varied), a figure that says why."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    target = f"{metric} on valid"
    axes = plot_optimization_history(study, target_name=target)
    _figure_size(axes.figure)
    _save_figure(axes.figure, history_path)
    try:
        axes = plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), target_name=target)
        figure = axes.figure
        _figure_size(figure)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        log.warning("no parameter importances: %s", exc)
        figure = _message_figure(
            "Hyperparameter importances", f"Not computable from {complete} complete trials:\n{exc}"
        )
    _save_figure(figure, importances_path)


def study_summary(study: optuna.Study, location: StudyLocation, settings: TuningSettings) -> dict:
    """What ``study.json`` holds."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    best = study.best_trial
    default = next((t for t in trials if t.user_attrs.get(DEFAULT)), None)
    return {
        "study": location.name,
        "storage": location.describe(),
        "metric": settings.metric,
        "split": "valid",
        "epochs_per_trial": settings.epochs,
        "target_trials": settings.trials,
        "finished_trials": sum(counts[state.name.lower()] for state in FINISHED),
        "trials_by_state": counts,
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
        "default_trial": None if default is None else default.number,
        "default_value": None if default is None else default.value,
    }


def run_study_report(
    loss: str,
    worker_records: list[str | Path],
    folder,
    best_path,
    study_path,
    trials_path,
    history_path,
    importances_path,
    tuning: dict,
    space: dict | None,
    hyperparameters: dict,
) -> dict:
    """Summarise ``loss``'s study (named by its workers' records, stored in ``folder`` or ``tuning['storage']``).

    ``space``, ``hyperparameters``: the config's ``tuning.spaces.{loss}`` and ``training.losses.{loss}``, which
    turn the best trial's parameters into a whole setting. Returns the study summary (``study.json``).
    """
    settings = TuningSettings.from_dict(tuning)
    search_space = SearchSpace.from_config(loss, space, hyperparameters)
    route_optuna_messages()
    location = StudyLocation(study_of_workers(worker_records), Path(folder), settings.storage)
    study = location.load()
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    if finished < settings.trials:
        raise PipelineError(
            f"study {location.name} ({location.describe()}) holds {finished} finished trials of the "
            f"{settings.trials} configured: a worker ended early; run the workflow again to continue it"
        )
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise PipelineError(f"study {location.name}: none of its {finished} finished trials completed (all pruned)")
    summary = study_summary(study, location, settings)
    hyperparameters = search_space.hyperparameters(study.best_trial.params)
    best_epoch = study.best_trial.user_attrs.get(BEST_EPOCH)
    if best_epoch is not None:
        hyperparameters["epochs"] = int(best_epoch)  # chosen on valid by early stopping
        summary["best_epoch"] = int(best_epoch)
    best = BestSetting(loss, hyperparameters)
    by_state = ", ".join(f"{n} {state}" for state, n in summary["trials_by_state"].items() if n)
    default = summary["default_value"]
    epochs = f"{settings.epochs} epoch{'s' if settings.epochs > 1 else ''}"
    if best_epoch is not None:
        epochs = f"its best epoch {best_epoch} (early stopping, at most {epochs})"
    length = (
        ["epochs is the best trial's best epoch on valid, which the retraining on train_full uses"]
        if best_epoch is not None
        else [
            f"Paste it under training.losses.{loss} in config/config.yaml; epochs is that loss's configured training",
            "length, which the retraining on train_full uses (results/recall_" + f"{loss}_tuned.txt).",
        ]
    )
    comments = [
        f"Best setting of GRU4Rec with loss {loss}, from study {location.name} ({location.describe()}):",
        f"trial {summary['best_trial']}, the best of {len(study.trials)} trials ({by_state}): {settings.metric} "
        f"{summary['best_value']:.4f} on valid after {epochs}"
        + ("." if default is None else f"; the configured setting (trial {summary['default_trial']}): {default:.4f}."),
        *length,
    ]
    table = trials_table(study, search_space, settings.metric)
    best.save(best_path, comments)
    write_json_atomic(study_path, summary)
    write_text_atomic(trials_path, table.to_csv(sep="\t", index=False, na_rep="", float_format="%.6g"))
    plot_study(study, settings.metric, history_path, importances_path)
    log.info("study %s: %s", location.name, json.dumps({k: summary[k] for k in ("best_trial", "best_value")}))
    if default is not None and not math.isnan(default):
        log.info("best %.4f against the configured setting's %.4f", summary["best_value"], default)
    return summary
