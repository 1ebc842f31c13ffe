"""Voting primitives of the AutoTTS reference (``docs/replay-semantics.md``, "Votes and confidence").

Every vote is over a list of answers **in the order the list was built**, with the reference's
``collections.Counter.most_common`` tie-breaking: highest count wins, and among equal counts the
answer whose *first occurrence* in the list is earliest wins.

Two flavours of each primitive:

* plain Python over any hashable answers (strings, ids): :func:`majority`, :func:`top_two`,
  :func:`ranked`, :func:`conf` -- used by the Python policies (:mod:`tts_gym.policies.baselines`), the
  plain-Python model (:mod:`tts_gym.core.spec_model`), rendering and the store statistics;
* numba over int answer-id arrays, allocation-free, for the compiled policies
  (:mod:`tts_gym.policies.compiled`): :func:`vote_push` (incremental majority / top-two),
  :func:`majority_ids`, :func:`top_two_ids`, :func:`conf_lookup`.

Beta-majority confidence
------------------------
``conf(t1, t2) = 0`` if ``t1 <= 0``, else ``1 - BetaCDF(0.5; t1 + 1, t2 + 1)``, which for integers is
``P[Binomial(n, 1/2) <= t1]`` with ``n = t1 + t2 + 1``, i.e. ``sum_{j <= t1} C(n, j) / 2**n``.
The reference evaluates it with ``scipy.stats.beta.cdf``; here it is an exact rational rounded once
to float64 (Python's ``int / int`` true division is correctly rounded), tabulated as
``conf_table()[t1, t2]`` for ``0 <= t1, t2 < CONF_TABLE_SIZE``. Two roundings are available
(both reproduce the parity targets of the replay semantics; the full AIME24 reference CSV is the
regression test, ``tests/test_parity_reference.py``):

* ``"exact"`` (default): ``float(exact 1 - CDF)`` -- the correctly rounded value;
* ``"one_minus"``: ``1 - float(exact CDF)`` -- the reference's formula with an exact CDF.

Beyond the table (never reached by the five algorithms on 128-branch stores) :func:`conf_lookup`
falls back to a float64 log-space sum, accurate to a few ulps.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Hashable, Iterable, Sequence

import numba as nb
import numpy as np

__all__ = [
    "CONF_TABLE_SIZE", "CONF_VARIANTS", "conf_table", "conf", "conf_exact",
    "majority", "top_two", "ranked", "majority_ids", "top_two_ids", "vote_push", "conf_lookup",
]

CONF_TABLE_SIZE = 257
"""Rows/columns of :func:`conf_table`: counts ``0..256`` (the stores have 128 branches)."""

CONF_VARIANTS = ("exact", "one_minus")
DEFAULT_CONF_VARIANT = "exact"


# ---------------------------------------------------------------------------------------------
# confidence table (exact, Python integers)
# ---------------------------------------------------------------------------------------------

def conf_exact(t1: int, t2: int):
    """``conf(t1, t2)`` as an exact :class:`fractions.Fraction` (``0`` if ``t1 <= 0``)."""
    from fractions import Fraction
    t1, t2 = int(t1), int(t2)
    if t1 <= 0:
        return Fraction(0)
    n = t1 + t2 + 1
    return Fraction(sum(math.comb(n, j) for j in range(t1 + 1)), 1 << n)


@lru_cache(maxsize=None)
def conf_table(variant: str = DEFAULT_CONF_VARIANT, size: int = CONF_TABLE_SIZE) -> np.ndarray:
    """Read-only float64 table ``T[t1, t2] = conf(t1, t2)`` for ``0 <= t1, t2 < size`` (computed once
    with exact integer arithmetic; ~0.1 s for the default size)."""
    if variant not in CONF_VARIANTS:
        raise ValueError(f"unknown confidence variant {variant!r}; choose one of {CONF_VARIANTS}")
    size = int(size)
    table = np.zeros((size, size), dtype=np.float64)
    # Pascal rows: row[j] = C(n, j); cum[j] = sum_{i <= j} C(n, i)
    row = [1]  # n = 0
    for n in range(1, 2 * size):
        row = [1] + [row[j - 1] + row[j] for j in range(1, n)] + [1]
        lo = max(1, n - size)          # t1 >= 1 (t1 = 0 stays 0.0), t2 = n - 1 - t1 < size
        hi = min(size - 1, n - 1)      # t1 < size
        if lo > hi:
            continue
        denom = 1 << n
        cum = sum(row[:lo])
        for t1 in range(lo, hi + 1):
            cum += row[t1]
            if variant == "exact":
                v = cum / denom                      # correctly rounded exact 1 - CDF
            else:
                v = 1.0 - ((denom - cum) / denom)    # 1 - (correctly rounded exact CDF)
            table[t1, n - 1 - t1] = v
    table.setflags(write=False)
    return table


def conf(t1: int, t2: int, variant: str = DEFAULT_CONF_VARIANT) -> float:
    """Beta-majority confidence of a vote whose top two counts are ``t1 >= t2`` (float64)."""
    t1, t2 = int(t1), int(t2)
    if t1 <= 0:
        return 0.0
    table = conf_table(variant)
    if t1 < table.shape[0] and t2 < table.shape[1]:
        return float(table[t1, t2])
    q = conf_exact(t1, t2)
    return float(q) if variant == "exact" else 1.0 - float(1 - q)


# ---------------------------------------------------------------------------------------------
# Python primitives over any hashable answers
# ---------------------------------------------------------------------------------------------

def _counts(answers: Iterable[Hashable]) -> dict:
    counts: dict = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1   # dict keeps first-insertion order
    return counts


def majority(answers: Sequence[Hashable]):
    """Most frequent answer; ties -> earliest first occurrence; ``None`` for an empty list."""
    best, best_c = None, 0
    for a, c in _counts(answers).items():   # first-occurrence order: strict > keeps the earliest
        if c > best_c:
            best, best_c = a, c
    return best


def ranked(answers: Sequence[Hashable]) -> list:
    """The distinct answers by vote count, most first; equal counts in first-occurrence order (so
    ``ranked(a)[0] == majority(a)`` and ``ranked(a)[1]`` is the runner-up)."""
    counts = _counts(answers)
    return sorted(counts, key=lambda a: -counts[a])   # a stable sort keeps first-occurrence order


def top_two(answers: Sequence[Hashable]):
    """``(winner, top1, top2, total)`` as in the reference; ``(None, 0, 0, 0)`` for an empty list."""
    counts = _counts(answers)
    if not counts:
        return None, 0, 0, 0
    best, t1, t2 = None, 0, 0
    for a, c in counts.items():
        if c > t1:
            best, t1, t2 = a, c, t1
        elif c > t2:
            t2 = c
    return best, t1, t2, len(answers)


# ---------------------------------------------------------------------------------------------
# numba primitives over answer ids (>= 0)
# ---------------------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True, inline="always")
def vote_push(counts, first, a, idx, w, t1, t2):
    """Append answer id ``a`` (at list index ``idx``) to an incremental vote.

    ``counts[a]`` / ``first[a]`` are per-answer scratch (``counts`` zero for unseen answers;
    ``first[a]`` is written at the first occurrence). ``(w, t1, t2)`` is the current
    ``(winner, top1, top2)`` (``w = -1`` for an empty vote); returns the updated triple.
    Exact under the first-occurrence rule: only ``a``'s count changes, so the winner either stays
    or becomes ``a``, and the old winner's count becomes the runner-up when ``a`` overtakes it."""
    ua = np.uint32(a)   # unsigned indices skip numba's negative-index wraparound (kernels.ix)
    c = counts[ua] + 1
    counts[ua] = c
    if c == 1:
        first[ua] = idx
    if w < 0:
        return a, c, 0
    if a == w:
        return w, c, t2
    if c > t1 or (c == t1 and first[ua] < first[np.uint32(w)]):
        return a, c, t1
    if c > t2:
        t2 = c
    return w, t1, t2


@nb.njit(cache=True, nogil=True)
def top_two_ids(ids, n, counts, first):
    """``(winner, top1, top2, total)`` of ``ids[:n]`` (``(-1, 0, 0, 0)`` if ``n == 0``).
    ``counts`` must be zero on entry and is zero again on exit; ``first`` is scratch."""
    w, t1, t2 = -1, 0, 0
    for i in range(n):
        w, t1, t2 = vote_push(counts, first, ids[i], i, w, t1, t2)
    for i in range(n):
        counts[ids[i]] = 0
    return w, t1, t2, n


@nb.njit(cache=True, nogil=True)
def majority_ids(ids, n, counts, first):
    """Majority answer id of ``ids[:n]`` (-1 if empty), first-occurrence tie-breaking.
    ``counts`` must be zero on entry and is zero again on exit; ``first`` is scratch."""
    w, t1, t2, tot = top_two_ids(ids, n, counts, first)
    return w


@nb.njit(cache=True, nogil=True)
def _conf_float(t1, t2):
    # P[Bin(n, 1/2) <= t1] by a log-space sum (fallback beyond the exact table)
    n = t1 + t2 + 1
    lg_n1 = math.lgamma(n + 1.0)
    ln2n = n * math.log(2.0)
    m = lg_n1 - math.lgamma(t1 + 1.0) - math.lgamma(n - t1 + 1.0) - ln2n  # largest term if t1<=n/2
    if 2 * t1 > n:
        m = lg_n1 - 2.0 * math.lgamma(n / 2.0 + 1.0) - ln2n
    s = 0.0
    for j in range(t1 + 1):
        s += math.exp(lg_n1 - math.lgamma(j + 1.0) - math.lgamma(n - j + 1.0) - ln2n - m)
    v = math.exp(m + math.log(s))
    return 1.0 if v > 1.0 else v


@nb.njit(cache=True, nogil=True, inline="always")
def conf_lookup(table, t1, t2):
    """numba ``conf(t1, t2)`` from a :func:`conf_table` (float fallback beyond it)."""
    if t1 <= 0:
        return 0.0
    if t1 < table.shape[0] and t2 < table.shape[1]:
        return table[np.uint32(t1), np.uint32(t2)]
    return _conf_float(t1, t2)
