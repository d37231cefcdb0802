"""A seeded browsing process behind the synthetic raw files of the public data sets (Rees46, Coveo, ...).

Users make visits; a visit is a run of events a few seconds to minutes apart. An event's item is either a
fresh draw from a heavy-tailed popularity (always at a visit's start), the item before it again (a
consecutive repeat), or an item near the one before it (the sequential signal a model can learn). Most
events are views; the others are the set's other event types. The process yields what the authors'
preprocessing must handle: consecutive repeats, events at the same instant, visits that a gap of exactly the
session threshold does not cut and one tick more does, a long tail of items that the filters remove over
several rounds, and, added by :meth:`Browsing.add_visit`, sessions placed exactly on a split boundary.

Each set's module (``synthetic/<set>.py``) turns it into that set's raw files; the same spec and seed give
the same events, and so byte-identical files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

CSV_CHUNK_ROWS = 1_000_000


@dataclasses.dataclass(frozen=True)
class BrowsingSpec:
    """Sizes and shares of the process; ``ticks_per_second``: 1 for second, 1000 for millisecond times."""

    n_events: int
    n_items: int
    n_users: int
    start: int  # epoch seconds of the first instant
    days: int
    ticks_per_second: int = 1000
    mean_visit_events: float = 5.0
    kind_shares: tuple[float, ...] = (0.95, 0.05)  # view first, then the set's other event types
    repeat_share: float = 0.12
    follow_share: float = 0.55
    same_tick_share: float = 0.03
    gap_edge_share: float = 0.004  # gaps of exactly the session threshold, or one tick more
    gap_threshold_seconds: int = 3600
    median_gap_seconds: float = 30.0
    popularity_exponent: float = 1.05

    @property
    def end_tick(self) -> int:
        return (self.start + self.days * 86400) * self.ticks_per_second


@dataclasses.dataclass
class Browsing:
    """Events in file order (by tick, then visit, then position): user, visit, tick, item, kind (0: view)."""

    user: np.ndarray
    visit: np.ndarray
    tick: np.ndarray
    item: np.ndarray
    kind: np.ndarray
    visit_user: np.ndarray  # per visit
    popular_items: np.ndarray  # item indices, most popular first

    def add_visit(self, user: int, ticks: list[int], items: list[int], kind: int = 0) -> None:
        """Append a visit of ``user`` with events at ``ticks`` on ``items`` (all of kind ``kind``), keeping the
        file order."""
        visit = len(self.visit_user)
        self.visit_user = np.append(self.visit_user, user)
        n = len(ticks)
        self.user = np.concatenate([self.user, np.full(n, user)])
        self.visit = np.concatenate([self.visit, np.full(n, visit)])
        self.tick = np.concatenate([self.tick, np.asarray(ticks, dtype=np.int64)])
        self.item = np.concatenate([self.item, np.asarray(items, dtype=np.int64)])
        self.kind = np.concatenate([self.kind, np.full(n, kind, dtype=np.int8)])
        order = np.lexsort((np.arange(len(self.tick)), self.visit, self.tick))
        for name in ("user", "visit", "tick", "item", "kind"):
            setattr(self, name, getattr(self, name)[order])


def add_final_visit(browsing: Browsing, user: int, ticks_per_second: int) -> int:
    """A visit after every other event, on the two most popular items (it survives the filters, so its last
    event is the latest one left); returns that event's tick."""
    first = int(browsing.tick.max()) + ticks_per_second
    ticks = [first + step * ticks_per_second for step in range(4)]
    a, b = (int(item) for item in browsing.popular_items[:2])
    browsing.add_visit(user, ticks, [a, b, a, b])
    return ticks[-1]


def add_boundary_visits(browsing: Browsing, boundary: int, period: int, first_user: int, ticks_per_second: int) -> int:
    """Visits placed on the split's boundaries (``boundary``: the test period's start, in ticks; the validation
    period starts ``period`` earlier): one beginning exactly at the boundary (a test session), one beginning
    before it with an event exactly on it (its events before the boundary train), one beginning exactly at the
    validation boundary. Popular items, so the filters keep them; returns the next free user."""
    a, b, c = (int(item) for item in browsing.popular_items[:3])
    second = ticks_per_second
    browsing.add_visit(first_user, [boundary, boundary + second, boundary + 2 * second], [a, b, a])
    browsing.add_visit(first_user + 1, [boundary - 1, boundary, boundary + 1], [b, c, a])
    browsing.add_visit(first_user + 2, [boundary - period, boundary - period + second], [c, a])
    return first_user + 3


def scaled_spec(spec: BrowsingSpec, n_events: int) -> BrowsingSpec:
    """``spec`` with about ``n_events`` events, its items and users scaled alike."""
    factor = n_events / spec.n_events
    return dataclasses.replace(
        spec,
        n_events=n_events,
        n_items=max(50, int(spec.n_items * factor)),
        n_users=max(50, int(spec.n_users * factor)),
    )


def generate_browsing(spec: BrowsingSpec, rng: np.random.Generator) -> Browsing:
    """Draw the events of ``spec``; every draw comes from ``rng``."""
    tps = spec.ticks_per_second
    n_visits = max(1, int(round(spec.n_events / spec.mean_visit_events)))
    lengths = rng.geometric(1.0 / spec.mean_visit_events, size=n_visits).astype(np.int64)
    n = int(lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    first = np.zeros(n, dtype=bool)
    first[offsets[:-1]] = True
    visit = np.repeat(np.arange(n_visits), lengths)

    # Users: a few return often, most seldom.
    user_weight = rng.lognormal(0.0, 1.2, size=spec.n_users)
    visit_user = rng.choice(spec.n_users, size=n_visits, p=user_weight / user_weight.sum())

    # Times: visits start anywhere in the period (leaving room to end in it); events follow a few seconds apart.
    last_start = spec.end_tick - 2 * spec.gap_threshold_seconds * tps
    starts = rng.integers(spec.start * tps, last_start, size=n_visits)
    gaps = np.rint(rng.lognormal(np.log(spec.median_gap_seconds * tps), 1.2, size=n)).astype(np.int64)
    np.minimum(gaps, 25 * 60 * tps, out=gaps)
    draw = rng.random(n)
    gaps[draw < spec.same_tick_share] = 0
    edge = draw > 1.0 - spec.gap_edge_share
    gaps[edge] = spec.gap_threshold_seconds * tps + (rng.random(int(edge.sum())) < 0.5)
    gaps[first] = 0
    ticks = np.repeat(starts, lengths) + _within_visits(gaps, offsets)

    # Items: a popularity draw at a visit's start and at a jump; else a repeat or a step to a nearby item.
    rank_weight = 1.0 / np.arange(1, spec.n_items + 1) ** spec.popularity_exponent
    popular_items = rng.permutation(spec.n_items)
    anchor_items = popular_items[rng.choice(spec.n_items, size=n, p=rank_weight / rank_weight.sum())]
    move = rng.random(n)
    anchor = first | (move >= spec.repeat_share + spec.follow_share)
    steps = rng.geometric(0.5, size=n) * np.where(rng.random(n) < 0.5, -1, 1)
    steps[move < spec.repeat_share] = 0
    steps[anchor] = 0
    segment = np.cumsum(anchor) - 1
    starts_of_segment = np.flatnonzero(anchor)
    walk = np.cumsum(steps)
    walk -= walk[starts_of_segment][segment]
    items = (anchor_items[starts_of_segment][segment] + walk) % spec.n_items

    shares = np.asarray(spec.kind_shares, dtype=np.float64)
    kinds = rng.choice(len(shares), size=n, p=shares / shares.sum()).astype(np.int8)

    keep = ticks < spec.end_tick
    order = np.lexsort((np.arange(n), visit, ticks))
    order = order[keep[order]]
    users = visit_user[visit]
    return Browsing(users[order], visit[order], ticks[order], items[order], kinds[order], visit_user, popular_items)


def _within_visits(gaps: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each event's ticks after its visit's first event (``gaps``: ticks after the event before it)."""
    total = np.cumsum(gaps)
    return total - np.repeat(total[offsets[:-1]], np.diff(offsets))


def hex_ids(rng: np.random.Generator, n: int, n_bytes: int = 32) -> pa.Array:
    """``n`` random hexadecimal strings of ``2 * n_bytes`` characters (hash-like ids; distinct in practice)."""
    raw = rng.integers(0, 256, size=(n, n_bytes), dtype=np.uint8)
    text = np.frombuffer(raw.tobytes().hex().encode(), dtype=f"S{2 * n_bytes}")
    return pa.array(text, type=pa.binary()).cast(pa.string())


def distinct_integers(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """``n`` distinct integers in [low, high), in random order."""
    if high - low < n:
        raise ValueError(f"cannot draw {n} distinct integers from [{low}, {high})")
    chosen = np.zeros(0, dtype=np.int64)
    while len(chosen) < n:
        chosen = np.concatenate([chosen, rng.integers(low, high, size=2 * (n - len(chosen)) + 16)])
        _, first = np.unique(chosen, return_index=True)
        chosen = chosen[np.sort(first)]
    return chosen[:n]


def take_strings(names: pa.Array, codes: np.ndarray) -> pa.Array:
    """``names[codes]`` as a string array; a code of -1 gives an empty value."""
    indices = pa.array(codes, mask=codes < 0, type=pa.int32())
    return pa.DictionaryArray.from_arrays(indices, names).cast(pa.string())


def write_csv(path: Path, header: list[str], columns: dict, n_rows: int, delimiter: str = ",") -> None:
    """A header line, then the rows of ``columns`` (arrays, or functions ``(start, stop) -> pa.Array`` for
    columns built chunk by chunk), unquoted; missing values are empty fields."""
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none", delimiter=delimiter)
    with open(path, "wb") as stream:
        stream.write((delimiter.join(header) + "\n").encode())
        writer = None
        for start in range(0, n_rows, CSV_CHUNK_ROWS):
            stop = min(start + CSV_CHUNK_ROWS, n_rows)
            chunk = {
                name: column(start, stop) if callable(column) else pa.array(column[start:stop])
                for name, column in columns.items()
            }
            table = pa.table(chunk)
            if writer is None:
                writer = pa_csv.CSVWriter(stream, table.schema, write_options=options)
            writer.write_table(table)
        if writer is not None:
            writer.close()
