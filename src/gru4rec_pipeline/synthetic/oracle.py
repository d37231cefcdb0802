"""The Bayes-optimal next-item distribution of the synthetic click process.

Because the synthetic data come from a known hidden-intent process (:mod:`.synthetic_process`),
the best any model can do is the posterior predictive distribution of the next item given the
session so far. With belief ``a_j = P(intent_j | items[:j+1])`` it is

    P(next = i | items[:j+1]) = r * [i == items[j]] + (1 - r) * sum_z b_j[z] * E_d[z, i],
    b_j = (1 - s) * a_j + s * prior,

(``r`` repeat probability, ``s`` switch probability, ``E_d`` the emission on the session's start
day ``d``), and the belief is updated by forward filtering:

    a_{j+1} ∝ b_j * (r * [items[j+1] == items[j]] + (1 - r) * E_d[:, items[j+1]]).

Session length does not depend on the intent, so stopping carries no information and is ignored.
The day ``d`` is taken from the first given event's time.

Exact for complete sessions as generated. After the RSC15 protocol removes rare or unseen items
from a session, the rows are those for the remaining events as if they were the whole session
(an approximation: the removed events are rare). For ranking metrics over a vocabulary, take the
vocabulary's columns (:meth:`Oracle.columns_of`); renormalising does not change the ranking.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import numpy as np

from gru4rec_pipeline.errors import PipelineError
from gru4rec_pipeline.synthetic.process import SyntheticProcess


class Oracle:
    """Posterior predictive of the synthetic process; columns follow :attr:`item_ids`."""

    def __init__(self, process: SyntheticProcess, cached_days: int = 8):
        self.process = process
        self.item_ids = np.asarray(process.item_ids, dtype=np.int64)
        self._id_order = np.argsort(self.item_ids, kind="stable")
        self._sorted_ids = self.item_ids[self._id_order]
        self._emissions: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_days = cached_days

    @classmethod
    def load(cls, process_path: str | Path) -> "Oracle":
        return cls(SyntheticProcess.load(process_path))

    def columns_of(self, item_ids: np.ndarray) -> np.ndarray:
        """Column of each ItemId; ItemIds the process does not know raise PipelineError."""
        item_ids = np.asarray(item_ids, dtype=np.int64)
        position = np.searchsorted(self._sorted_ids, item_ids)
        position = np.minimum(position, self._sorted_ids.size - 1)
        unknown = self._sorted_ids[position] != item_ids
        if unknown.any():
            examples = np.unique(item_ids[unknown])[:5].tolist()
            raise PipelineError(
                f"{int(unknown.sum())} events have ItemIds the synthetic process does not know (e.g. {examples}); "
                "the oracle only scores data generated with this process file"
            )
        return self._id_order[position]

    def emission(self, day: int) -> np.ndarray:
        """E_d [K, N], computed on demand and kept for the few most recent days."""
        if day in self._emissions:
            self._emissions.move_to_end(day)
            return self._emissions[day]
        if not 0 <= day < self.process.n_days:
            raise PipelineError(
                f"a session starts on day {day} of the synthetic data, outside its {self.process.n_days} days"
            )
        emission = self.process.emission(day)
        self._emissions[day] = emission
        if len(self._emissions) > self._cached_days:
            self._emissions.popitem(last=False)
        return emission

    def predicted_beliefs(self, columns: np.ndarray, emission: np.ndarray) -> np.ndarray:
        """[L, K]: the intent distribution of the event after each prefix."""
        process = self.process
        prior, switch, repeat = process.intent_prior, process.switch_prob, process.repeat_prob
        observed = emission[:, columns].T  # [L, K]
        beliefs = np.empty_like(observed)
        belief = prior * observed[0]
        for j in range(columns.size):
            if j > 0:
                likelihood = (1.0 - repeat) * observed[j] + (repeat if columns[j] == columns[j - 1] else 0.0)
                belief = beliefs[j - 1] * likelihood
            total = belief.sum()
            if not total > 0.0:
                raise PipelineError(
                    f"item {self.item_ids[columns[j]]} at position {j} is impossible under the synthetic process "
                    "(not yet available on the session's day)"
                )
            beliefs[j] = (1.0 - switch) * (belief / total) + switch * prior
        return beliefs

    def next_item_probs(self, item_ids: np.ndarray, times: np.ndarray) -> np.ndarray:
        """float64 [L, N]: row j = P(next item | items[:j+1], times[:j+1]) over :attr:`item_ids`."""
        item_ids = np.asarray(item_ids)
        if item_ids.size == 0:
            return np.zeros((0, self.item_ids.size))
        columns = self.columns_of(item_ids)
        emission = self.emission(int(self.process.day_of(np.asarray(times[:1]))[0]))
        beliefs = self.predicted_beliefs(columns, emission)
        repeat = self.process.repeat_prob
        probs = (1.0 - repeat) * (beliefs @ emission)
        probs[np.arange(columns.size), columns] += repeat
        return probs

    def predict_sessions(
        self, offsets: np.ndarray, item_ids: np.ndarray, times: np.ndarray, batch_events: int = 4096
    ) -> Iterator[np.ndarray]:
        """Rows of :meth:`next_item_probs` for each session ``offsets[s]:offsets[s+1]``, in order.

        Sessions are scored in batches of about ``batch_events`` events with one matrix product per
        day in the batch: many small products are slow when BLAS threads compete for busy cores.
        """
        offsets = np.asarray(offsets, dtype=np.int64)
        columns = self.columns_of(item_ids)
        times = np.asarray(times, dtype=np.float64)
        first_event = np.minimum(offsets[:-1], max(times.size - 1, 0))  # empty sessions may point past the end
        session_day = self.process.day_of(times[first_event]) if times.size else np.zeros(offsets.size - 1, np.int64)
        repeat = self.process.repeat_prob
        n_sessions = offsets.size - 1
        first = 0
        while first < n_sessions:
            last = int(np.searchsorted(offsets, offsets[first] + batch_events, side="right")) - 1
            last = min(max(last, first + 1), n_sessions)
            base = offsets[first]
            beliefs = np.empty((offsets[last] - base, self.process.n_intents))
            row_day = np.repeat(session_day[first:last], np.diff(offsets[first : last + 1]))
            for session in range(first, last):
                start, stop = offsets[session], offsets[session + 1]
                if stop > start:
                    emission = self.emission(int(session_day[session]))
                    beliefs[start - base : stop - base] = self.predicted_beliefs(columns[start:stop], emission)
            probs = np.empty((beliefs.shape[0], self.item_ids.size))
            for day in np.unique(row_day):
                rows = np.flatnonzero(row_day == day)
                probs[rows] = (1.0 - repeat) * (beliefs[rows] @ self.emission(int(day)))
            batch_columns = columns[base : offsets[last]]
            probs[np.arange(batch_columns.size), batch_columns] += repeat
            for session in range(first, last):
                yield probs[offsets[session] - base : offsets[session + 1] - base]
            first = last
