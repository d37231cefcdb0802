"""One cell of the day-by-day evaluation: a model of one strategy tested on one day's sessions.

The strategies' models know different items (a frozen model never learns the items that appear later), so
each is tested on the same predictions: every next-item prediction in the day's sessions. A model is run on
the sessions mapped to its own vocabulary (events of items it does not know are dropped, then sessions left
shorter than two events, as the protocol's test split does); a prediction it cannot make, its target unknown
to it, counts as a miss. So recall@k and MRR@k here are the model's hits over *all* the day's predictions, and
``coverage`` is the share of them it could rank.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gru4rec_pipeline.compute import configure_threads, resolve_device
from gru4rec_pipeline.data.events import event_arrays, read_events
from gru4rec_pipeline.data.sessions import to_session_arrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.evaluation.model_evaluation import evaluate_model
from gru4rec_pipeline.evaluation.stage import EvaluationSettings
from gru4rec_pipeline.files import read_json, write_json_atomic
from gru4rec_pipeline.model.folder import check_vocabulary, load_model

log = logging.getLogger(__name__)


def day_predictions(session_ids: np.ndarray) -> int:
    """Next-item predictions of sessions given as the SessionId of each event: events minus sessions."""
    return int(len(session_ids) - len(np.unique(session_ids)))


def evaluate_day(
    model_path: str | Path,
    vocab_path: str | Path,
    day_path: str | Path,
    out_path: str | Path,
    strategy: str,
    day: int,
    training_summary_path: str | Path | None = None,
    settings: EvaluationSettings | None = None,
    min_session_length: int = 2,
    device: str = "auto",
    threads: int = 1,
) -> dict:
    """Test ``model_path`` on the sessions of ``day_path``; write and return the row of the rolling table.

    ``training_summary_path``: the training.json of the training that made this day's model, None where the
    strategy trained nothing for it (a frozen model after its first day): its training seconds are then 0.
    """
    settings = settings or EvaluationSettings()
    configure_threads(threads)
    vocabulary = Vocabulary.load(vocab_path)
    model = load_model(model_path, device=resolve_device(device))
    check_vocabulary(model, vocabulary, model_path, vocab_path)
    events = read_events(day_path)
    reference = day_predictions(event_arrays(events, source=day_path)[0])
    if reference == 0:
        raise DataFormatError(day_path, "the day has no session of two or more events: nothing to predict")
    arrays, counts = to_session_arrays(events, vocabulary, min_session_length)
    made = int(np.maximum(arrays.lengths() - 1, 0).sum())
    if made:
        metrics = evaluate_model(
            model, arrays, settings.cutoffs, settings.tie_mode, settings.batch_size, progress=False,
            source=str(model_path),
        )  # fmt: skip
    else:  # the model knows none of the day's sessions: every prediction is a miss
        metrics = {"recall": {str(c): 0.0 for c in settings.cutoffs}, "mrr": {str(c): 0.0 for c in settings.cutoffs}}
    share = made / reference
    training = read_json(training_summary_path, "training summary") if training_summary_path else {}
    row = {
        "strategy": strategy,
        "day": int(day),
        "recall": {k: v * share for k, v in metrics["recall"].items()},
        "mrr": {k: v * share for k, v in metrics["mrr"].items()},
        "predictions": reference,
        "coverage": share,
        "train_seconds": float(training.get("train_seconds", 0.0)),
        "train_events": int(training.get("events", 0)),
        "items": vocabulary.n_items,
        "unknown_item_events": counts["unknown_item_events"],
        "model": str(model_path),
    }
    write_json_atomic(out_path, row)
    log.info("%s, day %d: %s", strategy, day, row)
    return row
