"""Confidence intervals and paired comparisons over evaluation replicates.

An evaluation protocol (:mod:`tts_gym.evaluation.protocols`) produces ``R`` *replicates* (the
reference protocol: 100 shuffle seeds), each a pass over the benchmark's questions. The per-replicate
accuracies are the sample the intervals and comparisons below are computed on.

What the intervals mean. Over the reference protocol the questions are fixed and only the branch
order varies, so a CI over seeds measures the *replay* noise of the policy on these 30 questions --
how much the figure would move with another set of shuffles -- not how it would generalise to other
questions. The latter is what :func:`question_bootstrap_ci` (resampling questions) estimates; it is
much wider with 30 questions. Both are offered; tables report the seed interval by default.

Methods:

* ``"t"`` -- Student-t interval ``mean +- t_{1-a/2, R-1} * sd / sqrt(R)`` (``sd`` with ``ddof=1``);
* ``"bootstrap"`` -- percentile bootstrap of the mean over replicates (seeded, ``n_boot`` draws).

:func:`paired_difference` compares two policies evaluated on identical episodes: the per-replicate
differences are the sample, which cancels the episode-to-episode variation both share.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CI_METHODS = ("t", "bootstrap")


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""
    mean: float
    low: float
    high: float
    level: float = 0.95
    method: str = "t"
    n: int = 0

    @property
    def half_width(self) -> float:
        return 0.5 * (self.high - self.low)

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __format__(self, spec: str) -> str:
        spec = spec or ".2f"
        return f"{self.mean:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def _as_sample(values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("cannot form a confidence interval from an empty sample")
    return x


def t_interval(values, level: float = 0.95) -> Interval:
    """Student-t interval for the mean of ``values`` (degenerate ``[m, m]`` for one value or no spread)."""
    x = _as_sample(values)
    m = float(x.mean())
    n = x.size
    if n < 2:
        return Interval(m, m, m, level, "t", n)
    se = float(x.std(ddof=1)) / np.sqrt(n)
    h = _t_quantile(0.5 + level / 2.0, n - 1) * se
    return Interval(m, m - h, m + h, level, "t", n)


@lru_cache(maxsize=256)
def _t_quantile(q: float, df: int) -> float:
    from scipy.stats import t as student_t
    return float(student_t.ppf(q, df))


def _percentile_interval(m: float, boot: np.ndarray, level: float, n: int, method: str) -> Interval:
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [a, 1.0 - a])
    return Interval(m, float(lo), float(hi), level, method, n)


def bootstrap_interval(values, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> Interval:
    """Percentile-bootstrap interval for the mean of ``values`` (seeded, reproducible)."""
    x = _as_sample(values)
    n = x.size
    rng = np.random.default_rng(seed)
    # resample in chunks to bound memory (n_boot x n indices)
    means = np.empty(int(n_boot))
    chunk = max(1, 2_000_000 // max(n, 1))
    for s in range(0, int(n_boot), chunk):
        e = min(int(n_boot), s + chunk)
        means[s:e] = x[rng.integers(0, n, size=(e - s, n))].mean(axis=1)
    return _percentile_interval(float(x.mean()), means, level, n, "bootstrap")


def mean_ci(values, level: float = 0.95, method: str = "t", n_boot: int = 10_000,
            seed: int = 0) -> Interval:
    """Interval for the mean of per-replicate values with ``method`` in :data:`CI_METHODS`."""
    if method == "t":
        return t_interval(values, level)
    if method == "bootstrap":
        return bootstrap_interval(values, level, n_boot, seed)
    raise ValueError(f"unknown CI method {method!r}; choose one of {CI_METHODS}")


def question_bootstrap_ci(correct, level: float = 0.95, n_boot: int = 10_000, seed: int = 0,
                          scale: float = 100.0) -> Interval:
    """Percentile-bootstrap interval of the accuracy when the *questions* are resampled.

    ``correct`` is an ``[R, Q]`` array of per-episode outcomes (replicate x question). Each bootstrap
    draw picks ``Q`` questions with replacement and averages their per-question accuracy (mean over
    replicates), so it measures question-sampling uncertainty. ``scale=100`` gives percent.
    """
    c = np.asarray(correct, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError("correct must be a [replicates, questions] array")
    per_q = c.mean(axis=0) * scale
    iv = bootstrap_interval(per_q, level, n_boot, seed)
    return Interval(iv.mean, iv.low, iv.high, level, "question-bootstrap", per_q.size)


@dataclass(frozen=True)
class PairedComparison:
    """Difference ``a - b`` of two policies evaluated on identical episodes."""
    label_a: str
    label_b: str
    accuracy_diff: Interval       # percentage points (per-replicate differences)
    tokens_diff: Interval         # tokens per question
    p_value: float                # two-sided, paired t-test (or bootstrap) on the accuracy difference
    wins: int                     # episodes a got right and b wrong
    losses: int                   # episodes b got right and a wrong
    ties: int                     # episodes with the same outcome

    @property
    def significant(self) -> bool:
        """Whether the accuracy interval excludes zero."""
        return self.accuracy_diff.low > 0 or self.accuracy_diff.high < 0

    def summary(self) -> str:
        d = self.accuracy_diff
        return (f"{self.label_a} - {self.label_b}: accuracy {d.mean:+.2f} pp "
                f"[{d.low:+.2f}, {d.high:+.2f}] ({int(round(d.level * 100))}% {d.method}, p={self.p_value:.3g}); "
                f"tokens {self.tokens_diff.mean:+,.0f}/question; episodes a-only {self.wins}, "
                f"b-only {self.losses}, same {self.ties}")


def paired_difference(correct_a, correct_b, cost_a=None, cost_b=None, *, level: float = 0.95,
                      method: str = "t", over: str = "replicates", n_boot: int = 10_000,
                      seed: int = 0, label_a: str = "a", label_b: str = "b") -> PairedComparison:
    """Paired comparison of two policies on the same ``[R, Q]`` episodes.

    ``over="replicates"`` (default): the sample is the per-replicate accuracy difference (percentage
    points), interval by ``method`` (``"t"`` or ``"bootstrap"``). ``over="questions"``: the sample is
    the per-question accuracy difference, bootstrapped over questions (question-sampling uncertainty).
    Token differences use the same sample axis. The p-value is the paired t-test's for ``"t"`` and the
    two-sided bootstrap tail probability of zero otherwise.
    """
    ca = np.asarray(correct_a, dtype=np.float64)
    cb = np.asarray(correct_b, dtype=np.float64)
    if ca.shape != cb.shape or ca.ndim != 2:
        raise ValueError(f"paired comparison needs two [R, Q] arrays of the same shape, got {ca.shape} "
                         f"and {cb.shape}")
    axis = {"replicates": 1, "questions": 0}.get(over)
    if axis is None:
        raise ValueError("over must be 'replicates' or 'questions'")
    d_acc = (ca - cb).mean(axis=axis) * 100.0
    if cost_a is not None and cost_b is not None:
        d_tok = (np.asarray(cost_a, np.float64) - np.asarray(cost_b, np.float64)).mean(axis=axis)
    else:
        d_tok = np.zeros_like(d_acc)
    m = "bootstrap" if over == "questions" else method
    acc_iv = mean_ci(d_acc, level, m, n_boot, seed)
    tok_iv = mean_ci(d_tok, level, m, n_boot, seed)
    if m == "t":
        if d_acc.size < 2 or np.all(d_acc == d_acc[0]):
            p = 1.0 if np.all(d_acc == 0) else 0.0
        else:
            from scipy.stats import t as student_t
            n = d_acc.size
            tstat = d_acc.mean() / (d_acc.std(ddof=1) / np.sqrt(n))
            p = float(2.0 * student_t.sf(abs(tstat), n - 1))
    else:
        rng = np.random.default_rng(seed)
        n = d_acc.size
        boots = d_acc[rng.integers(0, n, size=(int(n_boot), n))].mean(axis=1)
        p = float(min(1.0, 2.0 * min((boots <= 0).mean(), (boots >= 0).mean())))
    a_ok, b_ok = ca > 0.5, cb > 0.5
    if over == "questions":
        acc_iv = Interval(acc_iv.mean, acc_iv.low, acc_iv.high, level, "question-bootstrap", acc_iv.n)
    return PairedComparison(label_a, label_b, acc_iv, tok_iv, p,
                            wins=int((a_ok & ~b_ok).sum()), losses=int((~a_ok & b_ok).sum()),
                            ties=int((a_ok == b_ok).sum()))


def exact_int_sum(values: np.ndarray) -> int:
    """The exact sum of an integer array as a Python int (int64 accumulation when it cannot
    overflow; otherwise the high and low 32-bit halves are summed separately)."""
    a = np.asarray(values)
    if a.size == 0:
        return 0
    a = a.astype(np.int64, copy=False).ravel()
    bound = max(abs(int(a.max())), abs(int(a.min())))
    if bound * a.size < 2**63:
        return int(a.sum(dtype=np.int64))
    hi = a >> 32                      # arithmetic shift: a == hi * 2**32 + lo, 0 <= lo < 2**32
    lo = a & 0xFFFFFFFF
    step = 1 << 30                    # |hi| < 2**31 and lo < 2**32: chunk sums stay in int64
    total = 0
    for i in range(0, a.size, step):
        total += int(hi[i:i + step].sum(dtype=np.int64)) * 2**32 + int(lo[i:i + step].sum(dtype=np.int64))
    return total
