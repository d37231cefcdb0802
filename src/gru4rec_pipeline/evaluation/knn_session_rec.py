"""V-SKNN with session-rec's tie rule (``baselines.vsknn.ties: session_rec``).

session-rec's ``algorithms/knn/vsknn.py`` keeps, per item, a Python set of the training sessions' ids that
contain it (built by adding the ids in training-row order). For each click of a session it unions the
clicked item's set into the session's set of candidates (``|``, at every click, repeated items too); when
that set holds more than ``sample_size`` ids, it sorts them by last click, latest first, with Python's
stable sort over the set's iteration order, and adds the first ``sample_size`` to a new set, in that
order. The similarities are computed in the iteration order of that sample (or of the candidate set itself
when it is small enough), and the ``k`` most similar are kept by a stable sort, so equal similarities are
decided by the sets' iteration order: an artefact of CPython's hash tables (for ids that are non-negative
ints, slot ``id & mask``, then probing), of the ids and of how each set was built.

This mode reproduces that order by building the same sets, from the same ids (the training sessions'
``SessionId`` values), the same way, in Python (the large candidate sets only where last clicks tie, see
:meth:`SessionRecOrder.candidates`); similarities and scores are then computed by a compiled kernel over the
candidates in that order. It is slower than the default rule (recency) and exists to
compare with session-rec; scores agree with session-rec up to the order of floating-point sums.
"""

from __future__ import annotations

import numpy as np

from gru4rec_pipeline.compiled import COMPILE_OPTIONS, njit
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import DataFormatError
from gru4rec_pipeline.evaluation.knn_weights import distance_decay, merge_recent, position_weight


@njit(**COMPILE_OPTIONS)
def _ordered_vsknn_scores(items, n_items, k, weighting, weighting_score, cand_ptr, cand_session, set_ptr, set_items):
    """V-SKNN scores of each prefix of ``items`` from the candidates of row ``j``,
    ``cand_session[cand_ptr[j]:cand_ptr[j + 1]]`` in the order given: equal similarities keep that order."""
    n_rows = len(items) - 1
    scores = np.zeros((n_rows, n_items))
    last_position = np.zeros(n_items, dtype=np.int64)
    weight = np.zeros(n_items)
    distinct = np.empty(len(items), dtype=np.int64)
    n_distinct = 0
    for j in range(n_rows):
        item = items[j]
        length = j + 1
        if last_position[item] == 0:
            distinct[n_distinct] = item
            n_distinct += 1
        last_position[item] = length
        for d in range(n_distinct):
            weight[distinct[d]] = position_weight(weighting, last_position[distinct[d]], length)
        start, stop = cand_ptr[j], cand_ptr[j + 1]
        kept = np.empty(stop - start, dtype=np.int64)
        similarity = np.empty(stop - start)
        shared_last = np.empty(stop - start, dtype=np.int64)
        n_kept = 0
        for c in range(start, stop):
            s = cand_session[c]
            overlap = 0.0
            last = 0
            for e in range(set_ptr[s], set_ptr[s + 1]):
                if last_position[set_items[e]] > 0:
                    overlap += weight[set_items[e]]
                    last = max(last, last_position[set_items[e]])
            if overlap > 0:
                kept[n_kept] = s
                similarity[n_kept] = overlap / n_distinct
                shared_last[n_kept] = last
                n_kept += 1
        # a stable sort by decreasing similarity, the first k: session-rec's sorted(..., reverse=True)[:k]
        chosen = np.argsort(-similarity[:n_kept], kind="mergesort")[:k]
        row = scores[j]
        for c in chosen:
            gain = similarity[c] * distance_decay(weighting_score, length - shared_last[c] + 1)
            s = kept[c]
            for e in range(set_ptr[s], set_ptr[s + 1]):
                row[set_items[e]] += gain
    return scores


class SessionRecOrder:
    """The candidate sessions of each click in session-rec's iteration order (see the module docstring)."""

    def __init__(self, train: SessionArrays, n_items: int, sample_size: int):
        ids = np.asarray(train.session_ids, dtype=np.int64)
        if len(np.unique(ids)) != len(ids):
            raise DataFormatError("<training sessions>", "ties: session_rec needs distinct session ids")
        self.sample_size = sample_size
        self.item_sessions = [set() for _ in range(n_items)]
        event_ids = np.repeat(ids, train.lengths())
        for item, session_id in zip(train.items.tolist(), event_ids.tolist()):
            self.item_sessions[item].add(session_id)
        nonempty = train.lengths() > 0
        last_time = np.full(len(ids), -np.inf)
        last_time[nonempty] = train.times[train.offsets[1:][nonempty] - 1]
        low = int(ids.min()) if len(ids) else 0
        span = int(ids.max()) - low + 1 if len(ids) else 0
        if span <= 4 * len(ids) + (1 << 20):
            self.position = np.full(span, -1, dtype=np.int64)
            self.position[ids - low] = np.arange(len(ids))
            self.low, self.index = low, None
        else:
            import pandas as pd

            self.index = pd.Index(ids)
        self.last_time = last_time
        self.ids = ids
        # recency ranks (0: the latest last click; ties: the later session) and each item's sessions by rank
        self.by_rank = np.lexsort((-np.arange(len(ids)), -last_time))
        self.rank_of = np.empty(len(ids), dtype=np.int64)
        self.rank_of[self.by_rank] = np.arange(len(ids))
        event_rank = np.repeat(self.rank_of, train.lengths())
        pairs = np.unique(train.items.astype(np.int64) * max(len(ids), 1) + event_rank)
        self.item_ranks = pairs % max(len(ids), 1)
        self.item_ptr = np.searchsorted(pairs // max(len(ids), 1), np.arange(n_items + 1))

    def positions(self, session_ids: np.ndarray) -> np.ndarray:
        if self.index is not None:
            return self.index.get_indexer(session_ids)
        return self.position[session_ids - self.low]

    def candidates(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(cand_ptr, cand_session)``: for each click but the last, the training sessions (positions) in order.

        While the session's candidate set is small it is built as session-rec builds it. Once it holds more
        than ``sample_size`` ids only its ``sample_size + 1`` latest matter, which are among each item's
        ``sample_size + 1`` latest: when their last clicks all differ, their order is by time alone and the
        set is not needed; when two are equal, it is rebuilt from the session's first click on.
        """
        clicks = items[:-1].tolist()
        relevant: set | None = set()
        latest = np.zeros(0, dtype=np.int64)  # positions of the latest candidates, latest first
        parts, ptr = [], [0]
        sample_order = None
        for j, item in enumerate(clicks):
            if relevant is not None:
                postings = self.item_sessions[item]
                # a union is at least as large as either side: only a small one is built
                relevant = relevant | postings if len(postings) <= self.sample_size else None
                if relevant is not None and len(relevant) <= self.sample_size:
                    ordered = self.positions(np.fromiter(relevant, np.int64, len(relevant)))
                    parts.append(ordered)
                    ptr.append(ptr[-1] + len(ordered))
                    continue
                relevant = None
                for earlier in dict.fromkeys(clicks[: j + 1]):
                    latest = self._merge_latest(latest, earlier)
                sample_order = None
            elif item not in clicks[:j]:
                latest = self._merge_latest(latest, item)
                sample_order = None
            if sample_order is None:
                times = self.last_time[latest]
                if np.any(times[1:] == times[:-1]):
                    # the order of equal times is the candidate set's, which changes with every click
                    parts.append(self._exact_sample(clicks[: j + 1]))
                    ptr.append(ptr[-1] + len(parts[-1]))
                    continue
                else:
                    # set(list) adds the ids one by one in the list's order, as session-rec's loop of add()
                    sample = set(self.ids[latest[: self.sample_size]].tolist())
                    sample_order = self.positions(np.fromiter(sample, np.int64, len(sample)))
            parts.append(sample_order)
            ptr.append(ptr[-1] + len(sample_order))
        cand = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return np.asarray(ptr, dtype=np.int64), cand.astype(np.int64)

    def _merge_latest(self, latest: np.ndarray, item: int) -> np.ndarray:
        """The ``sample_size + 1`` latest of ``latest`` and of ``item``'s sessions, latest first."""
        ranks = np.empty(self.sample_size + 1, dtype=np.int64)
        ranks[: len(latest)] = self.rank_of[latest]
        start = self.item_ptr[item]
        postings = self.item_ranks[start : min(self.item_ptr[item + 1], start + self.sample_size + 1)]
        return self.by_rank[ranks[: merge_recent(ranks, len(latest), postings, len(ranks))]]

    def _exact_sample(self, clicks: list) -> np.ndarray:
        """session-rec's sample after ``clicks``: its candidate set rebuilt click by click, sorted stably by time."""
        relevant: set = set()
        for item in clicks:
            relevant = relevant | self.item_sessions[item]
        ids = np.fromiter(relevant, np.int64, len(relevant))
        chosen = np.argsort(-self.last_time[self.positions(ids)], kind="stable")[: self.sample_size]
        sample = set(ids[chosen].tolist())
        return self.positions(np.fromiter(sample, np.int64, len(sample)))


def ordered_vsknn_scores(order: SessionRecOrder, items, n_items, settings, set_ptr, set_items, weights) -> np.ndarray:
    """V-SKNN's scores of a session's clicks with session-rec's tie rule; ``weights``: names.POSITION_WEIGHTS."""
    items = np.ascontiguousarray(items, dtype=np.int64)
    cand_ptr, cand_session = order.candidates(items)
    return _ordered_vsknn_scores(
        items,
        n_items,
        int(settings["k"]),
        weights.index(settings.get("weighting", "same")),
        weights.index(settings.get("weighting_score", "same")),
        cand_ptr,
        cand_session,
        set_ptr,
        set_items,
    )
