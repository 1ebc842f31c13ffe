"""Voting primitives (``docs/replay-semantics.md``, "Votes and confidence"), the exact Beta-majority
confidence table and the CMC beta schedule (same document, "CMC")."""
from __future__ import annotations

import math

import numba as nb
import numpy as np
import pytest

from tts_gym.policies.common import CMC_SCHEDULE_KEYS, cmc_schedule, normalize_params
from tts_gym.core.voting import (CONF_TABLE_SIZE, conf, conf_exact, conf_lookup, conf_table,
                            majority, majority_ids, top_two, top_two_ids, vote_push)


# ---- majority / top_two ------------------------------------------------------------------------

def test_majority_first_occurrence_tie_break():
    assert majority([]) is None
    assert majority(["a"]) == "a"
    assert majority(["b", "a", "a", "b"]) == "b"          # tie: earliest first occurrence
    assert majority(["a", "b", "b", "a", "c", "c"]) == "a"
    assert majority(["x", "y", "y"]) == "y"
    assert majority(["ERR", "5", "ERR"]) == "ERR"          # "ERR" is an ordinary vote
    # last-occurrence tie-breaking would pick "b" here
    assert majority(["a", "b", "a", "b"]) == "a"


def test_top_two():
    assert top_two([]) == (None, 0, 0, 0)
    assert top_two(["a"]) == ("a", 1, 0, 1)
    assert top_two(["a", "a", "a"]) == ("a", 3, 0, 3)
    assert top_two(["x", "y", "y", "x", "z"]) == ("x", 2, 2, 5)
    assert top_two(["c", "b", "b", "a", "a", "a"]) == ("a", 3, 2, 6)
    assert top_two(["c", "b", "b", "c", "a"]) == ("c", 2, 2, 5)


def _counter_reference(seq):
    """collections.Counter.most_common semantics, written out: (winner, top1, top2, total)."""
    from collections import Counter
    if not seq:
        return None, 0, 0, 0
    mc = Counter(seq).most_common()
    return mc[0][0], mc[0][1], (mc[1][1] if len(mc) > 1 else 0), len(seq)


@nb.njit(cache=True)
def _prefix_votes(ids, counts, first, out):
    w, t1, t2 = -1, 0, 0
    for i in range(ids.shape[0]):
        w, t1, t2 = vote_push(counts, first, ids[i], i, w, t1, t2)
        out[i, 0] = w
        out[i, 1] = t1
        out[i, 2] = t2


def test_numba_votes_match_counter():
    rng = np.random.default_rng(0)
    A = 12
    counts = np.zeros(A, np.int32)
    first = np.zeros(A, np.int32)
    for trial in range(300):
        n = int(rng.integers(0, 40))
        k = int(rng.integers(1, A + 1))
        ids = rng.integers(0, k, size=n).astype(np.int32)
        seq = ids.tolist()
        w, t1, t2, tot = _counter_reference(seq)
        assert top_two(seq) == (w, t1, t2, tot)
        assert majority(seq) == w
        got = top_two_ids(ids, n, counts, first)
        assert (None if got[0] < 0 else got[0], got[1], got[2], got[3]) == (w, t1, t2, tot)
        assert not counts.any()                            # scratch restored
        m = majority_ids(ids, n, counts, first)
        assert (None if m < 0 else m) == w
        # incremental: every prefix
        out = np.zeros((n, 3), np.int64)
        _prefix_votes(ids, np.zeros(A, np.int32), np.zeros(A, np.int32), out)
        for i in range(n):
            ww, a, b, _ = _counter_reference(seq[:i + 1])
            assert tuple(out[i]) == (ww, a, b), (seq[:i + 1], out[i])


# ---- confidence ----------------------------------------------------------------------------------

def test_conf_known_values():
    assert conf(0, 0) == 0.0 and conf(0, 5) == 0.0
    assert conf(1, 0) == 0.75
    assert conf(3, 0) == 0.9375                 # ASC@0.95 cannot stop on 3 identical answers
    assert conf(4, 0) == 0.96875                # ... but can on 4
    for t in range(1, 100):
        assert conf(t, t) == 0.5                # ties
    assert conf(2, 1) == 0.6875                 # P[Bin(4, 1/2) <= 2] = 11/16


@pytest.mark.parametrize("variant", ["exact", "one_minus"])
def test_conf_table_exact(variant):
    table = conf_table(variant)
    assert table.shape == (CONF_TABLE_SIZE, CONF_TABLE_SIZE) and table.dtype == np.float64
    assert not table.flags.writeable
    rng = np.random.default_rng(1)
    for t1, t2 in [(1, 0), (64, 0), (128, 128), (256, 0), (0, 256), (256, 256), (200, 3)] + \
            [tuple(x) for x in rng.integers(0, CONF_TABLE_SIZE, size=(200, 2))]:
        q = conf_exact(t1, t2)
        want = float(q) if variant == "exact" else 1.0 - float(1 - q)
        assert table[t1, t2] == want, (t1, t2)
        assert conf(t1, t2, variant) == want
    assert (table >= 0).all() and (table <= 1).all()


def test_conf_table_matches_scipy_within_a_few_ulps():
    """The exact table agrees with scipy's ``1 - beta.cdf(0.5, t1 + 1, t2 + 1)`` (what the reference
    evaluates) on every pair ``0 <= t2 <= t1 <= 128`` to a few ulps. scipy's float64 evaluation is
    the inexact side: with scipy 1.17 it differs from the exact rational on 1,645 ("exact") /
    1,616 ("one_minus") of the 8,384 pairs (the counts of the replay semantics), by at most 10 ulps (e.g.
    ``(128, 125)``); both roundings reproduce every parity target (test_parity_reference.py)."""
    from scipy.stats import beta
    t1 = np.arange(1, 129)[:, None].repeat(129, 1)
    t2 = np.arange(0, 129)[None, :].repeat(128, 0)
    mask = t2 <= t1
    ref = 1.0 - beta.cdf(0.5, t1[mask] + 1, t2[mask] + 1)
    for variant in ("exact", "one_minus"):
        got = conf_table(variant)[t1[mask], t2[mask]]
        ulps = np.abs(got - ref) / np.spacing(np.maximum(np.abs(ref), np.abs(got)))
        assert ulps.max() <= 16.0, (variant, float(ulps.max()))
        assert (got != ref).mean() < 0.25       # spec: ~19 % of the pairs differ in the last ulp


@nb.njit(cache=True)
def _lookup(table, t1, t2):
    return conf_lookup(table, t1, t2)


def test_conf_lookup_numba_and_fallback():
    table = conf_table()
    for t1, t2 in [(0, 3), (1, 0), (5, 2), (128, 127), (256, 256)]:
        assert _lookup(table, t1, t2) == conf(t1, t2)
    for t1, t2 in [(300, 290), (257, 0), (400, 380), (260, 300)]:
        assert _lookup(table, t1, t2) == pytest.approx(float(conf_exact(t1, t2)), rel=1e-12)
        assert conf(t1, t2) == float(conf_exact(t1, t2))


# ---- CMC schedule --------------------------------------------------------------------------------

# docs/replay-semantics.md, "CMC": b, n_init, max_branch_use, warm_up, abandon_patience, T_ema,
# ema_alpha, conf_thresh, delta_slack, burst_aligned, widen_burst, trend_thresh, min_complete
SCHEDULE_TABLE = [
    (0.0, 2, 4, 2, 3, 2, 0.7, 0.85, 0.04, 1, 1, 0.04, 2),
    (0.2, 3, 16, 4, 5, 3, 0.62, 0.874, 0.034, 1, 2, 0.034, 3),
    (0.4, 4, 28, 5, 7, 4, 0.54, 0.898, 0.028, 2, 2, 0.028, 3),
    (0.5, 5, 34, 6, 8, 5, 0.5, 0.91, 0.025, 2, 2, 0.025, 4),
    (0.6, 6, 40, 7, 8, 6, 0.46, 0.922, 0.022, 2, 3, 0.022, 4),
    (0.8, 7, 52, 8, 10, 7, 0.38, 0.946, 0.016, 3, 3, 0.016, 4),
    (1.0, 8, 64, 10, 12, 8, 0.3, 0.97, 0.01, 3, 4, 0.01, 5),
]


@pytest.mark.parametrize("row", SCHEDULE_TABLE, ids=[f"b={r[0]}" for r in SCHEDULE_TABLE])
def test_cmc_schedule_table(row):
    sched = cmc_schedule(row[0])
    assert tuple(sched) == CMC_SCHEDULE_KEYS
    assert tuple(sched.values()) == row[1:]
    for k, v in sched.items():
        assert type(v) is (float if k in ("ema_alpha", "conf_thresh", "delta_slack", "trend_thresh")
                           else int), k


def test_cmc_schedule_half_to_even_and_clamp():
    s = cmc_schedule(0.5)
    # 2 + 6*0.5 = 5; 4 + 60*0.5 = 34; 2 + 8*0.5 = 6; 3 + 9*0.5 = 7.5 -> 8; 1 + 2*0.5 = 2;
    # 1 + 3*0.5 = 2.5 -> 2; 2 + 3*0.5 = 3.5 -> 4  (Python's round: half to even)
    assert (s["abandon_patience"], s["widen_burst"], s["min_complete"]) == (8, 2, 4)
    assert cmc_schedule(None) == cmc_schedule(0.5)
    assert cmc_schedule(-3) == cmc_schedule(0.0)
    assert cmc_schedule(7) == cmc_schedule(1.0)
    assert cmc_schedule("0.25") == cmc_schedule(0.25)
    # IEEE order of evaluation: 4 + 60*0.1 = 10.000000000000002 -> 10
    assert cmc_schedule(0.1)["max_branch_use"] == 10
    for b in np.linspace(0, 1, 101):
        sch = cmc_schedule(float(b))
        assert sch["n_init"] == max(2, round(2 + 6 * float(b)))
        assert sch["conf_thresh"] == round(0.85 + 0.12 * float(b), 4)


def test_normalize_params():
    assert normalize_params("sc", {"n": 16}) == ("asc", {"max_samples": 16, "threshold": 1.01})
    assert normalize_params("sc", {"max_samples": 8}) == ("asc", {"max_samples": 8, "threshold": 1.01})
    name, p = normalize_params("parallel_probe", {"num_chains": 8, "K": 5, "eps_inter": 5.0})
    assert name == "parallel_probe" and p["num_chains"] == 8 and p["T"] == 40
    assert normalize_params("pp", {})[0] == "parallel_probe"
    assert normalize_params("cmc", {"beta": 1})[1] == {"beta": 1.0}
    with pytest.raises(ValueError):
        normalize_params("asc", {"window_size": 8})
    with pytest.raises(ValueError):
        normalize_params("esc", {"max_samples": 2.5})
    with pytest.raises(ValueError):
        normalize_params("nope", {})
    assert math.isclose(normalize_params("asc", {"threshold": "0.9"})[1]["threshold"], 0.9)
