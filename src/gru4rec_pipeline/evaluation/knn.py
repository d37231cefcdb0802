"""Session-based nearest neighbours: SKNN, V-SKNN and STAN, compiled over CSR arrays (numba).

All three score the successor of position ``j`` of a session from its ``k`` most similar training
sessions (the neighbours), chosen among a sample: the ``sample_size`` most recent training sessions
(by their last event; ties: the later session in the training file first) that share an item with
``items[: j + 1]``. Let ``S`` be the distinct items of ``items[: j + 1]``, ``N`` those of a
neighbour, ``|.|`` the number of distinct items.

- ``sknn`` (Ludewig & Jannach 2018; session-rec ``knn/sknn.py``): similarity ``jaccard``
  ``|S & N| / |S | N|``, or ``cosine`` ``|S & N| / sqrt(|S| |N|)`` (the paper's), or
  ``cosine_session_rec``: session-rec's code, ``li / sqrt(la) * sqrt(lb)``, which Python reads as
  ``|S & N| sqrt(|S|) / sqrt(|N|)``. An item scores the sum of the similarities of the neighbours
  that contain it.
- ``vsknn`` (session-rec ``knn/vsknn.py``, similarity ``vec``): item ``i`` of ``S`` weighs
  ``w(p_i, L)`` where ``p_i`` is its last position (1-based) in the ``L`` clicks so far:
  ``quadratic`` ``(p/L)^2``, ``div`` ``p/L``, ``log`` ``1 / log10(L - p + 1.7)``, ``same`` 1. The
  similarity is ``sum_{i in S & N} w_i / |S|``, kept when positive. A neighbour's items score its
  similarity times ``d(m)``, ``m`` the distance from the end (1 for the last click) of the latest
  click shared with it: ``quadratic`` ``1/m^2``, ``div`` ``1/m``, ``log`` ``1 / log10(m + 1.7)``,
  ``same`` 1.
- ``stan`` (Garg et al. 2019; session-rec ``knn/stan.py``): ``w_i = exp((p_i - L) / lambda_spw)``,
  similarity ``sum_{i in S & N} w_i / (sqrt(sum_{i in S} w_i^2) sqrt(|N|))`` times
  ``exp(-(t - t_N) / (86400 lambda_snh))`` (``t`` the current click's time, ``t_N`` the
  neighbour's last click). Item ``i`` of a neighbour scores the similarity times
  ``exp(-|q_i - q*| / lambda_inh)``, ``q_i`` its last position in the neighbour, ``q*`` the last
  position there of any item of ``S``.

Items of the current session are scored like any other (session-rec's ``remind``). Ties are broken by
recency (``ties: recency``, the default): among sessions with the same last click the later one in the training
file is sampled first, and among equally similar sessions the more recent is a neighbour first. session-rec
breaks both in the order its Python sets happen to iterate; V-SKNN's ``ties: session_rec`` reproduces that
order (:mod:`.knn_session_rec`: the same sets of the training sessions' ids, built the same way; slower), for
comparisons with session-rec. The sample is
exact without a scan over the training sessions: a session among the ``sample_size`` most recent
ones containing any item of ``S`` is among the ``sample_size`` most recent ones containing that
item, so each item keeps only those, most recent first, and a session's sample is their merge.
"""

from __future__ import annotations

import numpy as np

from gru4rec_pipeline.compiled import COMPILE_OPTIONS, announce_compilation, njit
from gru4rec_pipeline.data.arrays import SessionArrays
from gru4rec_pipeline.errors import ConfigError
from gru4rec_pipeline.evaluation.knn_weights import distance_decay, merge_recent, position_weight
from gru4rec_pipeline.names import KNN_TIES, POSITION_WEIGHTS, SESSION_KNN_DEFAULTS, SKNN_SIMILARITIES

METHODS = {"sknn": 0, "vsknn": 1, "stan": 2}


@njit(**COMPILE_OPTIONS)
def _top_k(similarity, n, k):
    """Indices of the ``k`` largest of ``similarity[:n]`` (ties: the lower index, the more recent session)."""
    if n <= k:
        return np.arange(n)
    threshold = np.partition(similarity[:n].copy(), n - k)[n - k]
    chosen = np.empty(k, dtype=np.int64)
    above = 0
    for c in range(n):
        if similarity[c] > threshold:
            above += 1
    ties_left = k - above
    m = 0
    for c in range(n):
        if similarity[c] > threshold or (similarity[c] == threshold and ties_left > 0):
            if similarity[c] == threshold:
                ties_left -= 1
            chosen[m] = c
            m += 1
    return chosen


@njit(**COMPILE_OPTIONS)
def _session_scores(
    items, times, n_items, method, k, sample_size, similarity_mode, weighting, weighting_score,
    lambda_spw, lambda_snh, lambda_inh,
    posting_ptr, posting_rank, rank_session, set_ptr, set_items, seq_ptr, seq_items, set_size, last_time,
):  # fmt: skip
    n_rows = len(items) - 1
    scores = np.zeros((n_rows, n_items))
    sample = np.empty(sample_size, dtype=np.int64)
    n_sample = 0
    last_position = np.zeros(n_items, dtype=np.int64)  # 1-based last position in the session so far; 0: absent
    weight = np.zeros(n_items)
    distinct = np.empty(len(items), dtype=np.int64)
    n_distinct = 0
    similarity = np.empty(sample_size)
    shared_last = np.empty(sample_size, dtype=np.int64)
    overlap = np.empty(sample_size)
    kept = np.empty(sample_size, dtype=np.int64)
    kept_similarity = np.empty(sample_size)
    seen = np.full(n_items, -1, dtype=np.int64)  # STAN: the neighbour whose last occurrence was already scored
    for j in range(n_rows):
        item = items[j]
        length = j + 1
        if last_position[item] == 0:
            distinct[n_distinct] = item
            n_distinct += 1
            postings = posting_rank[posting_ptr[item] : posting_ptr[item + 1]]
            n_sample = merge_recent(sample, n_sample, postings, sample_size)
        last_position[item] = length
        norm = 0.0
        for d in range(n_distinct):
            i = distinct[d]
            if method == 1:
                weight[i] = position_weight(weighting, last_position[i], length)
            elif method == 2:
                weight[i] = np.exp((last_position[i] - length) / lambda_spw)
                norm += weight[i] * weight[i]
            else:
                weight[i] = 1.0
        # overlaps from the postings of the session's items: both lists ascend by rank, so one sequential
        # merge per item, where reading each candidate's own items would cost a cache miss per candidate
        overlap[:n_sample] = 0.0
        shared_last[:n_sample] = 0
        for d in range(n_distinct):
            i = distinct[d]
            a, b, stop = 0, posting_ptr[i], posting_ptr[i + 1]
            while a < n_sample and b < stop:
                if sample[a] < posting_rank[b]:
                    a += 1
                elif sample[a] > posting_rank[b]:
                    b += 1
                else:
                    overlap[a] += weight[i]
                    shared_last[a] = max(shared_last[a], last_position[i])
                    a += 1
                    b += 1
        for c in range(n_sample):
            size = set_size[sample[c]]
            if method == 0:
                if similarity_mode == 0:
                    value = overlap[c] / (n_distinct + size - overlap[c])
                elif similarity_mode == 1:
                    value = overlap[c] / np.sqrt(n_distinct * size)
                else:
                    value = overlap[c] / np.sqrt(size) * np.sqrt(n_distinct)
            elif method == 1:
                value = overlap[c] / n_distinct
            else:
                value = overlap[c] / (np.sqrt(norm) * np.sqrt(size))
                value *= np.exp(-(times[j] - last_time[sample[c]]) / lambda_snh)
            similarity[c] = value
        # sknn and vsknn keep positive similarities only (stan keeps every sampled session)
        n_kept = 0
        for c in range(n_sample):
            if method == 2 or similarity[c] > 0:
                kept[n_kept] = c
                kept_similarity[n_kept] = similarity[c]
                n_kept += 1
        chosen = kept[np.sort(_top_k(kept_similarity, n_kept, k))]
        row = scores[j]
        for c in chosen:
            s = rank_session[sample[c]]
            if method == 2:
                star = 0
                for p in range(seq_ptr[s], seq_ptr[s + 1]):
                    if last_position[seq_items[p]] > 0:
                        star = p
                for p in range(seq_ptr[s + 1] - 1, seq_ptr[s] - 1, -1):
                    i = seq_items[p]
                    if seen[i] != c + j * sample_size:
                        seen[i] = c + j * sample_size
                        row[i] += similarity[c] * np.exp(-abs(p - star) / lambda_inh)
            else:
                gain = similarity[c]
                if method == 1:
                    gain *= distance_decay(weighting_score, length - shared_last[c] + 1)
                for e in range(set_ptr[s], set_ptr[s + 1]):
                    row[set_items[e]] += gain
    return scores


class SessionKNN:
    """SKNN, V-SKNN or STAN fitted on training sessions; a :class:`SessionScorer`."""

    no_score = 0.0  # in no neighbour session

    def __init__(self, method: str, n_items: int, settings: dict, index: dict):
        self.method = method
        self.n_items = n_items
        self.settings = settings
        self.index = index
        # the kernel's buffers hold a sample: never more than the training sessions, whatever sample_size says
        self.sample_capacity = max(min(int(settings["sample_size"]), len(index["rank_session"])), 1)
        self.session_rec_order = None  # ties: session_rec (V-SKNN): the candidates in session-rec's set order

    @classmethod
    def fit(cls, method: str, train: SessionArrays, n_items: int, **options) -> "SessionKNN":
        settings = check_settings(method, options)
        knn = cls(method, n_items, settings, build_index(train, n_items, settings["sample_size"]))
        if settings.get("ties", KNN_TIES[0]) == "session_rec":
            from gru4rec_pipeline.evaluation.knn_session_rec import SessionRecOrder

            knn.session_rec_order = SessionRecOrder(train, n_items, knn.sample_capacity)
        # Compile (or load from the cache) the kernels now, not in the evaluation's first session, whose rate would
        # read as a few events a second while they compile.
        with announce_compilation(f"the {method} baseline's kernels"):
            knn.session_scores(np.zeros(2, dtype=np.int64), np.zeros(2))
        return knn

    def session_scores(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        s = self.settings
        if self.session_rec_order is not None:
            from gru4rec_pipeline.evaluation.knn_session_rec import ordered_vsknn_scores

            index = self.index
            return ordered_vsknn_scores(
                self.session_rec_order, items, self.n_items, s, index["set_ptr"], index["set_items"], POSITION_WEIGHTS
            )
        return _session_scores(
            np.ascontiguousarray(items, dtype=np.int64),
            np.ascontiguousarray(times, dtype=np.float64),
            self.n_items,
            METHODS[self.method],
            int(s["k"]),
            self.sample_capacity,
            SKNN_SIMILARITIES.index(s.get("similarity", "jaccard")),
            POSITION_WEIGHTS.index(s.get("weighting", "same")),
            POSITION_WEIGHTS.index(s.get("weighting_score", "same")),
            float(s.get("lambda_spw", 1.0)),
            float(s.get("lambda_snh", 1.0)) * 86400.0,
            float(s.get("lambda_inh", 1.0)),
            *(self.index[name] for name in INDEX_ARRAYS),
        )


INDEX_ARRAYS = (
    "posting_ptr", "posting_rank", "rank_session", "set_ptr", "set_items", "seq_ptr", "seq_items", "set_size",
    "last_time",
)  # fmt: skip


def build_index(train: SessionArrays, n_items: int, sample_size: int) -> dict[str, np.ndarray]:
    """CSR arrays over the training sessions.

    ``rank_session[r]``: the session of recency rank ``r`` (0: most recent last click; ties: the later
    session first); ``posting_rank[posting_ptr[i]:posting_ptr[i + 1]]``: the ranks of the up to
    ``sample_size`` most recent sessions containing item ``i``, ascending; ``set_items`` (by
    ``set_ptr``): each session's distinct items, ascending; ``seq_items`` (``seq_ptr``): its clicks;
    ``set_size`` and ``last_time``: each rank's distinct items and last click.
    """
    lengths = train.lengths()
    n_sessions = len(lengths)
    nonempty = lengths > 0
    last_time = np.full(n_sessions, -np.inf)
    last_time[nonempty] = train.times[train.offsets[1:][nonempty] - 1]
    order = np.lexsort((-np.arange(n_sessions), -last_time))
    rank_of = np.empty(n_sessions, dtype=np.int64)
    rank_of[order] = np.arange(n_sessions)
    session_of_event = np.repeat(np.arange(n_sessions, dtype=np.int64), lengths)
    pairs = np.unique(session_of_event * n_items + train.items.astype(np.int64))
    pair_session, pair_item = pairs // n_items, pairs % n_items
    del pairs, session_of_event
    set_ptr = np.searchsorted(pair_session, np.arange(n_sessions + 1)).astype(np.int64)
    by_item = np.lexsort((rank_of[pair_session], pair_item))
    posting_item, posting_rank = pair_item[by_item], rank_of[pair_session[by_item]]
    del by_item
    item_start = np.searchsorted(posting_item, np.arange(n_items + 1))
    within = np.arange(len(posting_item)) - item_start[posting_item]
    keep = within < sample_size
    posting_ptr = np.searchsorted(posting_item[keep], np.arange(n_items + 1)).astype(np.int64)
    return {
        "posting_ptr": posting_ptr,
        "posting_rank": np.ascontiguousarray(posting_rank[keep]),
        "rank_session": order.astype(np.int64),
        "set_ptr": set_ptr,
        "set_items": np.ascontiguousarray(pair_item),
        "seq_ptr": train.offsets.astype(np.int64),
        "seq_items": train.items.astype(np.int64),
        # by rank, read in rank order for every sampled session
        "set_size": np.diff(set_ptr)[order],
        "last_time": last_time[order],
    }


def check_settings(method: str, options: dict) -> dict:
    """The method's settings: its defaults (names.SESSION_KNN_DEFAULTS) overridden by ``options``."""
    defaults = SESSION_KNN_DEFAULTS[method]
    key = f"baselines.{method}"
    unknown = set(options) - set(defaults) - ({"ties"} if method == "vsknn" else set())
    if unknown:
        raise ConfigError(key, f"unknown settings {sorted(unknown)} (expected {', '.join(defaults)})")
    settings = {**defaults, **options}
    for name in ("k", "sample_size"):
        if int(settings[name]) != settings[name] or settings[name] < 1:
            raise ConfigError(f"{key}.{name}", f"must be a positive integer, got {settings[name]!r}")
    if settings["k"] > settings["sample_size"]:
        raise ConfigError(
            f"{key}.k",
            f"k={settings['k']} neighbours cannot be chosen among sample_size={settings['sample_size']} sessions",
        )
    for name, allowed in (
        ("similarity", SKNN_SIMILARITIES),
        ("weighting", POSITION_WEIGHTS),
        ("weighting_score", POSITION_WEIGHTS),
    ):
        if name in settings and settings[name] not in allowed:
            raise ConfigError(f"{key}.{name}", f"got {settings[name]!r}, expected one of {', '.join(allowed)}")
    if settings.get("ties", KNN_TIES[0]) not in KNN_TIES:
        raise ConfigError(f"{key}.ties", f"got {settings['ties']!r}, expected one of {', '.join(KNN_TIES)}")
    for name in ("lambda_spw", "lambda_snh", "lambda_inh"):
        if name in settings and not float(settings[name]) > 0:
            raise ConfigError(f"{key}.{name}", f"must be positive, got {settings[name]!r}")
    return settings
