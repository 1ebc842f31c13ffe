"""Pareto frontier, frontier score and dominance."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tts_gym.evaluation import frontier as F


def test_pareto_frontier_hand_example():
    tokens = [100, 200, 150, 400, 300, 300, 50]
    acc = [50, 60, 40, 60, 70, 70, 10]
    f = F.pareto_frontier(tokens, acc, "x")
    assert f.tokens.tolist() == [50, 100, 200, 300]
    assert f.accuracy.tolist() == [10, 50, 60, 70]
    assert f.index.tolist() == [6, 0, 1, 4]         # first of the duplicate (300, 70) kept
    assert f.step([10, 50, 99, 100, 250, 1e9]).tolist() == [0, 10, 10, 50, 60, 70]
    with pytest.raises(ValueError):
        F.pareto_frontier([1, 2], [1])
    with pytest.raises(ValueError):
        F.pareto_frontier([1, np.nan], [1, 2])


def test_frontier_properties_random():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 25))
        t = np.round(10 ** rng.uniform(3, 6, n))
        a = np.round(rng.uniform(0, 100, n), 1)
        f = F.pareto_frontier(t, a)
        # strictly increasing in both coordinates
        assert np.all(np.diff(f.tokens) > 0) and np.all(np.diff(f.accuracy) > 0)
        # every sweep point lies on or below the frontier step function
        assert np.all(a <= f.step(t))
        # frontier points are not dominated by any sweep point
        for x, y in zip(f.tokens, f.accuracy):
            dom = (t <= x) & (a >= y) & ((t < x) | (a > y))
            assert not dom.any()
        # the frontier of the frontier is itself; adding a point never lowers the score
        g = F.pareto_frontier(f.tokens, f.accuracy)
        assert np.array_equal(g.tokens, f.tokens)
        t2, a2 = np.append(t, 10 ** rng.uniform(3, 6)), np.append(a, rng.uniform(0, 100))
        assert F.frontier_score(F.pareto_frontier(t2, a2)) >= F.frontier_score(f) - 1e-12


def test_frontier_score_definition():
    lo, hi = F.DEFAULT_TOKEN_RANGE
    flat = F.pareto_frontier([lo], [70.0])
    assert F.frontier_score(flat) == pytest.approx(70.0)
    # a step at the geometric midpoint: half the log-range at 40, half at 80
    mid = math.sqrt(lo * hi)
    f = F.pareto_frontier([lo, mid], [40.0, 80.0])
    assert F.frontier_score(f) == pytest.approx(60.0)
    # nothing reachable inside the range scores 0; a point before the range counts in full
    assert F.frontier_score(F.pareto_frontier([hi * 2], [99.0])) == 0.0
    assert F.frontier_score(F.pareto_frontier([1.0], [50.0])) == pytest.approx(50.0)
    # a custom range: first quarter of log-range at 0
    f = F.pareto_frontier([100.0], [20.0])
    assert F.frontier_score(f, (10.0, 10_000.0)) == pytest.approx(20.0 * 2 / 3)
    with pytest.raises(ValueError):
        F.frontier_score(f, (10.0, 5.0))
    assert F.common_token_range([F.pareto_frontier([10, 1000], [1, 2]), f]) == (10.0, 1000.0)


def test_dominance():
    a = F.pareto_frontier([100, 1000], [50, 70], "a")
    b = F.pareto_frontier([200, 2000], [50, 70], "b")       # same accuracies, more tokens
    c = F.pareto_frontier([50, 5000], [40, 90], "c")        # crosses a
    d = F.compare_frontiers(a, b)
    assert d.relation == "a" and F.dominates(a, b, strict=True) and not F.dominates(b, a)
    assert F.compare_frontiers(a, a).relation == "equal"
    assert F.dominates(a, a) and not F.dominates(a, a, strict=True)
    x = F.compare_frontiers(a, c)
    assert x.relation == "crossing"
    assert 50 in x.b_better_at.tolist() and 100 in x.a_better_at.tolist()
    # tolerance forgives small gaps; a token range restricts the check
    a2 = F.pareto_frontier([100, 1000], [49.5, 70], "a2")
    assert not F.dominates(a2, a) and F.dominates(a2, a, tol=0.5)
    assert F.dominates(c, a, token_range=(5000, 1e6))
    pts_ok = F.curve_below([100, 150, 2000], [50, 50, 70], a)
    assert pts_ok.tolist() == [True, True, True]
    assert F.curve_below([99], [50], a).tolist() == [False]
