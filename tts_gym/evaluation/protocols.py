"""Evaluation protocols: which episodes a policy is run on.

An episode is a (question, branch order) pair of one store; a protocol produces ``R`` *replicates*,
each a list of episodes -- one per question, or resampled questions for the bootstrap. Every policy
of a comparison runs on the **same** episodes, so paired comparisons
(:func:`tts_gym.evaluation.stats.paired_difference`) are meaningful.

==================  =============================================================================
protocol            episodes
==================  =============================================================================
``"reference"``     the AutoTTS evaluation (parity, ``docs/replay-semantics.md``, "Reference protocol"):
                    replicate ``s`` for seed ``s`` in ``seeds`` (default 0..99); every question
                    once, in store order, its branches in the order of CPython's
                    ``random.Random(s).shuffle`` (:func:`tts_gym.core.orders.reference_permutation`)
``"subsample"``     the paper's *stated* protocol: replicate ``r`` (``r < replicates``, default 64)
                    draws, per question, ``n`` of its ``N`` branches uniformly without replacement
                    in uniformly random order (numpy ``default_rng([seed, r, q])``); at most ``n``
                    positions can be opened (``max_positions = n``)
``"bootstrap"``     bootstrap over questions: replicate ``r`` draws ``Q`` questions with
                    replacement (``default_rng([seed, r])``) and runs them with the branch order of
                    reference seed ``r``; the spread over replicates measures question-sampling
                    uncertainty (wide with 30 questions)
``"branch-bootstrap"``  a seeded version of the reference's ``bootstrap_iter`` option (outside
                    parity): iteration ``b`` replaces each question's branch list by ``N`` draws with
                    replacement (``default_rng([seed, b, q])``), then runs the seed loop over it;
                    replicates are grouped by iteration for the intervals
==================  =============================================================================

Each replicate's draws depend only on ``(seed, replicate, question)``, so any subset of replicates
(a shard of a distributed sweep) is generated identically on its own (:meth:`EpisodeSet.take`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from tts_gym.core.orders import reference_permutation

PROTOCOLS = ("reference", "subsample", "bootstrap", "branch-bootstrap")
REFERENCE_SEEDS = tuple(range(100))


@dataclass(frozen=True, eq=False)
class EpisodeSet:
    """Episodes of one store under one protocol.

    ``questions[r, j]`` is the store question of episode ``j`` of replicate ``r`` and
    ``orders[r, j, p]`` the stored branch at position ``p`` (the first ``N_q`` entries are meaningful).
    ``groups[r]`` groups replicates for the intervals (equal to ``r`` except for the branch
    bootstrap). ``max_positions`` caps the positions a policy may open (``None``: the store's ``N``).
    """
    protocol: str
    questions: np.ndarray          # int32 [R, J]
    orders: np.ndarray             # int32 [R, J, N]
    replicate_ids: np.ndarray      # int64 [R]  seed / replicate number of each replicate
    groups: np.ndarray             # int64 [R]
    max_positions: int | None = None
    params: dict = field(default_factory=dict)

    @property
    def num_replicates(self) -> int:
        return int(self.questions.shape[0])

    @property
    def episodes_per_replicate(self) -> int:
        return int(self.questions.shape[1])

    @property
    def num_episodes(self) -> int:
        return int(self.questions.size)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.questions.shape)

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """``(questions [E], orders [E, N])`` with ``E = R * J`` (replicate-major); computed once."""
        flat = self.__dict__.get("_flat")
        if flat is None:
            R, J = self.questions.shape
            flat = (np.ascontiguousarray(self.questions.reshape(R * J), dtype=np.int32),
                    np.ascontiguousarray(self.orders.reshape(R * J, self.orders.shape[2]),
                                         dtype=np.int32))
            self.__dict__["_flat"] = flat
        return flat

    def play_order(self) -> np.ndarray:
        """The order the compiled runner plays :meth:`flat`'s episodes in (question by question, see
        :func:`tts_gym.policies.compiled.episode_order`); sorted once."""
        order = self.__dict__.get("_play_order")
        if order is None:
            from tts_gym.policies.compiled import episode_order
            order = self.__dict__["_play_order"] = episode_order(self.flat()[0])
        return order

    def blocks(self, max_episodes: int, width: int | None = None):
        """``(e0, e1, questions [e1 - e0], orders [e1 - e0, width])`` over the flat episodes
        (replicate-major, as :meth:`flat`) in contiguous blocks of at most ``max_episodes``: the
        orders of a large evaluation are materialised one block at a time (``orders`` may be a
        broadcast view, see :func:`reference`). ``width``: leading order columns kept."""
        R, J = self.questions.shape
        N = self.orders.shape[2] if width is None else int(width)
        E = R * J
        if E <= max_episodes:
            qs, orders = self.flat()
            yield 0, E, qs, np.ascontiguousarray(orders[:, :N])
            return
        step = max(1, int(max_episodes))
        for e0 in range(0, E, step):
            e1 = min(E, e0 + step)
            qs = np.empty(e1 - e0, np.int32)
            orders = np.empty((e1 - e0, N), np.int32)
            for r in range(e0 // J, (e1 - 1) // J + 1):
                j0, j1 = max(e0 - r * J, 0), min(e1 - r * J, J)
                qs[r * J + j0 - e0:r * J + j1 - e0] = self.questions[r, j0:j1]
                orders[r * J + j0 - e0:r * J + j1 - e0] = self.orders[r, j0:j1, :N]
            yield e0, e1, qs, orders

    def take(self, replicates) -> "EpisodeSet":
        """The sub-set of replicates ``replicates`` (indices into this set), e.g. one shard (this set
        itself when ``replicates`` is all of them in order)."""
        r = np.asarray(replicates, dtype=np.int64)
        if r.shape == (self.num_replicates,) and (r == np.arange(self.num_replicates)).all():
            return self
        if self.orders.ndim == 3 and self.orders.strides[1] == 0:   # one order per replicate, broadcast
            R, J, N = self.orders.shape
            orders = np.broadcast_to(self.orders[r, :1, :], (r.size, J, N))
        else:
            orders = self.orders[r]
        return EpisodeSet(self.protocol, self.questions[r], orders, self.replicate_ids[r],
                          self.groups[r], self.max_positions, dict(self.params))

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.protocol}({extra})" if extra else self.protocol

    def __repr__(self) -> str:
        return (f"EpisodeSet({self.describe()}, replicates={self.num_replicates}, "
                f"episodes/replicate={self.episodes_per_replicate})")


def _num_branches(store) -> np.ndarray:
    return np.asarray(store.num_branches, dtype=np.int64)


def _reference_orders(store, seeds) -> np.ndarray:
    """``[S, Q, N]`` reference branch orders: one permutation per (seed, distinct branch count); when
    every question has the store's ``N`` branches, a read-only broadcast of one order per seed (no
    ``S * Q * N`` array: 2.6 GB for 100k questions x 64)."""
    nb = _num_branches(store)
    Q, N = store.num_questions, store.max_branches
    if Q and bool((nb == N).all()):
        per_seed = np.zeros((len(seeds), 1, N), np.int32)
        for r, s in enumerate(seeds):
            per_seed[r, 0] = reference_permutation(int(s), N)
        return np.broadcast_to(per_seed, (len(seeds), Q, N))
    orders = np.zeros((len(seeds), Q, N), np.int32)
    for n in np.unique(nb):
        n = int(n)
        qs = np.flatnonzero(nb == n)
        table = np.stack([reference_permutation(int(s), n) for s in seeds]) if seeds else \
            np.zeros((0, n), np.int32)
        orders[:, qs, :n] = table[:, None, :]
    return orders


def reference(store, seeds=None) -> EpisodeSet:
    """The AutoTTS protocol (parity): seeds 0..99, every question, reference shuffles."""
    seeds = REFERENCE_SEEDS if seeds is None else tuple(int(s) for s in seeds)
    R, Q = len(seeds), store.num_questions
    questions = np.broadcast_to(np.arange(Q, dtype=np.int32), (R, Q)).copy()
    ids = np.asarray(seeds, np.int64)
    return EpisodeSet("reference", questions, _reference_orders(store, seeds), ids, np.arange(R),
                      None, {"seeds": _seed_label(seeds)})


def subsample(store, n: int = 64, replicates: int = 64, seed: int = 0,
              replicate_ids=None) -> EpisodeSet:
    """``replicates`` seeded draws of ``n`` branches per question (without replacement, random order)."""
    n = int(n)
    if n < 1:
        raise ValueError("subsample size n must be >= 1")
    nb = _num_branches(store)
    if n > int(nb.min()):
        raise ValueError(f"subsample size n={n} exceeds the smallest question's {int(nb.min())} branches")
    ids = np.arange(int(replicates)) if replicate_ids is None else np.asarray(replicate_ids, np.int64)
    Q, N = store.num_questions, store.max_branches
    orders = np.zeros((ids.size, Q, N), np.int32)
    for i, r in enumerate(ids):
        for q in range(Q):
            rng = np.random.default_rng([int(seed), int(r), q])
            orders[i, q, :n] = rng.choice(int(nb[q]), size=n, replace=False)
    questions = np.broadcast_to(np.arange(Q, dtype=np.int32), (ids.size, Q)).copy()
    return EpisodeSet("subsample", questions, orders, ids.astype(np.int64), ids.astype(np.int64).copy(),
                      n, {"n": n, "replicates": int(ids.size), "seed": int(seed)})


def question_bootstrap(store, replicates: int = 100, seed: int = 0, replicate_ids=None) -> EpisodeSet:
    """Replicate ``r``: ``Q`` questions drawn with replacement, branch orders of reference seed ``r``."""
    ids = np.arange(int(replicates)) if replicate_ids is None else np.asarray(replicate_ids, np.int64)
    Q, N = store.num_questions, store.max_branches
    ref = _reference_orders(store, [int(r) for r in ids])
    questions = np.zeros((ids.size, Q), np.int32)
    orders = np.zeros((ids.size, Q, N), np.int32)
    for i, r in enumerate(ids):
        qs = np.random.default_rng([int(seed), int(r)]).integers(0, Q, size=Q)
        questions[i] = qs
        orders[i] = ref[i, qs]
    return EpisodeSet("bootstrap", questions, orders, ids.astype(np.int64), ids.astype(np.int64).copy(),
                      None, {"replicates": int(ids.size), "seed": int(seed)})


def branch_bootstrap(store, iterations: int = 10, seeds=None, seed: int = 0) -> EpisodeSet:
    """Seeded reference ``bootstrap_iter``: per iteration, resample each question's branches with
    replacement, then the reference seed loop; replicates grouped by iteration."""
    seeds = REFERENCE_SEEDS if seeds is None else tuple(int(s) for s in seeds)
    nb = _num_branches(store)
    Q, N = store.num_questions, store.max_branches
    ref = _reference_orders(store, seeds)                       # [S, Q, N]
    B, S = int(iterations), len(seeds)
    orders = np.zeros((B * S, Q, N), np.int32)
    for b in range(B):
        for q in range(Q):
            n = int(nb[q])
            draws = np.random.default_rng([int(seed), b, q]).integers(0, n, size=n).astype(np.int32)
            orders[b * S:(b + 1) * S, q, :n] = draws[ref[:, q, :n]]
    questions = np.broadcast_to(np.arange(Q, dtype=np.int32), (B * S, Q)).copy()
    ids = np.tile(np.asarray(seeds, np.int64), B)
    groups = np.repeat(np.arange(B, dtype=np.int64), S)
    return EpisodeSet("branch-bootstrap", questions, orders, ids, groups, None,
                      {"iterations": B, "seeds": _seed_label(seeds), "seed": int(seed)})


def _seed_label(seeds) -> str:
    seeds = list(seeds)
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    return ",".join(map(str, seeds[:5])) + (",..." if len(seeds) > 5 else "")


_EPISODE_CACHE: dict = {}
_EPISODE_CACHE_SIZE = 64
_EPISODE_CACHE_LOCK = threading.Lock()


def _option_key(kwargs: dict) -> tuple:
    out = []
    for k in sorted(kwargs):
        v = kwargs[k]
        if v is not None and not isinstance(v, (int, float, str)):
            v = tuple(int(x) for x in v)
        out.append((k, v))
    return tuple(out)


def make_episodes(store, protocol="reference", **kwargs) -> EpisodeSet:
    """Episodes of ``store`` under ``protocol`` (a name of :data:`PROTOCOLS` or an :class:`EpisodeSet`).

    Keyword arguments go to the protocol: ``seeds`` (reference, branch-bootstrap), ``n``,
    ``replicates``, ``seed`` (subsample, bootstrap), ``iterations`` (branch-bootstrap).

    Episode sets depend only on the store and the options, so the last few are kept and returned
    again for the same store object and options (treat them as read-only).
    """
    if isinstance(protocol, EpisodeSet):
        if kwargs:
            raise ValueError(f"protocol options {sorted(kwargs)} given with a ready EpisodeSet")
        return protocol
    p = str(protocol).lower().replace("_", "-")
    if p == "question-bootstrap":
        p = "bootstrap"
    options = {"reference": ("seeds",), "subsample": ("n", "replicates", "seed"),
               "bootstrap": ("replicates", "seed"), "branch-bootstrap": ("iterations", "seeds", "seed")}
    if p not in options:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    unknown = sorted(set(kwargs) - set(options[p]))
    if unknown:
        raise ValueError(f"protocol {p!r} takes {', '.join(options[p])}; got unexpected {', '.join(unknown)}")
    build = {"reference": reference, "subsample": subsample, "bootstrap": question_bootstrap,
             "branch-bootstrap": branch_bootstrap}[p]
    try:
        key = (id(store), p, _option_key(kwargs))
    except (TypeError, ValueError):   # unhashable or malformed options: the builder reports them
        return build(store, **kwargs)
    with _EPISODE_CACHE_LOCK:
        hit = _EPISODE_CACHE.get(key)
    if hit is not None and hit[0] is store:
        return hit[1]
    episodes = build(store, **kwargs)
    with _EPISODE_CACHE_LOCK:
        if len(_EPISODE_CACHE) >= _EPISODE_CACHE_SIZE:
            _EPISODE_CACHE.pop(next(iter(_EPISODE_CACHE)))
        _EPISODE_CACHE[key] = (store, episodes)
    return episodes
