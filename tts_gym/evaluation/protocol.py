"""The "reference" evaluation protocol of the AutoTTS release (``docs/replay-semantics.md``,
"Reference protocol").

For every seed ``s`` in ``0..99`` and every question ``q`` (store order), one episode replays the
question's branches in the order ``reference_permutation(s, N_q)`` (CPython's
``random.Random(s).shuffle``), the policy answers, and the answer is scored by exact string
equality with the gold answer (answer id == gold id; ``None`` is wrong). Totals are integers:

* ``sumC``  = correct episodes over all seeds and questions,
* ``sumTT`` = tokens charged over all seeds and questions,
* ``accuracy = round(100 * sumC / (S*Q), 2)`` (computed exactly with :class:`fractions.Fraction`,
  half-to-even like Python's ``round``; with ``S*Q = 3000`` there is never a tie),
* ``avg_tokens = sumTT / (S*Q)`` (Python's correctly rounded integer true division) and
  ``tokens_int = int(avg_tokens)``, the truncated integer the reference driver writes to its CSV.

``sumC`` / ``sumTT`` are the bit-exact parity targets; the reference's own float for the tokens
depends on its summation order in the last bits.

The compiled path (:func:`evaluate_compiled`, :func:`evaluate_grid_compiled`) plays the whole
protocol -- seeds x questions x parameter grid, several stores at once -- in one run of a
:mod:`tts_gym.policies.compiled` kernel (no per-episode Python). :class:`ProtocolBatch` packs stores and permutations once
so repeated evaluations (grids, benchmarks) skip that work.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Mapping, Sequence

import numpy as np

from tts_gym.core.kernels import ReplayData, pack_stores
from tts_gym.core.orders import reference_permutation
from tts_gym.evaluation.stats import exact_int_sum
from tts_gym.policies.common import normalize_params
from tts_gym.policies.registry import canonical
from tts_gym.data.store import ReplayStore

__all__ = [
    "REFERENCE_SEEDS", "ProtocolResult", "ProtocolBatch", "evaluate_compiled",
    "evaluate_grid_compiled", "exact_accuracy",
]

REFERENCE_SEEDS = tuple(range(100))
"""Seeds of the reference protocol."""


def exact_accuracy(sum_correct: int, episodes: int) -> float:
    """``round(100 * sum_correct / episodes, 2)`` computed exactly (half-to-even), as a float."""
    if episodes <= 0:
        return float("nan")
    return float(round(Fraction(100 * int(sum_correct), int(episodes)), 2))


@dataclass(frozen=True, eq=False)
class ProtocolResult:
    """Result of one policy configuration on one store under the reference protocol.

    Per-episode arrays are ``[S, Q]`` (seed-major, questions in store order): ``answers`` (answer
    id in the question's table, -1 = no answer), ``costs`` (tokens), ``correct``, ``steps`` (env
    actions, including the committing one)."""
    store: str
    policy: str
    params: dict
    seeds: tuple
    sumC: int
    sumTT: int
    answers: np.ndarray = field(repr=False)
    costs: np.ndarray = field(repr=False)
    correct: np.ndarray = field(repr=False)
    steps: np.ndarray = field(repr=False)
    backend: str = "compiled"

    @property
    def num_seeds(self) -> int:
        return len(self.seeds)

    @property
    def num_questions(self) -> int:
        return int(self.answers.shape[1])

    @property
    def episodes(self) -> int:
        return self.num_seeds * self.num_questions

    @property
    def accuracy(self) -> float:
        """Accuracy in percent, rounded to 2 decimals exactly as the reference prints it."""
        return exact_accuracy(self.sumC, self.episodes)

    @property
    def accuracy_exact(self) -> Fraction:
        return Fraction(100 * self.sumC, self.episodes)

    @property
    def avg_tokens(self) -> float:
        """Mean tokens per question (``sumTT / (S*Q)``, correctly rounded)."""
        return self.sumTT / self.episodes

    @property
    def tokens_int(self) -> int:
        """``int(avg_tokens)``: the truncated integer of the reference CSV."""
        return int(self.avg_tokens)

    def per_seed(self) -> tuple[np.ndarray, np.ndarray]:
        """``(C_s, TT_s)``: correct count and token total of each seed (the debug fingerprints)."""
        return self.correct.sum(axis=1).astype(np.int64), self.costs.sum(axis=1)

    def answer_strings(self, store: ReplayStore) -> list[list[str | None]]:
        """Committed answers as exact strings, ``[S][Q]``."""
        return [[store.answer(q, int(a)) for q, a in enumerate(row)] for row in self.answers]

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (no per-episode arrays)."""
        return {"store": self.store, "policy": self.policy, "params": dict(self.params),
                "backend": self.backend, "seeds": self.num_seeds,
                "questions": self.num_questions, "accuracy": self.accuracy,
                "avg_tokens": self.avg_tokens, "tokens_int": self.tokens_int,
                "sumC": int(self.sumC), "sumTT": int(self.sumTT)}


class ProtocolBatch:
    """Stores packed once, with the episodes of the reference protocol for ``seeds``.

    Episode order: store by store, seed-major, then questions in store order. ``questions`` /
    ``perms`` are the kernel inputs (built on first access); ``slices[i]`` the episode range of
    ``stores[i]``. :meth:`blocks` gives the same inputs in blocks of episodes, so an evaluation of
    many questions never holds every branch order at once (``S * Q * M`` int32: 2.6 GB for 100
    seeds x 100k questions x 64 positions)."""

    BLOCK_BYTES = 64 << 20   # branch orders per block, at most

    def __init__(self, stores: ReplayStore | Sequence[ReplayStore], seeds=REFERENCE_SEEDS):
        self.single = isinstance(stores, ReplayStore)
        self.stores: tuple[ReplayStore, ...] = (stores,) if self.single else tuple(stores)
        if not self.stores:
            raise ValueError("no store given")
        self.seeds = tuple(int(s) for s in seeds)
        if not self.seeds:
            raise ValueError("no seed given")
        self.data: ReplayData = pack_stores(self.stores)
        self.max_branches = int(self.data.num_probes.shape[1])
        S = len(self.seeds)
        slices, q0s = [], []
        q0 = e0 = 0
        for store in self.stores:
            Q = store.num_questions
            slices.append(slice(e0, e0 + S * Q))
            q0s.append(q0)
            q0 += Q
            e0 += S * Q
        self.slices = tuple(slices)
        self._q0 = tuple(q0s)
        self._perm_cache: dict[tuple[int, int], np.ndarray] = {}

    def _perm(self, seed: int, n: int) -> np.ndarray:
        key = (seed, n)
        hit = self._perm_cache.get(key)
        if hit is None:
            hit = self._perm_cache[key] = reference_permutation(seed, n)
        return hit

    def _fill(self, e0: int, e1: int) -> tuple[np.ndarray, np.ndarray]:
        """Kernel inputs ``(questions, perms)`` of the flat episodes ``e0 <= e < e1``."""
        M = self.max_branches
        qs = np.empty(e1 - e0, np.int32)
        pm = np.zeros((e1 - e0, M), np.int32)
        for store, sl, q0 in zip(self.stores, self.slices, self._q0):
            lo, hi = max(e0, sl.start), min(e1, sl.stop)
            if lo >= hi:
                continue
            Q = store.num_questions
            nbr = np.asarray(store.num_branches)
            for si in range((lo - sl.start) // Q, (hi - 1 - sl.start) // Q + 1):
                a = max(lo, sl.start + si * Q)
                b = min(hi, sl.start + (si + 1) * Q)
                j0, j1 = a - sl.start - si * Q, b - sl.start - si * Q
                rows = slice(a - e0, b - e0)
                qs[rows] = np.arange(q0 + j0, q0 + j1, dtype=np.int32)
                sub = nbr[j0:j1]
                block = pm[rows]
                for n in np.unique(sub):   # one permutation per distinct branch count
                    block[sub == n, :n] = self._perm(self.seeds[si], int(n))
        return qs, pm

    def blocks(self, max_episodes: int | None = None):
        """``(e0, e1, questions, perms, tasks)`` per block of at most ``max_episodes`` episodes
        (default: :attr:`BLOCK_BYTES` of branch orders); one block when everything fits."""
        E = self.num_episodes
        step = max_episodes or max(1, self.BLOCK_BYTES // (4 * self.max_branches))
        if E <= step:
            yield 0, E, self.questions, self.perms, self.episode_order
            return
        from tts_gym.policies.compiled import episode_order
        for e0 in range(0, E, step):
            e1 = min(E, e0 + step)
            qs, pm = self._fill(e0, e1)
            yield e0, e1, qs, pm, episode_order(qs)

    @functools.cached_property
    def _inputs(self) -> tuple[np.ndarray, np.ndarray]:
        return self._fill(0, self.num_episodes)

    @property
    def questions(self) -> np.ndarray:
        return self._inputs[0]

    @property
    def perms(self) -> np.ndarray:
        return self._inputs[1]

    @functools.cached_property
    def episode_order(self) -> np.ndarray:
        """The compiled kernels' play order of the episodes (:func:`episode_order`), sorted once."""
        from tts_gym.policies.compiled import episode_order
        return episode_order(self.questions)

    @property
    def num_episodes(self) -> int:
        return sum(sl.stop - sl.start for sl in self.slices)

    def results(self, policy: str, params_list: Sequence[Mapping[str, Any]],
                out: Mapping[str, np.ndarray], backend: str = "compiled") -> list[list[ProtocolResult]]:
        """Split kernel outputs ``[G, E]`` into ``[G][store]`` :class:`ProtocolResult` objects."""
        S = len(self.seeds)
        res = []
        for g, params in enumerate(params_list):
            row = []
            for store, sl in zip(self.stores, self.slices):
                Q = store.num_questions
                cut = lambda k: np.ascontiguousarray(out[k][g, sl].reshape(S, Q))  # noqa: E731
                correct, costs = cut("correct"), cut("cost")
                row.append(ProtocolResult(
                    store=store.name, policy=policy, params=dict(params), seeds=self.seeds,
                    sumC=int(correct.sum()), sumTT=exact_int_sum(costs),
                    answers=cut("answer"), costs=costs, correct=correct, steps=cut("steps"),
                    backend=backend))
            res.append(row)
        return res


def _as_batch(stores, seeds) -> ProtocolBatch:
    if isinstance(stores, ProtocolBatch):
        if seeds is not None and tuple(int(s) for s in seeds) != stores.seeds:
            raise ValueError("seeds differ from the ProtocolBatch's seeds")
        return stores
    return ProtocolBatch(stores, REFERENCE_SEEDS if seeds is None else seeds)


def evaluate_grid_compiled(stores, policy: str, params_grid: Sequence[Mapping[str, Any]],
                           seeds=None, *, workers: int | None = None,
                           conf_variant: str = "exact"):
    """Reference protocol for every parameter dict of ``params_grid`` in one compiled run.

    ``stores``: a :class:`ReplayStore`, a sequence of them, or a :class:`ProtocolBatch`.
    Returns ``[G]`` results, each a :class:`ProtocolResult` for a single store or a list (one per
    store, in order) for several. ``params`` of each result is the normalised parameter dict."""
    from tts_gym.policies.compiled import policy_param_rows, run_compiled

    batch = _as_batch(stores, seeds)
    normalized = [normalize_params(policy, p) for p in params_grid]
    name = canonical(policy)
    shown = [dict(params) for params in params_grid]
    for d, (kern, p) in zip(shown, normalized):   # full parameter set as used
        if name == "sc":
            d.clear()
            d.update({"max_samples": p["max_samples"]})
        else:
            d.update(p)
    kernel, rows = policy_param_rows(policy, list(params_grid))
    G, E = rows.shape[0], batch.num_episodes
    out = None
    for e0, e1, qs, perms, tasks in batch.blocks():   # one block unless the orders are large
        part = run_compiled(batch.data, kernel, [], qs, perms, max_branches=batch.max_branches,
                            workers=workers, conf_variant=conf_variant, policy_params=rows, tasks=tasks)
        if e1 - e0 == E:
            out = part
            break
        if out is None:
            out = {k: np.empty((G, E), v.dtype) for k, v in part.items()}
        for k in out:
            out[k][:, e0:e1] = part[k]
    res = batch.results(name, shown, out)
    return [r[0] if batch.single else r for r in res]


def evaluate_compiled(stores, policy: str, params: Mapping[str, Any] | None = None, seeds=None, *,
                      workers: int | None = None, conf_variant: str = "exact"):
    """Reference protocol for one configuration (compiled kernels).

    >>> r = evaluate_compiled(store, "asc", {"max_samples": 64, "threshold": 0.95})
    >>> r.accuracy, r.tokens_int, r.sumC, r.sumTT

    Returns a :class:`ProtocolResult` (or a list, one per store, when several stores are given)."""
    return evaluate_grid_compiled(stores, policy, [dict(params or {})], seeds, workers=workers,
                                  conf_variant=conf_variant)[0]
