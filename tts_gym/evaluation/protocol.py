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
from tts_gym.policies.common import normalize_params
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
    ``perms`` are the kernel inputs; ``slices[i]`` the episode range of ``stores[i]``."""

    def __init__(self, stores: ReplayStore | Sequence[ReplayStore], seeds=REFERENCE_SEEDS):
        self.single = isinstance(stores, ReplayStore)
        self.stores: tuple[ReplayStore, ...] = (stores,) if self.single else tuple(stores)
        if not self.stores:
            raise ValueError("no store given")
        self.seeds = tuple(int(s) for s in seeds)
        self.data: ReplayData = pack_stores(self.stores)
        self.max_branches = int(self.data.probe_ids.shape[1])
        S, M = len(self.seeds), self.max_branches
        questions, perms, slices = [], [], []
        q0 = e0 = 0
        for store in self.stores:
            Q = store.num_questions
            nbr = np.asarray(store.num_branches)
            qs = np.tile(np.arange(q0, q0 + Q, dtype=np.int32), S)
            pm = np.zeros((S, Q, M), np.int32)
            for si, s in enumerate(self.seeds):
                for n in np.unique(nbr):   # one permutation per distinct branch count
                    pm[si, nbr == n, :n] = reference_permutation(s, int(n))
            questions.append(qs)
            perms.append(pm.reshape(S * Q, M))
            slices.append(slice(e0, e0 + S * Q))
            q0 += Q
            e0 += S * Q
        self.questions = np.ascontiguousarray(np.concatenate(questions), dtype=np.int32)
        self.perms = np.ascontiguousarray(np.concatenate(perms), dtype=np.int32)
        self.slices = tuple(slices)

    @functools.cached_property
    def episode_order(self) -> np.ndarray:
        """The compiled kernels' play order of the episodes (:func:`episode_order`), sorted once."""
        from tts_gym.policies.compiled import episode_order
        return episode_order(self.questions)

    @property
    def num_episodes(self) -> int:
        return int(self.questions.shape[0])

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
                    sumC=int(correct.sum()), sumTT=int(costs.sum(dtype=np.int64)),
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
    from tts_gym.policies.compiled import run_compiled

    batch = _as_batch(stores, seeds)
    normalized = [normalize_params(policy, p) for p in params_grid]
    name = str(policy).strip().lower().replace("-", "_")
    shown = [dict(params) for params in params_grid]
    for d, (kern, p) in zip(shown, normalized):   # full parameter set as used
        if name == "sc":
            d.clear()
            d.update({"max_samples": p["max_samples"]})
        else:
            d.update(p)
    out = run_compiled(batch.data, policy, list(params_grid), batch.questions, batch.perms,
                       max_branches=batch.max_branches, workers=workers, conf_variant=conf_variant,
                       tasks=batch.episode_order)
    res = batch.results("parallel_probe" if name == "pp" else name, shown, out)
    return [r[0] if batch.single else r for r in res]


def evaluate_compiled(stores, policy: str, params: Mapping[str, Any] | None = None, seeds=None, *,
                      workers: int | None = None, conf_variant: str = "exact"):
    """Reference protocol for one configuration (compiled kernels).

    >>> r = evaluate_compiled(store, "asc", {"max_samples": 64, "threshold": 0.95})
    >>> r.accuracy, r.tokens_int, r.sumC, r.sumTT

    Returns a :class:`ProtocolResult` (or a list, one per store, when several stores are given)."""
    return evaluate_grid_compiled(stores, policy, [dict(params or {})], seeds, workers=workers,
                                  conf_variant=conf_variant)[0]
