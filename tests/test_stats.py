"""Confidence intervals: coverage at the stated rate on synthetic data with a known mean."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tts_gym.evaluation import stats as S


def _tolerance(level: float, sims: int, sigmas: float = 4.0) -> float:
    """Half-width of a binomial acceptance band for an observed coverage rate."""
    return sigmas * math.sqrt(level * (1 - level) / sims)


def test_t_interval_basic():
    iv = S.t_interval([1.0, 2.0, 3.0], 0.95)
    assert iv.mean == pytest.approx(2.0)
    # t_{0.975, 2} = 4.302652..., sd = 1, se = 1/sqrt(3)
    assert iv.high - iv.mean == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert iv.covers(2.0) and not iv.covers(5.0)
    one = S.t_interval([3.5])
    assert (one.low, one.mean, one.high) == (3.5, 3.5, 3.5)
    with pytest.raises(ValueError):
        S.t_interval([])
    with pytest.raises(ValueError):
        S.mean_ci([1, 2], method="nope")


@pytest.mark.parametrize("method,sims", [("t", 2000), ("bootstrap", 400)])
def test_replicate_ci_coverage(method, sims):
    """Per-replicate accuracies of a policy with known per-question success rates p_q (fixed
    questions, random shuffles): the CI over 100 replicates covers mean(p_q) at ~95 %."""
    rng = np.random.default_rng(1234)
    Q, R, level = 30, 100, 0.95
    p_q = rng.beta(0.6, 0.4, size=Q)           # bimodal, like real per-question accuracies
    truth = 100.0 * p_q.mean()
    hits = 0
    for i in range(sims):
        correct = rng.random((R, Q)) < p_q       # [replicates, questions]
        acc = correct.mean(axis=1) * 100.0
        iv = S.mean_ci(acc, level, method, n_boot=2000, seed=i)
        hits += iv.covers(truth)
    cov = hits / sims
    assert abs(cov - level) <= _tolerance(level, sims), f"{method} coverage {cov:.4f}"


def test_question_bootstrap_coverage():
    """Resampling questions: covers the population mean accuracy when questions are drawn from a
    population (percentile bootstrap with 30 questions runs slightly under nominal)."""
    rng = np.random.default_rng(7)
    Q, R, level, sims = 30, 20, 0.95, 400
    a, b = 2.0, 1.5
    truth = 100.0 * a / (a + b)
    hits = 0
    for i in range(sims):
        p_q = rng.beta(a, b, size=Q)
        correct = rng.random((R, Q)) < p_q
        iv = S.question_bootstrap_ci(correct, level, n_boot=2000, seed=i)
        hits += iv.covers(truth)
    cov = hits / sims
    assert iv.method == "question-bootstrap"
    assert level - 0.03 - _tolerance(level, sims) <= cov <= level + _tolerance(level, sims), cov


def test_paired_difference_coverage_and_identity():
    rng = np.random.default_rng(99)
    Q, R, level, sims = 30, 100, 0.95, 1000
    p_a = rng.uniform(0.2, 0.9, size=Q)
    p_b = np.clip(p_a - 0.05, 0, 1)            # b is 5 pp worse on every question
    truth = 100.0 * (p_a - p_b).mean()
    hits = 0
    for i in range(sims):
        u = rng.random((R, Q))                  # common random numbers: paired episodes
        ca, cb = u < p_a, u < p_b
        cmp = S.paired_difference(ca, cb, level=level)
        hits += cmp.accuracy_diff.covers(truth)
    cov = hits / sims
    assert abs(cov - level) <= _tolerance(level, sims), cov
    # identical policies: zero difference, p = 1, all ties
    c = rng.random((10, 30)) < 0.5
    same = S.paired_difference(c, c, np.ones((10, 30)), np.ones((10, 30)))
    assert same.accuracy_diff.mean == 0 and same.accuracy_diff.low == 0 and same.accuracy_diff.high == 0
    assert same.p_value == 1.0 and same.ties == c.size and not same.significant
    # a strictly better policy on every episode is significant
    better = S.paired_difference(np.ones((10, 30), bool), c, over="questions", n_boot=500)
    assert better.significant and better.wins == int((~c).sum()) and better.losses == 0
    with pytest.raises(ValueError):
        S.paired_difference(c, c[:5])


def test_interval_format():
    iv = S.Interval(70.0, 69.5, 70.5)
    assert f"{iv:.1f}" == "70.0 [69.5, 70.5]"
    assert iv.half_width == pytest.approx(0.5)
