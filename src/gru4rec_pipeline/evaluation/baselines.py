"""Non-neural next-item predictors, evaluated with the same ranking code as GRU4Rec.

Each implements :class:`~gru4rec_pipeline.evaluation.evaluate.SessionScorer` (``session_scores``) and is
fitted on the training :class:`~gru4rec_pipeline.data.arrays.SessionArrays` (items as vocabulary indices):

- ``pop``:     most popular: every item scored by its number of training events;
- ``spop``:    session popularity: items already in the session by how often they occurred in it,
               ties and all other items by training popularity (``support / (support + 1) < 1``);
- ``itemknn``: the item-kNN of Hidasi et al. (2016): the last item's neighbours by session
               co-occurrence ``c_ij / sqrt((s_i + lambda) (s_j + lambda))`` (``c_ij`` counts pairs of
               events of items i and j in the same session, ``s_i`` the events of item i), top
               ``neighbors`` kept per item, every other item scores 0;
- ``sknn``, ``vsknn``, ``stan``: session-based nearest neighbours (:mod:`.knn`);
- :class:`OracleScorer`: the synthetic process's Bayes-optimal next-item distribution.

Each scores 0 exactly the items it has no evidence for (``no_score``), and a target scoring 0 is a miss in every
tie mode: pop and spop an item without training events (not in the session, for spop), itemknn an item that is not
among the last item's neighbours (similarities are positive), the session kNNs an item of no neighbour session
(their gains are positive, or underflow to 0 where the evidence vanishes), the oracle an item the process never
emits next.
"""

from __future__ import annotations

import logging

import numpy as np

from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.data.vocabulary import Vocabulary
from gru4rec_pipeline.errors import ConfigError, DataFormatError
from gru4rec_pipeline.evaluation.knn import SessionKNN
from gru4rec_pipeline.names import BASELINES, ITEMKNN_DEFAULTS, SESSION_KNN_DEFAULTS

log = logging.getLogger(__name__)

PAIR_CHUNK = 20_000_000  # event pairs generated at once while counting co-occurrences


def item_support(train: SessionArrays, n_items: int) -> np.ndarray:
    """Training events per item (int64 [n_items])."""
    return np.bincount(train.items, minlength=n_items).astype(np.int64)


class MostPopular:
    no_score = 0.0  # no training event

    def __init__(self, support: np.ndarray):
        self.scores = np.asarray(support, dtype=np.float64)

    def session_scores(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.scores, (len(items) - 1, len(self.scores)))


class SessionPopular:
    no_score = 0.0  # neither in the session nor in training

    def __init__(self, support: np.ndarray):
        support = np.asarray(support, dtype=np.float64)
        self.popularity = support / (support + 1.0)  # below 1: one more in-session occurrence always wins

    def session_scores(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        n_rows = len(items) - 1
        scores = np.tile(self.popularity, (n_rows, 1))
        # the item at position k counts in every row j >= k
        seen_at, row = np.triu_indices(n_rows)
        np.add.at(scores, (row, items[seen_at]), 1.0)
        return scores


class ItemKNN:
    """Neighbour lists in CSR form: ``indptr`` [n_items + 1], ``neighbours``, ``similarities``."""

    no_score = 0.0  # not a neighbour of the last item

    def __init__(self, indptr: np.ndarray, neighbours: np.ndarray, similarities: np.ndarray):
        self.indptr = indptr
        self.neighbours = neighbours
        self.similarities = similarities
        self.n_items = len(indptr) - 1

    @classmethod
    def fit(
        cls,
        train: SessionArrays,
        n_items: int,
        neighbors: int = ITEMKNN_DEFAULTS["neighbors"],
        shrink: float = ITEMKNN_DEFAULTS["lambda"],
    ) -> "ItemKNN":
        if neighbors < 1:
            raise ConfigError("baselines.itemknn.neighbors", f"must be at least 1, got {neighbors}")
        if shrink < 0:
            raise ConfigError("baselines.itemknn.lambda", f"must be non-negative, got {shrink}")
        pairs, counts = cooccurrence_counts(train, n_items)
        first, second = pairs // n_items, pairs % n_items
        keep = first != second
        first, second, counts = first[keep], second[keep], counts[keep]
        support = item_support(train, n_items).astype(np.float64)
        similarity = counts / np.sqrt((support[first] + shrink) * (support[second] + shrink))
        # strongest neighbours first within each item; ties by neighbour index for reproducibility
        order = np.lexsort((second, -similarity, first))
        first, second, similarity = first[order], second[order], similarity[order]
        row_start = np.searchsorted(first, np.arange(n_items + 1))
        within_row = np.arange(len(first)) - row_start[first]
        top = within_row < neighbors
        first, second, similarity = first[top], second[top], similarity[top]
        indptr = np.searchsorted(first, np.arange(n_items + 1)).astype(np.int64)
        return cls(indptr, second.astype(np.int64), similarity)

    def session_scores(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        inputs = items[:-1]
        scores = np.zeros((len(inputs), self.n_items))
        starts, stops = self.indptr[inputs], self.indptr[inputs + 1]
        lengths = stops - starts
        rows = np.repeat(np.arange(len(inputs)), lengths)
        entries = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        scores[rows, self.neighbours[entries]] = self.similarities[entries]
        return scores


def cooccurrence_counts(train: SessionArrays, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pairs of events in the same session (each event with itself too), by item pair.

    Returns sorted keys ``i * n_items + j`` and their float64 counts. Sessions are processed in chunks
    of about ``PAIR_CHUNK`` pairs so memory stays bounded on long sessions.
    """
    lengths = train.lengths().astype(np.int64)
    pairs_before = np.cumsum(lengths**2) - lengths**2
    chunk_of_session = pairs_before // PAIR_CHUNK
    boundaries = np.flatnonzero(np.diff(chunk_of_session)) + 1
    keys, counts = np.zeros(0, np.int64), np.zeros(0, np.float64)
    pending_keys, pending_counts = [], []
    for sessions in np.split(np.arange(len(lengths)), boundaries):
        if len(sessions) == 0:
            continue
        session_lengths = lengths[sessions]
        event_length = np.repeat(session_lengths, session_lengths)
        event_start = np.repeat(train.offsets[sessions], session_lengths)
        first_event = np.arange(train.offsets[sessions[0]], train.offsets[sessions[-1] + 1])
        left = np.repeat(first_event, event_length)
        within = np.arange(len(left)) - np.repeat(np.cumsum(event_length) - event_length, event_length)
        right = np.repeat(event_start, event_length) + within
        chunk_keys, chunk_counts = np.unique(train.items[left] * n_items + train.items[right], return_counts=True)
        pending_keys.append(chunk_keys)
        pending_counts.append(chunk_counts)
        # merge once the pending pairs outgrow the merged ones: each pair is merged O(log) times
        if sum(len(k) for k in pending_keys) > max(len(keys), PAIR_CHUNK):
            keys, counts = _merge_counts([keys, *pending_keys], [counts, *pending_counts])
            pending_keys, pending_counts = [], []
    return _merge_counts([keys, *pending_keys], [counts, *pending_counts])


def _merge_counts(key_parts: list[np.ndarray], count_parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    keys, inverse = np.unique(np.concatenate(key_parts), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate(count_parts).astype(np.float64), minlength=len(keys))
    return keys, counts


class OracleScorer:
    """The synthetic process's next-item distribution, as scores over the training vocabulary.

    ``oracle.next_item_probs(item_ids, times)`` gives one row per position over the process's items
    (``oracle.item_ids``); process items missing from the vocabulary are dropped, vocabulary items
    the process never emits score 0.
    """

    no_score = 0.0  # probability 0 of coming next

    def __init__(self, oracle, vocab: Vocabulary):
        self.oracle = oracle
        self.n_items = vocab.n_items
        self.item_ids_by_index = vocab.item_ids
        process_ids = np.asarray(oracle.item_ids, dtype=np.int64)
        column_index = vocab.index_of(process_ids)
        known = column_index >= 0
        self.columns = np.flatnonzero(known)  # process columns that are vocabulary items
        self.column_targets = column_index[known].astype(np.int64)  # their vocabulary indices
        log.info("oracle: %d of %d process items are in the vocabulary", len(self.columns), len(process_ids))

    def session_scores(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        probabilities = np.asarray(self.oracle.next_item_probs(self.item_ids_by_index[items], times), dtype=np.float64)
        scores = np.zeros((len(items) - 1, self.n_items))
        scores[:, self.column_targets] = probabilities[: len(items) - 1, self.columns]
        return scores


def build_baseline(name: str, train: SessionArrays, n_items: int, **options):
    """Fit baseline ``name`` (names.BASELINES) on ``train`` over ``n_items`` items; returns ``(scorer, n_items)``.

    ``options`` are the baseline's settings (itemknn: ``neighbors``, ``lambda``; the session kNNs: see
    names.SESSION_KNN_DEFAULTS).
    """
    if train.n_events and (train.items.min() < 0 or train.items.max() >= n_items):
        raise DataFormatError("<training sessions>", f"item indices must lie in 0..{n_items - 1}")
    support = item_support(train, n_items)
    if name == "pop":
        return MostPopular(support), n_items
    if name == "spop":
        return SessionPopular(support), n_items
    if name == "itemknn":
        unknown = set(options) - set(ITEMKNN_DEFAULTS)
        if unknown:
            raise ConfigError("baselines.itemknn", f"unknown settings {sorted(unknown)} (expected neighbors, lambda)")
        return ItemKNN.fit(
            train,
            n_items,
            int(options.get("neighbors", ITEMKNN_DEFAULTS["neighbors"])),
            float(options.get("lambda", ITEMKNN_DEFAULTS["lambda"])),
        ), n_items
    if name in SESSION_KNN_DEFAULTS:
        return SessionKNN.fit(name, train, n_items, **options), n_items
    raise ConfigError("baselines.run", f"unknown baseline {name!r} (expected one of {', '.join(BASELINES)})")
