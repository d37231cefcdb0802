"""The hidden-intent click process behind the synthetic yoochoose data.

A session is a hidden Markov chain over *intents* (what the visitor is after):

* the first event's intent is drawn from ``intent_prior``; before each later event the
  intent is kept with probability ``1 - switch_prob`` and otherwise redrawn from the prior
  (it may redraw the same intent);
* each event repeats the previous item with probability ``repeat_prob``; otherwise the item
  is drawn from the intent's emission on the session's start day,
  ``E_d[z, i] = intent_item_weight[z, i] * item_multiplier(d)[i] / (row sum)``,
  where the multiplier is 0 before the item's first day, ``boost_factor`` inside its
  popularity boost window and 1 otherwise.

Every item belongs to a few intents with different weights, so the last item alone leaves
the intent ambiguous and the earlier items of the session carry information. Session length
is drawn independently of the intents, so the next-item distribution given a prefix does not
depend on when the session stops: :mod:`.oracle` computes it exactly by forward filtering.

:class:`SyntheticProcess` holds the parameters and saves them as a pickle-free ``.npz``;
:func:`build_process` draws them from a :class:`SyntheticSpec`; :func:`sample_sessions`
draws sessions from them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gru4rec_pipeline.errors import DataFormatError

SECONDS_PER_DAY = 86400.0
PROCESS_FORMAT_VERSION = 1


@dataclass(frozen=True)
class SyntheticSpec:
    """Knobs of the synthetic data; the presets in :mod:`.synthetic` fill them in."""

    n_items: int = 7500  # items in the process (the rarest may never be clicked)
    n_sessions: int = 280_000  # sessions in yoochoose-clicks.dat
    test_file_share: float = 0.1  # sessions in yoochoose-test.dat, relative to n_sessions
    start_date: str = "2014-04-01"  # first day (UTC)
    n_days: int = 183
    final_day_volume: float = 1.0  # traffic of the last day (the test day) relative to an average day
    n_intents: int = 60
    extra_intents_per_item: float = 1.5  # Poisson mean of memberships beyond the first
    intent_prior_concentration: float = 2.0  # Dirichlet concentration of the intent prior
    item_popularity_sigma: float = 2.2  # log-normal spread of item popularity (heavy tail)
    membership_weight_shape: float = 0.3  # gamma shape of an item's weight in each of its intents
    switch_prob: float = 0.03  # chance of redrawing the intent before each later event
    repeat_prob: float = 0.15  # chance that an event repeats the previous item
    one_click_share: float = 0.135  # sessions of length 1
    mean_extra_length: float = 1.55  # mean of length - 2 for ordinary sessions (geometric)
    long_session_share: float = 0.06  # sessions with a longer geometric tail
    long_mean_extra_length: float = 9.0
    max_session_length: int = 200
    initial_item_share: float = 0.62  # items available from the first day; the rest appear later
    launch_boost_share: float = 0.5  # of the later items: popular for their first days
    random_boost_share: float = 0.05  # items with one popularity boost window at a random time
    boost_factor: float = 3.0
    boost_days: int = 10
    mean_gap_seconds: float = 80.0  # typical time between clicks of a session
    buy_session_share: float = 0.055  # click sessions that end with a purchase
    zero_price_share: float = 0.45  # buys recorded with price 0 and quantity 0
    compression_preset: int = 1  # LZMA2 preset of the archive (0 fastest .. 9)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclass
class SyntheticProcess:
    """Parameters of the click process, enough to sample from it and to filter a prefix."""

    item_ids: np.ndarray  # int64 [N] the ItemId of each process item
    intent_prior: np.ndarray  # float64 [K]
    intent_item_weight: np.ndarray  # float64 [K, N], before the day's multipliers
    switch_prob: float
    repeat_prob: float
    start_epoch: float  # UTC epoch seconds of the first day's midnight
    n_days: int
    item_first_day: np.ndarray  # int64 [N]
    boost_first_day: np.ndarray  # int64 [N], -1 when the item has no boost window
    boost_last_day: np.ndarray  # int64 [N], inclusive, -1 when none
    boost_factor: np.ndarray  # float64 [N]
    spec_json: str = "{}"

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def n_intents(self) -> int:
        return int(self.intent_prior.shape[0])

    def item_multiplier(self, day: int) -> np.ndarray:
        """Availability times popularity boost of every item on ``day`` (0-based)."""
        available = self.item_first_day <= day
        boosted = (self.boost_first_day <= day) & (day <= self.boost_last_day)
        return available * np.where(boosted, self.boost_factor, 1.0)

    def emission(self, day: int) -> np.ndarray:
        """float64 [K, N]: P(item | intent, no repeat) for sessions starting on ``day``."""
        weight = self.intent_item_weight * self.item_multiplier(day)[None, :]
        return weight / weight.sum(axis=1, keepdims=True)

    def day_of(self, times: np.ndarray) -> np.ndarray:
        return np.floor((np.asarray(times, dtype=np.float64) - self.start_epoch) / SECONDS_PER_DAY).astype(np.int64)

    def save(self, path: str | Path) -> None:
        """Write a pickle-free .npz to ``path`` as given (the caller stages it: ``files.atomic_outputs``)."""
        # np.savez gives members a fixed timestamp, so the bytes depend only on the arrays.
        with open(path, "wb") as handle:
            np.savez(
                handle,
                format_version=np.int64(PROCESS_FORMAT_VERSION),
                item_ids=self.item_ids.astype(np.int64),
                intent_prior=self.intent_prior.astype(np.float64),
                intent_item_weight=self.intent_item_weight.astype(np.float64),
                switch_prob=np.float64(self.switch_prob),
                repeat_prob=np.float64(self.repeat_prob),
                start_epoch=np.float64(self.start_epoch),
                n_days=np.int64(self.n_days),
                item_first_day=self.item_first_day.astype(np.int64),
                boost_first_day=self.boost_first_day.astype(np.int64),
                boost_last_day=self.boost_last_day.astype(np.int64),
                boost_factor=self.boost_factor.astype(np.float64),
                spec_json=np.array(self.spec_json),
            )

    @classmethod
    def load(cls, path: str | Path) -> "SyntheticProcess":
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            raise DataFormatError(path, f"cannot read the process parameters as a .npz: {exc}") from exc
        expected = [field.name for field in dataclasses.fields(cls)] + ["format_version"]
        missing = [name for name in expected if name not in arrays]
        if missing:
            raise DataFormatError(path, f"missing arrays {missing}; expected a process file written by 'synthesize'")
        version = int(arrays.pop("format_version"))
        if version != PROCESS_FORMAT_VERSION:
            raise DataFormatError(path, f"process format version {version}, expected {PROCESS_FORMAT_VERSION}")
        process = cls(
            item_ids=arrays["item_ids"],
            intent_prior=arrays["intent_prior"],
            intent_item_weight=arrays["intent_item_weight"],
            switch_prob=float(arrays["switch_prob"]),
            repeat_prob=float(arrays["repeat_prob"]),
            start_epoch=float(arrays["start_epoch"]),
            n_days=int(arrays["n_days"]),
            item_first_day=arrays["item_first_day"],
            boost_first_day=arrays["boost_first_day"],
            boost_last_day=arrays["boost_last_day"],
            boost_factor=arrays["boost_factor"],
            spec_json=str(arrays["spec_json"]),
        )
        n_intents, n_items = process.intent_prior.shape[0], process.item_ids.shape[0]
        if process.intent_item_weight.shape != (n_intents, n_items):
            raise DataFormatError(
                path,
                f"intent_item_weight has shape {process.intent_item_weight.shape}, expected {(n_intents, n_items)}",
            )
        return process


def start_epoch_of(date: str) -> float:
    return float(np.datetime64(date, "s").astype(np.int64))


def draw_item_ids(n_items: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct 9-digit ids in the range RSC15's item ids mostly fall in (214xxxxxx)."""
    return 214_000_000 + rng.choice(1_000_000, size=n_items, replace=False).astype(np.int64)


def build_process(spec: SyntheticSpec, rng: np.random.Generator) -> SyntheticProcess:
    n_items, n_intents = spec.n_items, spec.n_intents
    item_ids = draw_item_ids(n_items, rng)
    intent_prior = rng.dirichlet(np.full(n_intents, spec.intent_prior_concentration))

    # Each item joins 1 + Poisson intents, picked at random, with unequal weights:
    # heavy-tailed popularity times a per-membership affinity.
    popularity = rng.lognormal(0.0, spec.item_popularity_sigma, size=n_items)
    n_memberships = np.minimum(1 + rng.poisson(spec.extra_intents_per_item, size=n_items), n_intents)
    intent_rank = rng.random((n_items, n_intents)).argsort(axis=1).argsort(axis=1)
    member = intent_rank < n_memberships[:, None]
    affinity = rng.gamma(spec.membership_weight_shape, 1.0, size=(n_items, n_intents)) * member
    intent_item_weight = np.ascontiguousarray((popularity[:, None] * affinity).T)

    late = rng.random(n_items) >= spec.initial_item_share
    item_first_day = np.where(late, rng.integers(1, spec.n_days, size=n_items), 0).astype(np.int64)
    # Every intent needs an item on the first day, or its emission would be undefined there.
    for intent in np.flatnonzero((intent_item_weight * (item_first_day == 0)).sum(axis=1) == 0):
        item_first_day[np.argmax(intent_item_weight[intent])] = 0

    launch = late & (rng.random(n_items) < spec.launch_boost_share)
    random_boost = ~launch & (rng.random(n_items) < spec.random_boost_share)
    random_start = rng.integers(0, spec.n_days, size=n_items)
    boost_first_day = np.select([launch, random_boost], [item_first_day, random_start], -1).astype(np.int64)
    boost_last_day = np.where(boost_first_day >= 0, boost_first_day + spec.boost_days - 1, -1).astype(np.int64)
    boost_factor = np.where(boost_first_day >= 0, spec.boost_factor, 1.0)

    return SyntheticProcess(
        item_ids=item_ids,
        intent_prior=intent_prior,
        intent_item_weight=intent_item_weight,
        switch_prob=spec.switch_prob,
        repeat_prob=spec.repeat_prob,
        start_epoch=start_epoch_of(spec.start_date),
        n_days=spec.n_days,
        item_first_day=item_first_day,
        boost_first_day=boost_first_day,
        boost_last_day=boost_last_day,
        boost_factor=boost_factor,
        spec_json=spec.to_json(),
    )


@dataclass
class SampledSessions:
    """Sessions in start-time order: ``offsets`` [S+1] into the event arrays."""

    offsets: np.ndarray  # int64 [S+1]
    item_index: np.ndarray  # int64 [E] column in the process
    time_ms: np.ndarray  # int64 [E] UTC epoch milliseconds
    intent: np.ndarray  # int64 [E] hidden state (kept for tests and diagnostics)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def draw_session_lengths(spec: SyntheticSpec, n_sessions: int, rng: np.random.Generator) -> np.ndarray:
    """Many one-click sessions, mostly short ones, a long geometric tail; independent of intents."""
    long = rng.random(n_sessions) < spec.long_session_share
    mean_extra = np.where(long, spec.long_mean_extra_length, spec.mean_extra_length)
    extra = rng.geometric(1.0 / (mean_extra + 1.0)) - 1
    lengths = np.where(rng.random(n_sessions) < spec.one_click_share, 1, 2 + extra)
    return np.minimum(lengths, spec.max_session_length).astype(np.int64)


def draw_session_starts(
    spec: SyntheticSpec, n_sessions: int, start_epoch: float, rng: np.random.Generator
) -> np.ndarray:
    """Start times in epoch ms, sorted: weekly rhythm, day-to-day noise, busier evenings."""
    day_index = np.arange(spec.n_days)
    weekly = 1.0 + 0.15 * np.cos(2 * np.pi * (day_index - 5) / 7.0)
    daily_volume = weekly * rng.lognormal(0.0, 0.15, size=spec.n_days)
    daily_volume[-1] = spec.final_day_volume * daily_volume[:-1].mean() if spec.n_days > 1 else 1.0
    day = rng.choice(spec.n_days, size=n_sessions, p=daily_volume / daily_volume.sum())
    hour_profile = 1.0 + 0.8 * np.sin(2 * np.pi * (np.arange(24) - 12) / 24.0) ** 2 * (np.arange(24) >= 6)
    hour = rng.choice(24, size=n_sessions, p=hour_profile / hour_profile.sum())
    ms_in_hour = rng.integers(0, 3_600_000, size=n_sessions)
    start_ms = int(start_epoch * 1000) + day * 86_400_000 + hour * 3_600_000 + ms_in_hour
    return np.sort(start_ms.astype(np.int64))


def sample_sessions(
    process: SyntheticProcess, spec: SyntheticSpec, n_sessions: int, rng: np.random.Generator
) -> SampledSessions:
    lengths = draw_session_lengths(spec, n_sessions, rng)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n_events = int(offsets[-1])
    session_of_event = np.repeat(np.arange(n_sessions), lengths)
    is_first = np.zeros(n_events, dtype=bool)
    is_first[offsets[:-1]] = True

    start_ms = draw_session_starts(spec, n_sessions, process.start_epoch, rng)
    gaps_ms = np.rint(rng.lognormal(np.log(spec.mean_gap_seconds * 1000.0), 1.0, size=n_events)).astype(np.int64)
    gaps_ms[is_first] = 0
    within = np.cumsum(gaps_ms) - np.repeat(np.cumsum(gaps_ms)[offsets[:-1]], lengths)
    time_ms = start_ms[session_of_event] + within
    day = ((start_ms - int(process.start_epoch * 1000)) // 86_400_000)[session_of_event]

    # Intents: fresh draws at session starts and at switches, carried forward in between.
    fresh_intent = is_first | (rng.random(n_events) < process.switch_prob)
    positions = np.flatnonzero(fresh_intent)
    intent_at = np.zeros(n_events, dtype=np.int64)
    intent_at[positions] = rng.choice(process.n_intents, size=positions.size, p=process.intent_prior)
    intent = intent_at[np.maximum.accumulate(np.where(fresh_intent, np.arange(n_events), 0))]

    # Items: fresh draws from E_day[intent] where the event is not a repeat.
    fresh_item = is_first | (rng.random(n_events) >= process.repeat_prob)
    positions = np.flatnonzero(fresh_item)
    item_at = np.zeros(n_events, dtype=np.int64)
    item_at[positions] = draw_items(process, day[positions], intent[positions], rng)
    item_index = item_at[np.maximum.accumulate(np.where(fresh_item, np.arange(n_events), 0))]
    return SampledSessions(offsets=offsets, item_index=item_index, time_ms=time_ms, intent=intent)


def draw_items(process: SyntheticProcess, day: np.ndarray, intent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One item per (day, intent) pair by inverse-CDF over the intent's member items."""
    members = [np.flatnonzero(row) for row in process.intent_item_weight]
    group = day * process.n_intents + intent
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    uniforms = rng.random(group.size)
    items = np.empty(group.size, dtype=np.int64)
    bounds = np.flatnonzero(np.diff(sorted_group)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [group.size]])
    multiplier_day, multiplier = -1, None
    for start, end in zip(starts, ends):
        group_day, group_intent = divmod(int(sorted_group[start]), process.n_intents)
        if group_day != multiplier_day:  # groups come sorted by day
            multiplier_day, multiplier = group_day, process.item_multiplier(group_day)
        candidates = members[group_intent]
        cumulative = np.cumsum(process.intent_item_weight[group_intent, candidates] * multiplier[candidates])
        picks = np.searchsorted(cumulative, uniforms[start:end] * cumulative[-1], side="right")
        items[order[start:end]] = candidates[np.minimum(picks, candidates.size - 1)]
    return items
