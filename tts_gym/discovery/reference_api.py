"""The controller format of the AutoTTS reference (``method.py``), provided by the project.

The authors' discovery rounds write a ``method.py`` that defines ``OptimalController``, a subclass
of ``LLMDesignedMethod`` constructed as ``OptimalController(config={"beta": b})`` and called as
``solve(question)``, next to a set of shared helpers and the seed algorithms. Their files carry all of
that themselves; a controller written for this project can import the same names from here::

    from tts_gym.discovery.reference_api import (
        LLMDesignedMethod, MethodTraceRecorder, _safe_probe_new, _safe_probe_more, _vote_stats,
        _beta_majority_confidence)

    class OptimalController(LLMDesignedMethod):
        NAME = "my_controller"

        def __init__(self, config=None):
            super().__init__(config)
            self.beta = float(self.config.get("beta", 0.5))

        def solve(self, question):
            ...

Both kinds of file run unchanged under ``tts-gym eval --controller FILE`` and in the discovery
sandbox (this module is on the sandbox's import allow-list, underscore names included).

Names and behaviour follow the reference (``docs/replay-semantics.md`` sections 4 and 5):

* :class:`LLMDesignedMethod` -- abstract base: ``NAME``, ``config`` (a dict), abstract
  ``solve(question)``, ``__call__`` = ``solve``, ``description()``;
* :class:`MethodTraceRecorder` -- ``add_step(**fields)`` / ``to_list()``;
* the helpers: ``_majority_answer`` (most common; ties: earliest first occurrence),
  ``_vote_stats`` (``(winner, top1, top2, total)``), ``_beta_majority_confidence``
  (``1 - BetaCDF(0.5; top1 + 1, top2 + 1)`` with scipy's value), ``_weighted_vote`` (ties: the
  lexicographically larger answer), and the safe wrappers ``_safe_probe_new``,
  ``_safe_probe_more``, ``_safe_full_read`` (``None`` instead of ``IndexError``/``ValueError``);
* the seed algorithms :class:`ASCMethod`, :class:`ESCMethod`, :class:`Parallel_Probe` with the
  reference's constructor signatures and defaults. As in the reference, ``config`` entries are
  recorded in ``self.config`` but the keyword arguments set the behaviour.

:data:`beta` is scipy's ``scipy.stats.beta`` with ``cdf``/``sf`` memoised on scalar arguments
(:class:`MemoizedDistribution`; identical values, computed once each). The sandbox hands the same
object to controller code that imports ``scipy.stats``: Beta-majority confidences are the hot spot
of the reference's controllers.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, Dict, List, Optional

import numpy as np

__all__ = [
    "LLMDesignedMethod", "MethodTraceRecorder", "ASCMethod", "ESCMethod", "Parallel_Probe",
    "_majority_answer", "_safe_probe_new", "_safe_probe_more", "_safe_full_read", "_vote_stats",
    "_beta_majority_confidence", "_weighted_vote", "MemoizedDistribution", "beta",
]

REFERENCE_NAMES = tuple(__all__)
"""The names controller code may import from this module."""


# ------------------------------------------------------------------------------------------------
# memoised scipy distributions
# ------------------------------------------------------------------------------------------------

_SCALAR_TYPES = (int, float, np.integer, np.floating)


class MemoizedDistribution:
    """A scipy.stats distribution whose ``cdf`` and ``sf`` remember their results for scalar
    arguments (positional, no keywords); every other call and attribute goes to the distribution
    itself. The values are the distribution's own, so results do not change, only their cost."""

    __slots__ = ("_dist", "_cache", "_limit")

    def __init__(self, dist, limit: int = 1 << 17) -> None:
        self._dist = dist
        self._cache: dict = {}
        self._limit = int(limit)

    def _memo(self, kind: str, args: tuple, kwds: dict):
        if kwds or not all(isinstance(a, _SCALAR_TYPES) for a in args):
            return getattr(self._dist, kind)(*args, **kwds)
        key = (kind, *args)
        try:
            return self._cache[key]
        except KeyError:
            pass
        value = getattr(self._dist, kind)(*args)
        if len(self._cache) >= self._limit:
            self._cache.clear()
        self._cache[key] = value
        return value

    def cdf(self, x, *args, **kwds):
        return self._memo("cdf", (x, *args), kwds)

    def sf(self, x, *args, **kwds):
        return self._memo("sf", (x, *args), kwds)

    def __call__(self, *args, **kwds):
        return self._dist(*args, **kwds)

    def __getattr__(self, name):
        return getattr(self._dist, name)

    def __repr__(self) -> str:
        return f"MemoizedDistribution({self._dist.name})"


class _LazyBeta:
    """``scipy.stats.beta`` memoised, imported on first use (scipy takes about a second)."""

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo = None

    def get(self) -> MemoizedDistribution:
        if self._memo is None:
            from scipy.stats import beta as scipy_beta
            self._memo = MemoizedDistribution(scipy_beta)
        return self._memo

    def cdf(self, *args, **kwds):
        return self.get().cdf(*args, **kwds)

    def sf(self, *args, **kwds):
        return self.get().sf(*args, **kwds)

    def __getattr__(self, name):
        return getattr(self.get(), name)


beta = _LazyBeta()


# ------------------------------------------------------------------------------------------------
# base class and trace recorder
# ------------------------------------------------------------------------------------------------

class LLMDesignedMethod(ABC):
    """A complete test-time-scaling method: it probes, stops, prunes, votes and answers."""

    NAME = "unnamed_method"

    def __init__(self, config: Optional[Dict[str, Any]] = None):
        self.config = config or {}

    @abstractmethod
    def solve(self, question) -> Optional[str]:
        """Play one question through its question object; return the answer string or None."""

    def __call__(self, question) -> Optional[str]:
        return self.solve(question)

    def description(self) -> str:
        return f"{self.NAME} | config={self.config}" if self.config else self.NAME


class MethodTraceRecorder:
    """Step records of one ``solve`` (plain dicts, in order)."""

    def __init__(self):
        self.steps: List[Dict[str, Any]] = []

    def add_step(self, **fields):
        self.steps.append(dict(fields))

    def to_list(self) -> List[Dict[str, Any]]:
        return list(self.steps)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def _majority_answer(answers: List[str]) -> Optional[str]:
    """Most common answer (ties: the earliest first occurrence); None for an empty list."""
    if not answers:
        return None
    return Counter(answers).most_common(1)[0][0]


def _safe_probe_new(question):
    """``question.probe_new()`` or None when no branch is left."""
    try:
        return question.probe_new()
    except (IndexError, ValueError):
        return None


def _safe_probe_more(question, index):
    """``question.probe_more(index)`` or None when the branch cannot be advanced."""
    try:
        return question.probe_more(index)
    except (IndexError, ValueError):
        return None


def _safe_full_read(question):
    """``question.get_new_branch_final_answer()`` (a whole branch at its full cost) or None."""
    try:
        return question.get_new_branch_final_answer()
    except (IndexError, ValueError):
        return None


def _vote_stats(answers: List[str]):
    """``(winner, top1, top2, total)``: winner as :func:`_majority_answer`, its count, the
    second-highest count (0 with one distinct answer) and the number of votes."""
    if not answers:
        return None, 0, 0, 0
    ranked = Counter(answers).most_common(2)
    top2 = ranked[1][1] if len(ranked) > 1 else 0
    return ranked[0][0], ranked[0][1], top2, len(answers)


def _beta_majority_confidence(top1: int, top2: int) -> float:
    """``1 - BetaCDF(0.5; top1 + 1, top2 + 1)`` (scipy's value); 0.0 when ``top1 <= 0``."""
    if top1 <= 0:
        return 0.0
    return float(1 - beta.cdf(0.5, top1 + 1, top2 + 1))


def _weighted_vote(pairs: List[tuple]) -> Optional[str]:
    """Answer with the largest summed weight over ``(answer, weight)`` pairs (ties: the
    lexicographically larger answer); None for no pairs."""
    if not pairs:
        return None
    totals: Dict[str, float] = {}
    for answer, weight in pairs:
        totals[answer] = totals.get(answer, 0.0) + weight
    return max(totals, key=lambda a: (totals[a], a))


# ------------------------------------------------------------------------------------------------
# seed algorithms
# ------------------------------------------------------------------------------------------------

class _TracedMethod(LLMDesignedMethod):
    """Trace plumbing shared by the seed algorithms (``get_last_trace``, ``solve_with_trace``)."""

    def __init__(self, config):
        super().__init__(config)
        self.trace_recorder = MethodTraceRecorder()

    def _reset_trace(self) -> None:
        self.trace_recorder = MethodTraceRecorder()

    def _trace_step(self, *, event: str, goal: str = "", step_input: Any = None,
                    step_output: Any = None, state: Any = None, decision: str = "") -> None:
        self.trace_recorder.add_step(event=event, goal=goal, input=step_input, output=step_output,
                                     state=state, decision=decision)

    def get_last_trace(self) -> List[Dict[str, Any]]:
        return self.trace_recorder.to_list()

    def solve_with_trace(self, question) -> Dict[str, Any]:
        answer = self.solve(question)
        return {"answer": answer, "trace": self.get_last_trace()}

    def _finish(self, answer, reason: str):
        self._trace_step(event="finish", step_output={"answer": answer, "stop_reason": reason})
        return answer


class ASCMethod(_TracedMethod):
    """Adaptive-Consistency: full reads until the Beta-majority confidence of the leader exceeds
    ``threshold`` (at least two reads), at most ``max_samples``; else the majority."""

    NAME = "asc"

    def __init__(self, max_samples: int = 40, threshold: float = 0.95,
                 config: Optional[Dict[str, Any]] = None):
        super().__init__(dict({"max_samples": max_samples, "threshold": threshold}, **(config or {})))
        self.max_samples = max_samples
        self.threshold = threshold

    def solve(self, question) -> Optional[str]:
        self._reset_trace()
        answers: List[str] = []
        for _ in range(self.max_samples):
            answer = _safe_full_read(question)
            if answer is None:
                break
            answers.append(answer)
            if len(answers) < 2:
                continue
            winner, top1, top2, _ = _vote_stats(answers)
            confidence = 1 - beta.cdf(0.5, top1 + 1, top2 + 1)
            self._trace_step(event="confidence_check",
                             step_output={"winner": winner, "top1": top1, "top2": top2,
                                          "confidence": float(confidence)})
            if confidence > self.threshold:
                return self._finish(winner, "confidence_threshold")
        return self._finish(_majority_answer(answers), "max_samples_or_exhausted")


class ESCMethod(_TracedMethod):
    """Early-Stopping Self-Consistency: windows of ``window_size`` full reads
    (``max_samples // window_size`` windows); stop at the first unanimous window."""

    NAME = "esc"

    def __init__(self, max_samples: int = 32, window_size: int = 5,
                 config: Optional[Dict[str, Any]] = None):
        if window_size < 1:
            raise ValueError("window_size must be >= 1")
        if max_samples < 1:
            raise ValueError("max_samples must be >= 1")
        super().__init__(dict({"max_samples": max_samples, "window_size": window_size},
                              **(config or {})))
        self.max_samples = max_samples
        self.window_size = window_size

    def solve(self, question) -> Optional[str]:
        self._reset_trace()
        answers: List[str] = []
        for w in range(self.max_samples // self.window_size):
            window: List[str] = []
            for _ in range(self.window_size):
                answer = _safe_full_read(question)
                if answer is None:
                    break
                window.append(answer)
            if not window:
                continue
            answers.extend(window)
            self._trace_step(event="window_evaluate", step_input={"window": w},
                             step_output={"window_answers": list(window)})
            if len(set(window)) == 1:
                return self._finish(window[0], "window_unanimity")
        return self._finish(_majority_answer(answers), "max_windows_or_exhausted")


class Parallel_Probe(_TracedMethod):
    """Parallel-Probe: open ``num_chains`` branches, advance every live one by ``probe_burst``
    intervals per step, vote over the latest answers, prune branches off the majority for
    ``prune_patience`` steps after ``warm_up``, stop when the winner is stable for ``T`` steps or
    everything is finished or pruned. ``K``, ``eps_inter`` and ``eps_intra`` are accepted and
    unused, as in the reference."""

    NAME = "Parallel_Probe"

    def __init__(self, num_chains: int = 64, K: int = 5, T: int = 14, eps_inter: float = 5.0,
                 eps_intra: float = 5.0, prune_patience: int = 8, warm_up: int = 10,
                 probe_burst: int = 1, max_steps: int = 100,
                 config: Optional[Dict[str, Any]] = None):
        own = {"num_chains": num_chains, "K": K, "T": T, "eps_inter": eps_inter,
               "eps_intra": eps_intra, "prune_patience": prune_patience, "warm_up": warm_up,
               "probe_burst": probe_burst, "max_steps": max_steps}
        super().__init__(dict(own, **(config or {})))
        self.num_chains, self.K, self.T = num_chains, K, T
        self.eps_inter, self.eps_intra = eps_inter, eps_intra
        self.prune_patience, self.warm_up = prune_patience, warm_up
        self.probe_burst, self.max_steps = probe_burst, max_steps

    def solve(self, question) -> Optional[str]:
        self._reset_trace()
        # per branch: [position, finished, pruned, latest answer, off-track count]
        chains: List[list] = []
        for _ in range(self.num_chains):
            opened = _safe_probe_new(question)
            if opened is None:
                break
            answer, position, finished = opened
            chains.append([position, finished, False, answer, 0])
        if not chains:
            return self._finish(None, "no_branches")
        stable, prev = 0, None
        for step in range(self.max_steps):
            for ch in chains:
                if ch[2] or ch[1]:
                    continue
                latest = ch[3]
                for _ in range(self.probe_burst):
                    if ch[1]:
                        break
                    out = _safe_probe_more(question, ch[0])
                    if out is None:
                        ch[1] = True
                        break
                    latest, ch[1] = out
                ch[3] = latest
            active = [ch for ch in chains if not ch[2]]
            if not active:
                return self._finish(prev, "no_active")
            winner = _majority_answer([ch[3] for ch in active])
            if step >= self.warm_up and len(active) > 1:
                for ch in active:
                    if not ch[1]:
                        ch[4] = ch[4] + 1 if ch[3] != winner else 0
                newly = [ch for ch in active if not ch[1] and ch[4] >= self.prune_patience]
                for ch in newly:
                    ch[2] = True
                if newly:
                    active = [ch for ch in active if not ch[2]]
                    if not active:
                        return self._finish(prev, "no_active")
                    winner = _majority_answer([ch[3] for ch in active])
            stable = stable + 1 if winner == prev else 0
            prev = winner
            self._trace_step(event="step", step_input={"step": step},
                             step_output={"winner": winner, "stable": stable,
                                          "active": len(active)})
            if stable >= self.T:
                return self._finish(winner, "stable_majority_T")
            if all(ch[1] or ch[2] for ch in chains):
                return self._finish(winner, "all_branches_done")
        return self._finish(prev, "max_steps")
