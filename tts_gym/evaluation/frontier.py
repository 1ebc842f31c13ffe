"""Accuracy-token frontiers of a sweep: Pareto front, one score per curve, dominance.

A *sweep* is a set of points ``(tokens, accuracy)`` -- one per configuration of a policy (SC@N for
N in 1..64, CMC for beta in 0..1, ...), with ``tokens`` the average tokens per question and
``accuracy`` in percent.

Frontier. A point is dominated when another point costs no more and is at least as accurate, and is
strictly better in one of the two. The Pareto frontier is the non-dominated points sorted by tokens;
its accuracies then increase strictly. The *frontier step function* ``F(x)`` is the best accuracy
reachable with at most ``x`` tokens per question: ``max{acc_i : tokens_i <= x}`` (0 below the
cheapest point), a non-decreasing step function.

Score (documented). ``frontier_score`` is the normalised area under ``F`` over a log-token range
``[lo, hi]``::

    score = 1 / (ln hi - ln lo) * integral_{lo}^{hi} F(x) d(ln x)

i.e. the mean of ``F`` with ``ln x`` uniform on ``[lo, hi]``. It is in the accuracy's units (a
frontier flat at 70 % scores 70), rewards reaching a given accuracy at fewer tokens, and is only
comparable between curves scored on the *same* range. Below a curve's cheapest point ``F = 0``:
a method that cannot operate at a budget scores nothing there, so the range decides how much
cheap operation counts. The default range :data:`DEFAULT_TOKEN_RANGE` = ``[5e4, 1e6]`` tokens per
question is the budget band in which every AutoTTS method except ESC (whose sweep starts at 16
samples) has configurations on the shared stores: from about three full reads (SC@3-4, CMC at
beta = 0 costs 52k-57k) to SC@64 (0.9-1.3M). Pass ``token_range`` for other data, or use
:func:`common_token_range` to derive one range from several curves.

Dominance. Frontier A dominates B when ``F_A(x) >= F_B(x)`` for every ``x`` (A is never worse at
any budget); strictly when, in addition, ``F_A > F_B`` somewhere. Because both functions are step
functions that only change at their points' token values, checking at the union of those values
is exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_TOKEN_RANGE: tuple[float, float] = (5e4, 1e6)
"""Default ``[lo, hi]`` tokens per question of :func:`frontier_score`."""


@dataclass(frozen=True)
class Frontier:
    """Pareto frontier: ``tokens`` increasing, ``accuracy`` strictly increasing; ``index`` maps each
    frontier point back to the position of its configuration in the original sweep."""
    tokens: np.ndarray
    accuracy: np.ndarray
    index: np.ndarray
    label: str = ""

    def __len__(self) -> int:
        return int(self.tokens.size)

    def step(self, x) -> np.ndarray:
        """``F(x)``: best frontier accuracy with at most ``x`` tokens (0 below the cheapest point)."""
        x = np.asarray(x, dtype=np.float64)
        k = np.searchsorted(self.tokens, x, side="right")  # points with tokens <= x
        acc = np.concatenate([[0.0], self.accuracy])
        return acc[k]

    def score(self, token_range=None) -> float:
        return frontier_score(self, token_range)


def pareto_frontier(tokens, accuracy, label: str = "") -> Frontier:
    """Non-dominated points of a sweep (see the module docstring), sorted by tokens.

    Of several points with identical ``(tokens, accuracy)`` the first one in the sweep is kept.
    """
    t = np.asarray(tokens, dtype=np.float64).ravel()
    a = np.asarray(accuracy, dtype=np.float64).ravel()
    if t.shape != a.shape:
        raise ValueError("tokens and accuracy must have the same length")
    if np.any(~np.isfinite(t)) or np.any(~np.isfinite(a)):
        raise ValueError("tokens and accuracy must be finite")
    # cheapest first; among equal tokens the most accurate first; then sweep order
    order = np.lexsort((np.arange(t.size), -a, t))
    keep = []
    best = -np.inf
    for i in order:
        if a[i] > best:
            keep.append(i)
            best = a[i]
    idx = np.asarray(keep, dtype=np.int64)
    return Frontier(t[idx], a[idx], idx, label)


def frontier_score(frontier: Frontier, token_range=None) -> float:
    """Normalised area under the frontier step function over ``ln x`` in ``token_range``."""
    lo, hi = DEFAULT_TOKEN_RANGE if token_range is None else token_range
    lo, hi = float(lo), float(hi)
    if not (0 < lo < hi):
        raise ValueError(f"token_range must satisfy 0 < lo < hi, got {token_range}")
    L0, L1 = np.log(lo), np.log(hi)
    # breakpoints of F inside (lo, hi)
    inner = frontier.tokens[(frontier.tokens > lo) & (frontier.tokens < hi)]
    edges = np.concatenate([[lo], inner, [hi]])
    logs = np.log(edges)
    vals = frontier.step(edges[:-1])  # F is right-continuous: its value on [e_i, e_{i+1})
    return float(np.sum(vals * np.diff(logs)) / (L1 - L0))


def common_token_range(frontiers, pad: float = 1.0) -> tuple[float, float]:
    """A range covering every frontier's points: ``[min tokens / pad, max tokens * pad]``."""
    ts = np.concatenate([f.tokens for f in frontiers if len(f)])
    if ts.size == 0 or ts.min() <= 0:
        return DEFAULT_TOKEN_RANGE
    lo, hi = float(ts.min()) / pad, float(ts.max()) * pad
    if hi <= lo:
        hi = lo * 10.0
    return lo, hi


@dataclass(frozen=True)
class Dominance:
    """Outcome of :func:`compare_frontiers`."""
    a_dominates_b: bool          # F_A >= F_B everywhere
    b_dominates_a: bool          # F_B >= F_A everywhere
    a_better_at: np.ndarray      # token values where F_A > F_B (start of each such step)
    b_better_at: np.ndarray      # token values where F_B > F_A

    @property
    def relation(self) -> str:
        """``"equal"``, ``"a"`` (A strictly dominates), ``"b"`` or ``"crossing"``."""
        if self.a_dominates_b and self.b_dominates_a:
            return "equal"
        if self.a_dominates_b:
            return "a"
        if self.b_dominates_a:
            return "b"
        return "crossing"


def compare_frontiers(a: Frontier, b: Frontier, tol: float = 0.0, token_range=None) -> Dominance:
    """Dominance between two frontiers (exact on the union of breakpoints).

    ``tol`` (accuracy units) forgives differences up to ``tol``; ``token_range`` restricts the check to
    budgets inside ``[lo, hi]`` (the value of each step function at ``lo`` is included).
    """
    xs = np.union1d(a.tokens, b.tokens)
    if token_range is not None:
        lo, hi = float(token_range[0]), float(token_range[1])
        xs = np.union1d(xs[(xs >= lo) & (xs <= hi)], [lo])
    fa, fb = a.step(xs), b.step(xs)
    a_better = fa > fb + tol
    b_better = fb > fa + tol
    return Dominance(a_dominates_b=not b_better.any(), b_dominates_a=not a_better.any(),
                     a_better_at=xs[a_better], b_better_at=xs[b_better])


def dominates(a: Frontier, b: Frontier, tol: float = 0.0, strict: bool = False,
              token_range=None) -> bool:
    """Whether frontier ``a`` dominates ``b`` (``F_a >= F_b - tol`` everywhere; ``strict``: and better
    somewhere)."""
    d = compare_frontiers(a, b, tol, token_range)
    return d.a_dominates_b and (not strict or not d.b_dominates_a)


def curve_below(points_tokens, points_accuracy, upper: Frontier, tol: float = 0.0) -> np.ndarray:
    """Per point: whether ``(tokens, accuracy)`` lies on or below ``upper``'s step function."""
    t = np.asarray(points_tokens, dtype=np.float64)
    a = np.asarray(points_accuracy, dtype=np.float64)
    return a <= upper.step(t) + tol
