"""Oracle bounds: the accuracy the replay data allows at a given token cost, computed from the store
arrays alone (no policy), on the same episodes as the policies they bound.

Everything here is *gold-aware* (an oracle), so none of it is available to a policy.

(a) Oracle selection -- "correct whenever the gold answer is among the answers revealed so far".

* :func:`oracle_reveal_costs` / :func:`oracle_curve` -- the **adaptive** oracle, the bound used in
  plots and in the acceptance test. Per episode, ``c_e`` = the cheapest token cost of any legal
  action sequence that reveals the gold answer: over positions ``p`` (opened in order, so positions
  ``0..p-1`` must be opened first, at least ``min(pf, T_b)`` each -- ``T_b`` if the branch has no
  probes), plus the cheapest reveal at ``p``: ``k * pf`` if the gold is probe ``k`` (first
  occurrence), or ``T_b`` if it is the final answer (a full read). ``c_e = -1`` when the gold is
  revealed nowhere in the positions allowed. With an average budget of ``X`` tokens per question, the
  oracle solves the cheapest episodes first: ``accuracy(X) = max{k/E : c_(1) + ... + c_(k) <= X*E}``.
  **This bounds every policy**: a policy answering episodes ``C`` correctly must have revealed the
  gold in each, so its total cost is at least ``sum_{e in C} c_e``, hence the oracle reaches its
  accuracy at no more tokens (``tests/test_oracle.py`` checks it on all 12 shared stores).
* :func:`schedule_oracle` -- **fixed reveal schedules**: width-first opening of ``n`` branches, each
  probed to depth ``d`` (``d > K_b`` reads the branch to its end), or SC@n full reads (pass@n). One
  point per ``(n, d)``; their Pareto front is a (weaker) non-adaptive upper curve.

(b) Vote oracle -- :func:`sc_vote_oracle`, :func:`vote_oracle_from_trace`: for a fixed exploration
(SC@n's full reads, or any recorded policy trace), the cheapest cost at which the plurality vote over
the answers revealed so far names the gold, i.e. what an oracle *stopping rule* on top of that
exploration could achieve. Episodes where the vote never names the gold are wrong and are charged the
exploration's full cost.

The loops over episodes are numba-compiled.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from tts_gym.evaluation.frontier import Frontier, pareto_frontier
from tts_gym.evaluation.protocols import EpisodeSet, make_episodes
from tts_gym.core.voting import vote_push

DEFAULT_WIDTHS = (1, 2, 4, 8, 16, 32, 64)
DEFAULT_DEPTHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 81)


# ---------------------------------------------------------------------------------------------
# per-branch precomputation
# ---------------------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True)
def _branch_tables(probe_ids, num_probes, branch_tokens, final_ids, num_branches, probe_interval,
                   gold_ids):
    """Per (q, b): first probe depth of the gold (0: none), whether the final is gold, open cost."""
    Q, N = num_probes.shape
    gold_depth = np.zeros((Q, N), np.int32)
    final_gold = np.zeros((Q, N), np.bool_)
    open_cost = np.zeros((Q, N), np.int64)
    for q in range(Q):
        g = gold_ids[q]
        pf = np.int64(probe_interval[q])
        for b in range(num_branches[q]):
            k = num_probes[q, b]
            t = branch_tokens[q, b]
            open_cost[q, b] = t if (k == 0 or t < pf) else pf
            if g < 0:
                continue
            for d in range(k):
                if probe_ids[q, b, d] == g:
                    gold_depth[q, b] = d + 1
                    break
            final_gold[q, b] = final_ids[q, b] == g
    return gold_depth, final_gold, open_cost


def _tables(store):
    return _branch_tables(store.probe_ids, store.num_probes, store.branch_tokens, store.final_ids,
                          store.num_branches, store.probe_interval, store.gold_ids)


def _limit(store, episodes: EpisodeSet) -> int:
    n = store.max_branches
    return n if episodes.max_positions is None else min(n, int(episodes.max_positions))


# ---------------------------------------------------------------------------------------------
# (a) adaptive oracle selection
# ---------------------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True)
def _reveal_costs(questions, orders, limit, num_branches, probe_interval, branch_tokens,
                  gold_depth, final_gold, open_cost, out):
    E = questions.shape[0]
    for e in range(E):
        q = questions[e]
        pf = np.int64(probe_interval[q])
        n = num_branches[q] if num_branches[q] < limit else limit
        best = np.int64(-1)
        prefix = np.int64(0)
        for p in range(n):
            if best >= 0 and prefix >= best:
                break
            b = orders[e, p]
            r = np.int64(-1)
            d = gold_depth[q, b]
            if d > 0:
                r = d * pf
            if final_gold[q, b]:
                t = branch_tokens[q, b]
                if r < 0 or t < r:
                    r = t
            if r >= 0 and (best < 0 or prefix + r < best):
                best = prefix + r
            prefix += open_cost[q, b]
        out[e] = best


def oracle_reveal_costs(store, episodes=None) -> np.ndarray:
    """``c_e`` per episode, int64 ``[R, J]`` (``-1``: the gold cannot be revealed); see the module doc."""
    ep = make_episodes(store, "reference") if episodes is None else make_episodes(store, episodes)
    gold_depth, final_gold, open_cost = _tables(store)
    qs, orders = ep.flat()
    out = np.empty(qs.shape[0], np.int64)
    _reveal_costs(qs, orders, _limit(store, ep), store.num_branches, store.probe_interval,
                  store.branch_tokens, gold_depth, final_gold, open_cost, out)
    return out.reshape(ep.shape)


@dataclass(frozen=True)
class OracleCurve:
    """An oracle accuracy-token curve: ``tokens`` per question (increasing), ``accuracy`` in percent;
    ``sum_tokens[i]`` / ``correct[i]`` are the exact integer totals behind point ``i``."""
    label: str
    tokens: np.ndarray
    accuracy: np.ndarray
    sum_tokens: np.ndarray
    correct: np.ndarray
    num_episodes: int

    def frontier(self) -> Frontier:
        return pareto_frontier(self.tokens, self.accuracy, self.label)

    def accuracy_at(self, tokens_per_question) -> np.ndarray:
        """Best oracle accuracy with at most this many tokens per question (step function)."""
        return self.frontier().step(tokens_per_question)

    def bounds(self, sum_correct: int, sum_tokens: int) -> bool:
        """Exact integer check that a policy with these totals on the same episodes lies on or
        below this curve (its correct count is reachable within its token total)."""
        k = np.searchsorted(self.sum_tokens, sum_tokens, side="right") - 1
        return k >= 0 and int(self.correct[k]) >= int(sum_correct)


def oracle_curve(store=None, episodes=None, costs=None, label: str = "oracle") -> OracleCurve:
    """The adaptive oracle-selection curve: point ``k`` solves the ``k`` cheapest episodes.

    Give ``store`` (and optionally ``episodes``, default the reference protocol) or precomputed
    ``costs`` from :func:`oracle_reveal_costs`.
    """
    if costs is None:
        costs = oracle_reveal_costs(store, episodes)
    c = np.asarray(costs, np.int64).ravel()
    E = c.size
    solvable = np.sort(c[c >= 0])
    cum = np.concatenate([[0], np.cumsum(solvable)]).astype(np.int64)
    k = np.arange(cum.size, dtype=np.int64)
    return OracleCurve(label, cum / E, 100.0 * k / E, cum, k, E)


# ---------------------------------------------------------------------------------------------
# (a') fixed reveal schedules
# ---------------------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True)
def _schedule(questions, orders, widths, depths, num_branches, num_probes, probe_interval,
              branch_tokens, gold_depth, final_gold, probe_correct, probe_cost, sc_correct, sc_cost):
    """Accumulate per (n, d) the number of episodes with the gold revealed and the total cost."""
    E = questions.shape[0]
    W = widths.shape[0]
    D = depths.shape[0]
    nmax = widths[W - 1]
    for e in range(E):
        q = questions[e]
        pf = np.int64(probe_interval[q])
        nq = num_branches[q]
        # running, over positions p < n: min reveal depth of the gold, cost per depth, sc state
        best_depth = np.int64(1 << 40)
        cost_d = np.zeros(D, np.int64)
        sc_hit = False
        sc_tok = np.int64(0)
        w = 0
        for p in range(nmax):
            if p < nq:
                b = orders[e, p]
                k = num_probes[q, b]
                t = branch_tokens[q, b]
                gd = gold_depth[q, b]
                if gd > 0 and gd < best_depth:
                    best_depth = gd
                if final_gold[q, b] and k + 1 < best_depth:
                    best_depth = k + 1        # revealed by the finishing step at depth K_b + 1
                for j in range(D):
                    d = depths[j]
                    if d <= k:
                        cost_d[j] += d * pf
                    else:
                        rem = t - k * pf
                        cost_d[j] += k * pf + (rem if rem > 0 else 0)
                sc_tok += t
                if final_gold[q, b]:
                    sc_hit = True
            while w < W and widths[w] == p + 1:
                for j in range(D):
                    if best_depth <= depths[j]:
                        probe_correct[w, j] += 1
                    probe_cost[w, j] += cost_d[j]
                if sc_hit:
                    sc_correct[w] += 1
                sc_cost[w] += sc_tok
                w += 1


@dataclass(frozen=True)
class ScheduleOracle:
    """Fixed-schedule oracle points: ``probe_*[i, j]`` for width ``widths[i]`` x depth ``depths[j]``
    (width-first opening, each branch probed to depth ``d``), ``sc_*[i]`` for SC@``widths[i]`` full
    reads (pass@n). Accuracies in percent, tokens per question."""
    widths: np.ndarray
    depths: np.ndarray
    probe_accuracy: np.ndarray
    probe_tokens: np.ndarray
    sc_accuracy: np.ndarray
    sc_tokens: np.ndarray
    num_episodes: int

    def sc_frontier(self, label: str = "oracle pass@n") -> Frontier:
        return pareto_frontier(self.sc_tokens, self.sc_accuracy, label)

    def frontier(self, label: str = "oracle (fixed schedules)") -> Frontier:
        return pareto_frontier(np.concatenate([self.probe_tokens.ravel(), self.sc_tokens]),
                               np.concatenate([self.probe_accuracy.ravel(), self.sc_accuracy]), label)


def schedule_oracle(store, episodes=None, widths=DEFAULT_WIDTHS, depths=DEFAULT_DEPTHS) -> ScheduleOracle:
    """Oracle selection under fixed reveal schedules (see the module docstring)."""
    ep = make_episodes(store, "reference") if episodes is None else make_episodes(store, episodes)
    lim = _limit(store, ep)
    widths = np.unique(np.asarray([w for w in widths if 1 <= w <= lim], np.int64))
    depths = np.unique(np.asarray([d for d in depths if d >= 1], np.int64))
    if widths.size == 0 or depths.size == 0:
        raise ValueError("need at least one width in 1..max positions and one depth >= 1")
    gold_depth, final_gold, _ = _tables(store)
    qs, orders = ep.flat()
    W, D = widths.size, depths.size
    pc, pt = np.zeros((W, D), np.int64), np.zeros((W, D), np.int64)
    sc, st = np.zeros(W, np.int64), np.zeros(W, np.int64)
    _schedule(qs, orders, widths, depths, store.num_branches, store.num_probes, store.probe_interval,
              store.branch_tokens, gold_depth, final_gold, pc, pt, sc, st)
    E = qs.shape[0]
    return ScheduleOracle(widths, depths, 100.0 * pc / E, pt / E, 100.0 * sc / E, st / E, E)


# ---------------------------------------------------------------------------------------------
# (b) vote oracle
# ---------------------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True)
def _sc_vote(questions, orders, n, num_branches, branch_tokens, final_ids, gold_ids, num_answers,
             first_cost, full_cost, first_m):
    amax = 1
    for q in range(num_answers.shape[0]):
        if num_answers[q] > amax:
            amax = num_answers[q]
    counts = np.zeros(amax, np.int64)
    first = np.zeros(amax, np.int64)
    E = questions.shape[0]
    for e in range(E):
        q = questions[e]
        g = gold_ids[q]
        m = num_branches[q] if num_branches[q] < n else n
        w, t1, t2 = -1, 0, 0
        tok = np.int64(0)
        first_cost[e] = -1
        first_m[e] = 0
        for p in range(m):
            b = orders[e, p]
            a = final_ids[q, b]
            tok += branch_tokens[q, b]
            w, t1, t2 = vote_push(counts, first, a, p, w, t1, t2)
            if first_cost[e] < 0 and g >= 0 and w == g:
                first_cost[e] = tok
                first_m[e] = p + 1
        full_cost[e] = tok
        for p in range(m):
            counts[final_ids[q, orders[e, p]]] = 0


@dataclass(frozen=True)
class VoteOracle:
    """Per-episode results of a vote oracle (``[R, J]`` arrays) and their summary.

    ``first_cost``: cheapest cost at which the vote names the gold (-1: never);
    ``full_cost``: cost of the whole exploration. The oracle stops at ``first_cost`` when it exists
    and otherwise pays ``full_cost`` (and is wrong)."""
    label: str
    first_cost: np.ndarray
    full_cost: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        return self.first_cost >= 0

    @property
    def cost(self) -> np.ndarray:
        return np.where(self.first_cost >= 0, self.first_cost, self.full_cost)

    @property
    def accuracy(self) -> float:
        return 100.0 * int(self.correct.sum()) / self.correct.size

    @property
    def avg_tokens(self) -> float:
        return int(self.cost.sum()) / self.cost.size


def sc_vote_oracle(store, n: int = 64, episodes=None) -> VoteOracle:
    """Vote oracle over SC@n's full reads: the cheapest prefix ``m <= n`` whose plurality (first-
    occurrence tie-breaking) is the gold; cost = tokens of those ``m`` full reads."""
    ep = make_episodes(store, "reference") if episodes is None else make_episodes(store, episodes)
    qs, orders = ep.flat()
    E = qs.shape[0]
    first, full, m = np.empty(E, np.int64), np.empty(E, np.int64), np.empty(E, np.int64)
    num_answers = np.asarray(store.answer_tables.sizes(), np.int32)
    _sc_vote(qs, orders, min(int(n), _limit(store, ep)), store.num_branches, store.branch_tokens,
             store.final_ids, store.gold_ids, num_answers, first, full, m)
    return VoteOracle(f"vote oracle SC@{n}", first.reshape(ep.shape), full.reshape(ep.shape))


def vote_oracle_from_trace(trace, label: str = "vote oracle") -> VoteOracle:
    """Vote oracle over a recorded policy's reveals (:class:`tts_gym.evaluation.evaluate.Traces`):
    the first step whose plurality of latest revealed answers (the env's ``ANSWER`` aggregator) is
    the gold, at the cost so far; otherwise the policy's full cost."""
    first = trace.first_correct_vote_cost()
    return VoteOracle(label, first, trace.final_cost())


# cache entries also keyed on the compiled layer's sources (see tts_gym.core.numba_cache)
from tts_gym.core.numba_cache import bind_module_cache  # noqa: E402

bind_module_cache(globals())
