"""Next-item recommendations from a trained GRU4Rec for sessions given on the command line or in a file.

A session is a sequence of original ItemIds. Items missing from the training vocabulary
cannot be fed to the network: they are skipped for the hidden state and reported (a
warning names the ids and the session or line), never dropped silently. Scores are the
network's raw outputs (higher is better; not probabilities).

Sessions are fed in groups of equal length, so every group runs the same number of steps
and the recurrent state never needs masking.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.files import atomic_output
from gru4rec_pipeline.progress import Progress

log = logging.getLogger(__name__)

# Individual warnings about unknown items; beyond this only the totals are reported.
MAX_WARNINGS = 20
# Unknown ids a warning names for one session; beyond this it counts them.
MAX_IDS_SHOWN = 10
# Characters of an offending token a message shows (a 4,301-digit id would fill the screen).
MAX_TOKEN_CHARS = 40
OUTPUT_COLUMNS = ["SessionId", "rank", "ItemId", "score"]
INTEGER_PATTERN = r"[+-]?\d+"
# A decimal int64 has at most 19 digits: longer tokens are refused before Python converts them (which refuses
# strings of more than 4,300 digits with a ValueError of its own).
INT64_DIGITS = 19


def shown_token(token: str) -> str:
    """``token`` as a message shows it: cut, with its length, when longer than MAX_TOKEN_CHARS."""
    return token if len(token) <= MAX_TOKEN_CHARS else f"{token[:MAX_TOKEN_CHARS]}... ({len(token)} characters)"


def parse_item_ids(tokens: list[str], source, line: int | None = None) -> list[int]:
    """Integer ItemIds from text; a token that is not an integer or does not fit in 64 bits is a
    :class:`DataFormatError` naming ``source`` (and ``line``) and the token."""
    for token in tokens:
        if not re.fullmatch(INTEGER_PATTERN, token):
            raise DataFormatError(source, f"'{shown_token(token)}' is not an integer ItemId", line=line)
        if len(token.lstrip("+-").lstrip("0")) > INT64_DIGITS or not -(2**63) <= int(token) < 2**63:
            raise DataFormatError(source, f"ItemId {shown_token(token)} does not fit in 64 bits", line=line)
    return [int(token) for token in tokens]


def listed_ids(ids) -> str:
    """Distinct ``ids`` in order, the first MAX_IDS_SHOWN of them and how many more."""
    distinct = list(dict.fromkeys(ids))
    shown = ", ".join(shown_token(str(i)) for i in distinct[:MAX_IDS_SHOWN])
    return shown + (f" and {len(distinct) - MAX_IDS_SHOWN} more" if len(distinct) > MAX_IDS_SHOWN else "")


@dataclass
class SessionBatch:
    """Sessions as flat arrays: session ``s`` owns ``item_ids[offsets[s]:offsets[s + 1]]``.

    ``item_ids`` are int64 ItemIds, or the original id strings of an own click log until
    :func:`translate_items` maps them. ``labels`` say where each session came from in
    messages ("line 3", "session 1042").
    """

    session_ids: np.ndarray
    offsets: np.ndarray
    item_ids: np.ndarray
    labels: list[str]


def sessions_from_ids(item_ids: list, session_id: int = 1, label: str = "session") -> SessionBatch:
    """One session; ``item_ids`` are ints, or original id strings (see :func:`translate_items`)."""
    integer = all(isinstance(item, (int, np.integer)) for item in item_ids)
    return SessionBatch(
        session_ids=np.array([session_id], dtype=np.int64),
        offsets=np.array([0, len(item_ids)], dtype=np.int64),
        item_ids=np.array(item_ids, dtype=np.int64 if integer else object),
        labels=[label],
    )


def read_sessions_text(path: str | Path, integer_ids: bool = True) -> SessionBatch:
    """One session per line, ItemIds separated by commas and/or whitespace.

    The line number is the session's id. Blank lines and lines starting with ``#`` are skipped.
    With ``integer_ids=False`` the ids are kept as strings (original ids of an own click log).
    """
    path = Path(path)
    session_ids, lengths, items = [], [], []
    try:
        # utf-8-sig: a byte order mark at the start (as some editors write) is not part of the first id.
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise DataFormatError(path, "sessions file does not exist") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        ids = [token for token in re.split(r"[,\s]+", text) if token]
        if integer_ids:
            ids = parse_item_ids(ids, path, line=number)
        session_ids.append(number)
        lengths.append(len(ids))
        items.extend(ids)
    return SessionBatch(
        session_ids=np.array(session_ids, dtype=np.int64),
        offsets=np.r_[0, np.cumsum(lengths, dtype=np.int64)].astype(np.int64),
        item_ids=np.array(items, dtype=np.int64 if integer_ids else object),
        labels=[f"line {n}" for n in session_ids],
    )


def read_sessions_parquet(path: str | Path, integer_ids: bool = True) -> SessionBatch:
    """Events with SessionId (integer), ItemId and Time; each session's items in time order."""
    path = Path(path)
    try:
        events = pd.read_parquet(path, columns=["SessionId", "ItemId", "Time"])
    except FileNotFoundError:
        raise DataFormatError(path, "sessions file does not exist") from None
    except (KeyError, ValueError) as exc:
        raise DataFormatError(path, f"expected columns SessionId, ItemId, Time: {exc}") from None
    events = events.sort_values(["SessionId", "Time"], kind="stable")
    session_ids = events["SessionId"].to_numpy(np.int64)
    starts = np.flatnonzero(np.r_[True, session_ids[1:] != session_ids[:-1]]) if len(session_ids) else np.zeros(0, int)
    unique_ids = session_ids[starts]
    return SessionBatch(
        session_ids=unique_ids,
        offsets=np.r_[starts, len(session_ids)].astype(np.int64),
        item_ids=events["ItemId"].to_numpy(np.int64) if integer_ids else events["ItemId"].astype(str).to_numpy(object),
        labels=[f"session {s}" for s in unique_ids],
    )


def read_sessions_file(path: str | Path, integer_ids: bool = True) -> SessionBatch:
    reader = read_sessions_parquet if str(path).endswith(".parquet") else read_sessions_text
    return reader(path, integer_ids)


def read_item_map(path: str | Path) -> pd.DataFrame:
    """The ``<clicks>.item_map.parquet`` written by ``own-data``: ItemId and Original (string)."""
    path = Path(path)
    try:
        mapping = pd.read_parquet(path, columns=["ItemId", "Original"])
    except FileNotFoundError:
        raise DataFormatError(path, "item map does not exist") from None
    except (KeyError, ValueError) as exc:
        raise DataFormatError(path, f"expected columns ItemId, Original: {exc}") from None
    return mapping


def keep_known(batch: SessionBatch, known: np.ndarray, where: str) -> np.ndarray:
    """Offsets of the sessions over the events where ``known`` holds; the others are reported.

    One warning per session with unknown items (up to MAX_WARNINGS) names its ids, then a total.
    """
    lengths = np.diff(batch.offsets)
    session_of_event = np.repeat(np.arange(len(lengths)), lengths)
    known_per_session = np.bincount(session_of_event, weights=known, minlength=len(lengths)).astype(np.int64)
    affected = np.flatnonzero(known_per_session < lengths)
    for count, s in enumerate(affected):
        if count == MAX_WARNINGS:
            log.warning("... and %d more sessions with unknown items", len(affected) - MAX_WARNINGS)
            break
        span = slice(batch.offsets[s], batch.offsets[s + 1])
        unknown = batch.item_ids[span][~known[span]]
        log.warning(
            "%s: unknown item ids %s (not in %s): skipped for the hidden state",
            batch.labels[s],
            listed_ids(unknown.tolist()),
            where,
        )
    if len(affected):
        sessions = f"{len(affected)} session" + ("s" if len(affected) > 1 else "")
        log.warning("%d of %d item ids not in %s (in %s)", int((~known).sum()), len(known), where, sessions)
    return np.r_[0, np.cumsum(known_per_session)].astype(np.int64)


def translate_items(batch: SessionBatch, item_map: pd.DataFrame) -> SessionBatch:
    """Original id strings to the pipeline's ItemIds; ids missing from the map are reported and left out."""
    positions = pd.Index(item_map["Original"].astype(str)).get_indexer(batch.item_ids.astype(str))
    known = positions >= 0
    offsets = keep_known(batch, known, "the item map")
    item_ids = item_map["ItemId"].to_numpy(np.int64)[positions[known]]
    return SessionBatch(batch.session_ids, offsets, item_ids, batch.labels)


def map_to_vocabulary(batch: SessionBatch, item_of_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vocabulary indices of the known items and the offsets of the sessions over them.

    Unknown items are left out and reported (see :func:`keep_known`).
    """
    indices = pd.Index(item_of_index).get_indexer(batch.item_ids)
    known = indices >= 0
    offsets = keep_known(batch, known, "the training vocabulary")
    return indices[known].astype(np.int64), offsets


def _model_device(model):
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return "cpu"


def score_sessions(
    model, items: np.ndarray, offsets: np.ndarray, k: int, exclude_seen: bool = False, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k vocabulary indices and scores after the last item of each session.

    ``items``/``offsets`` are vocabulary indices as from :func:`map_to_vocabulary`. Sessions
    with no item get index -1 and score NaN. With ``exclude_seen`` the session's own items are
    never recommended; then fewer than ``k`` valid entries (-1/NaN padded) are possible.
    """
    import torch

    n_sessions = len(offsets) - 1
    weights, bias = model.output_weights()
    n_items = weights.shape[0]
    if k > n_items:
        log.warning("-k %d is more than the model's %d items: recommending all %d", k, n_items, n_items)
        k = n_items
    top_index = np.full((n_sessions, k), -1, dtype=np.int64)
    top_score = np.full((n_sessions, k), np.nan, dtype=np.float64)
    lengths = np.diff(offsets)
    device = _model_device(model)
    if hasattr(model, "eval"):
        model.eval()
    progress = Progress("recommend", total=int((lengths > 0).sum()), unit="sessions", enabled=n_sessions > batch_size)
    with torch.inference_mode(), progress:
        for length in np.unique(lengths[lengths > 0]):
            members = np.flatnonzero(lengths == length)
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                steps = items[offsets[chunk][:, None] + np.arange(length)]  # [B, length]
                inputs = torch.from_numpy(steps).to(device)
                state = model.init_state(len(chunk))
                for t in range(length):
                    out, state = model.step(inputs[:, t], state)
                scores = out @ weights.T + bias
                if exclude_seen:
                    scores = scores.scatter(1, inputs, float("-inf"))
                values, indices = torch.topk(scores, k, dim=1)
                values = values.double().cpu().numpy()
                indices = indices.cpu().numpy()
                valid = np.isfinite(values)
                top_index[chunk] = np.where(valid, indices, -1)
                top_score[chunk] = np.where(valid, values, np.nan)
                progress.update(len(chunk))
    return top_index, top_score


def recommend(
    model,
    item_of_index: np.ndarray,
    batch: SessionBatch,
    k: int = 20,
    exclude_seen: bool = False,
    batch_size: int = 256,
    item_map: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Recommendations as rows (SessionId, rank, ItemId, score), rank 1 first.

    With ``item_map`` the sessions hold original ids and an ``OriginalItemId`` column is added.
    Sessions without any known item get no rows (and a warning).
    """
    if item_map is not None:
        batch = translate_items(batch, item_map)
    items, offsets = map_to_vocabulary(batch, item_of_index)
    empty = np.flatnonzero(np.diff(offsets) == 0)
    for s in empty[:MAX_WARNINGS]:
        log.warning("%s: no item of the session is in the training vocabulary: no recommendations", batch.labels[s])
    top_index, top_score = score_sessions(model, items, offsets, k, exclude_seen, batch_size)
    n_sessions, width = top_index.shape
    rows = pd.DataFrame(
        {
            "SessionId": np.repeat(batch.session_ids, width),
            "rank": np.tile(np.arange(1, width + 1), n_sessions),
            "index": top_index.ravel(),
            "score": top_score.ravel(),
        }
    )
    rows = rows[rows["index"] >= 0]
    rows.insert(2, "ItemId", item_of_index[rows["index"].to_numpy()])
    columns = list(OUTPUT_COLUMNS)
    if item_map is not None:
        originals = item_map.set_index("ItemId")["Original"]
        rows["OriginalItemId"] = originals.reindex(rows["ItemId"]).to_numpy()
        columns.insert(3, "OriginalItemId")
    return rows[columns].reset_index(drop=True)


def write_recommendations(rows: pd.DataFrame, out_path: str | Path) -> None:
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Plain text whatever the name: given a path, pandas would compress by its suffix (".gz", ".zip").
    with atomic_output(out_path) as temporary, open(temporary, "w", encoding="utf-8", newline="") as stream:
        rows.to_csv(stream, sep="\t", index=False, float_format="%.6g")


def recommend_from_files(
    model_path: str | Path,
    vocab_path: str | Path | None,
    batch: SessionBatch,
    k: int = 20,
    exclude_seen: bool = False,
    batch_size: int = 256,
    item_map_path: str | Path | None = None,
    device: str = "cpu",
    source: str = "--session",
) -> pd.DataFrame:
    """The recommend command's driver: load and check the model and its vocabulary (``vocab_path``; None: the one
    in the model's folder), score ``batch``.

    ``source`` names where the sessions came from in errors. Nothing to recommend (no session, or no
    session with a known item) is an error, not an empty result.
    """
    from gru4rec_pipeline.model.folder import ModelFolder, check_vocabulary, load_model

    if len(batch.session_ids) == 0:
        raise DataFormatError(source, "no sessions: expected one session per line (ItemIds separated by spaces)")
    item_map = read_item_map(item_map_path) if item_map_path is not None else None
    if vocab_path is None:
        vocab_path = ModelFolder.of(model_path).vocab
        if not vocab_path.exists():
            load_model(model_path)  # a missing or unreadable model is the error to report, if it is one
            raise DataFormatError(
                model_path,
                f"no {vocab_path.name} beside it (a model trained before every training kept its vocabulary in its "
                "folder): give the vocabulary it was trained with, --vocab results/sessions/final/vocab.parquet",
            )
    vocabulary = Vocabulary.load(vocab_path)
    model = load_model(model_path, device=device)
    check_vocabulary(model, vocabulary, model_path, vocab_path)
    rows = recommend(model, vocabulary.item_ids, batch, k, exclude_seen, batch_size, item_map)
    if rows.empty:
        where = "the item map" if item_map is not None else f"the training vocabulary {vocab_path}"
        raise DataFormatError(source, f"no recommendations: none of its {len(batch.session_ids)} sessions has an "
                              f"item of {where}")  # fmt: skip
    return rows
