"""Uniform random draws of records per class: ordinals, and the two-phase draw.

A draw first reads without a snapshot (one statement where the engine allows); when some label
came short (a repeated ordinal, a class smaller than asked, a record that moved) it is redone
inside one snapshot and settled exactly, so each label's result is a uniform random subset of
its class as one consistent state holds it.
"""
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from miro_edge.errors import CorruptRecordError
from miro_edge.memory.store.backends.base import RawRecord, ReadTxn, StoreBackend
from miro_edge.memory.types import StoredSample

Decode = Callable[[Sequence[RawRecord]], Tuple[List[StoredSample], int]]  # (good samples, failed count)


def draw_once(backend: StoreBackend, decode: Decode, code: int, wanted: Dict[int, int],
              picks: List[Tuple[int, float]], rng: np.random.Generator,
              exact: bool) -> Optional[Tuple[List[StoredSample], int, int, bool]]:
    """One attempt of ``SampleStore.draw``: (samples, corrupt, missing, whether it had to be settled), or
    None when not ``exact`` and some label came short (a repeated ordinal, or fewer records
    than asked)."""
    with backend.read(snapshot=exact) as txn:
        raws, lost = _isolating(txn.records_at_fractions, code, picks)
        expected = len(picks)
        settled = bool(lost or len(raws) != expected or len({raw[0] for raw in raws}) != expected)  # [0]: id
        if settled:
            if not exact:
                return None
            raws, more_lost, expected = _top_up(txn, code, wanted, raws, rng)
            lost += more_lost
        samples, bad = decode(raws)  # inside: a backend may hand out views valid only here
    return samples, lost + bad, max(0, expected - len(raws) - lost), settled


def distinct_ints(rng: np.random.Generator, count: int, k: int) -> List[int]:
    """``k`` distinct uniform integers in ``[0, count)`` (a uniform random k-subset, in random order)."""
    return _more_ords(rng, count, k, set())


def _more_ords(rng: np.random.Generator, count: int, need: int, taken: set) -> List[int]:
    """``need`` more distinct ordinals in ``[0, count)`` not in ``taken`` (which this updates).

    Sequential rejection (each accepted value is uniform over those not yet taken), O(need)
    instead of the O(count) permutation ``Generator.choice`` may do; when more than a quarter
    of the free values are wanted, a permutation of them. An ordinal is ``floor(u * count)`` for
    a uniform double ``u`` in [0, 1), as ``draw`` does: one ``rng.random`` call for many values
    (a Generator call costs microseconds), uniform up to a relative bias below ``count / 2**53``,
    and always ``< count`` for counts below 2**53.
    """
    free = count - len(taken)
    need = min(need, free)
    if need <= 0:
        return []
    if need > 1 and 4 * need > free:
        pool = [o for o in range(count) if o not in taken]
        picked = [pool[i] for i in rng.permutation(len(pool))[:need].tolist()]
        taken.update(picked)
        return picked
    out: List[int] = []
    while len(out) < need:
        for u in rng.random(need - len(out)).tolist():
            o = int(u * count)
            if o not in taken:
                taken.add(o)
                out.append(o)
    return out


def _isolating(fetch: Callable[[int, Sequence[Any]], List[RawRecord]], code: int,
               items: Sequence[Any]) -> Tuple[List[RawRecord], int]:
    """``fetch(code, items)``; if the engine reports a damaged page, item by item, skipping the
    ones it cannot read. Returns (rows, unreadable items)."""
    try:
        return fetch(code, items), 0
    except CorruptRecordError:
        rows: List[RawRecord] = []
        lost: int = 0
        for item in items:
            try:
                rows.extend(fetch(code, [item]))
            except CorruptRecordError:
                lost += 1
        return rows, lost


def _top_up(txn: ReadTxn, code: int, wanted: Mapping[int, int], raws: List[RawRecord],
            rng: np.random.Generator) -> Tuple[List[RawRecord], int, int]:
    """Settle a draw exactly inside its snapshot: drop repeated records, then draw each label's
    missing ordinals by sequential rejection (so each label's result stays a uniform random subset
    of its class). Returns (rows, unreadable slots, rows expected)."""
    have = txn.counts_for(code, list(wanted))
    kept: List[RawRecord] = []
    seen: Dict[int, set] = {}
    for raw in raws:
        taken = seen.setdefault(raw.label, set())
        if raw.ord not in taken:
            taken.add(raw.ord)
            kept.append(raw)
    slots: List[Tuple[int, int]] = []
    expected = 0
    for lab, count in have.items():
        want = min(wanted[lab], count)
        expected += want
        taken = seen.setdefault(lab, set())
        slots.extend((lab, o) for o in _more_ords(rng, count, want - len(taken), taken))
    lost = 0
    if slots:
        more, lost = _isolating(txn.records_at, code, slots)
        kept.extend(more)
    return kept, lost, expected
