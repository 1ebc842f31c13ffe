"""Brevity-weighted consensus (``bwc``): a width-depth controller whose vote favours short branches
and discounts answers that other branches revealed and then left.

Why: in the AutoTTS stores a branch's correctness falls with its length (on the AIME24 search
stores, the shortest quarter of a question's branches is right 1.1-2.2x as often as the longest
quarter), so a vote that weights each finished branch by ``(tokens / 1000) ** -alpha`` beats the
plain majority of the same branches. When the branches are advanced together, the short ones
finish first, and every still-running branch can only finish longer than it already is, so its
eventual weight is bounded by its current depth. And, for the same vote count, an answer that many
branches revealed at some probe (and so many left again) is more often wrong (on AIME24, a
conditional-logit selector over 16 full reads using the vote count, the brevity-weighted share and
the share of branches that ever revealed the answer gains 2.6 points over the majority on
held-apart questions). The controller stops when the leader's lead is larger than what the running
branches could still add (scaled by ``lead_slack``), or when the Beta-majority confidence of the
finished answers is high.

Episode (all decisions use only revealed answers, depths and charged tokens; never the gold):

1. open ``n_init`` branches (``BRANCH``; at most ``limit = min(max_width, M, N_q)``);
2. *evaluate* (round ``r = 0, 1, ...``): the pool is the finished branches in finishing order.
   Candidates: the pool's answers in first-occurrence order, then the live branches' latest answers
   not in the pool (by first live position). Per candidate ``total(a) = W(a) + live_weight * L(a)``:
   ``W(a)`` sums the brevity weights ``(ledger / 1000) ** -alpha`` of the pool branches answering
   ``a`` (pool order), ``L(a)`` the bounds ``(depth * pf / 1000) ** -alpha`` of the live branches
   whose latest answer is ``a`` (opening order). Among the candidates with ``total(a) > 0``, the
   leader ``a1`` maximises the score ``total(a) / S + score_count * log(1 + n(a)) - score_ever *
   ever(a) / opened`` (``S``: the sum of the totals in candidate order; ``n(a)``: pool count;
   ``ever(a)``: opened branches that revealed ``a`` at some point; ties: the earlier candidate);
   ``a1 = -1`` when no total is positive. ``W1`` is ``total(a1)``, ``W2`` the largest other total
   (0 if none); ``conf`` the Beta-majority confidence of the pool's unweighted top-two counts
   (:func:`tts_gym.core.voting.conf`; 0 for an empty pool); ``B`` the sum of the live bounds;
3. stop with ``a1`` when ``pool >= min_pool`` and (``W1 - W2 > lead_slack * B`` or
   ``conf >= conf_thresh``), or when ``r + 1 >= max_rounds``;
4. prune (zero-cost ``PRUNE``): with ``length_cap > 0`` and a non-empty pool, every live branch
   whose ledger exceeds ``length_cap`` times the pool's smallest ledger (opening order); then, with
   ``patience > 0`` and ``a1 >= 0``, each live branch's disagreement counter counts consecutive
   rounds with ``latest != a1`` (reset to 0 on agreement), and the branches with a counter
   ``>= patience`` are pruned, most-disagreeing first (stable), keeping ``keep_alive`` live;
5. widen: when ``r >= widen_after`` and ``conf < widen_conf``, open ``min(widen_burst, limit -
   cursor)`` branches; with no live branch left, open ``max(widen_burst, 1)`` (capped), and if
   none can be opened, stop with ``a1``;
6. one round: the prunes, then one ``CONTINUE`` per live branch in opening order
   (``burst_aligned`` of them for a branch whose latest answer is ``a1``; a finished branch's extra
   ones are skipped), then the widening ``BRANCH``\\ es; the round's finishing events join the pool
   in execution order; back to 2 with ``r + 1``.

The answer is ``a1``; with ``a1 = -1`` (nothing finished, ``live_weight = 0``) the majority of the
latest answers of the unpruned opened branches (opening order, first-occurrence ties).

Two implementations that agree episode for episode (``tests/test_brevity_consensus.py``):
:class:`BrevityConsensus`, a :class:`~tts_gym.policies.base.ScriptedPolicy` played through the env,
and the compiled :func:`rollout_bwc` (the :mod:`tts_gym.policies.compiled` driver protocol), which
:func:`tts_gym.policies.compiled.run_compiled` and :func:`tts_gym.evaluate` use for ``"bwc"``.

Parameters: :data:`PARAM_NAMES`. The shipped configurations (:data:`PRESETS`, the default
:data:`DEFAULTS`) are selected on the AIME24 search stores by ``agents/search_bwc.py`` and stored in
:data:`CONFIG_FILE` together with the record of the selection; ``preset=NAME`` picks one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numba as nb
import numpy as np

from tts_gym.core import kernels as _kernels
from tts_gym.core.actions import BRANCH, NUM_GLOBAL_ACTIONS
from tts_gym.core.atomics import fetch_add
from tts_gym.core.kernels import FINISHED, OK, EnvParams, is_correct, reset_episode
from tts_gym.core.numba_cache import bind_module_cache
from tts_gym.core.voting import conf, conf_lookup, vote_push
from tts_gym.policies.base import ScriptedPolicy
from tts_gym.policies.compiled import _abandon_disagreeing, _commit_action, _majority_unpruned

__all__ = ["NAME", "PARAM_NAMES", "INT_PARAMS", "DEFAULTS", "PRESETS", "DEFAULT_PRESET",
           "CONFIG_FILE", "normalize", "BrevityConsensus",
           "rollout_bwc", "positions_needed", "scratch_sizes", "label"]

NAME = "bwc"

PARAM_NAMES = (
    "n_init", "max_width", "widen_burst", "widen_after", "widen_conf", "alpha", "live_weight",
    "lead_slack", "conf_thresh", "min_pool", "patience", "keep_alive", "length_cap",
    "burst_aligned", "max_rounds", "score_count", "score_ever",
)
"""Column order of the compiled kernel's parameter rows."""

INT_PARAMS = frozenset({"n_init", "max_width", "widen_burst", "widen_after", "min_pool", "patience",
                        "keep_alive", "burst_aligned", "max_rounds"})

# lower bounds of the parameters (upper: max_width <= 128, widen_conf / conf_thresh free floats)
_MINIMA = {"n_init": 1, "max_width": 1, "widen_burst": 0, "widen_after": 0, "widen_conf": 0.0,
           "alpha": 0.0, "live_weight": 0.0, "lead_slack": 0.0, "conf_thresh": 0.0, "min_pool": 1,
           "patience": 0, "keep_alive": 0, "length_cap": 0.0, "burst_aligned": 1, "max_rounds": 1,
           "score_count": 0.0, "score_ever": 0.0}

CONFIG_FILE = Path(__file__).with_name("brevity_consensus.json")
"""The shipped configurations (written by ``agents/search_bwc.py --ship``): named ``presets`` and
the ``default`` one, with the record of how they were selected."""


def _load_config() -> tuple[str, dict[str, dict[str, Any]]]:
    data = json.loads(CONFIG_FILE.read_text())
    presets = {str(k): dict(v) for k, v in data["presets"].items()}
    return str(data["default"]), presets


DEFAULT_PRESET, PRESETS = _load_config()
DEFAULTS: dict[str, Any] = {k: PRESETS[DEFAULT_PRESET][k] for k in PARAM_NAMES}
"""Default configuration: the shipped default preset."""
_FRONT = sorted(k for k in PRESETS if k.startswith("front-"))
DEFAULT_SWEEP = {"preset": _FRONT} if _FRONT else None
"""The sweep ``Sweep("bwc")`` / ``tts-gym compare`` run: the shipped frontier presets."""

TOKEN_UNIT = 1000.0
"""Tokens are divided by this before the brevity weight ``x ** -alpha`` (only sets the scale)."""


def normalize(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults filled in, integers as ``int`` and floats as ``float``; a clear ``ValueError`` for an
    unknown name, a non-integer integer parameter or a value below its minimum.

    ``preset`` (a name of :data:`PRESETS`) replaces the defaults by that shipped configuration; the
    other parameters given override it. The result keeps ``preset`` when one was given."""
    params = dict(params or {})
    preset = params.pop("preset", None)
    if preset is not None:
        if str(preset) not in PRESETS:
            raise ValueError(f"unknown preset {preset!r} for policy {NAME!r}; known: {sorted(PRESETS)}")
        out = {k: PRESETS[str(preset)][k] for k in PARAM_NAMES}
    else:
        out = dict(DEFAULTS)
    for k, v in params.items():
        if k not in out:
            raise ValueError(f"unknown parameter {k!r} for policy {NAME!r}; known: "
                             f"{sorted(out) + ['preset']}")
        out[k] = v
    for k in PARAM_NAMES:
        v = out[k]
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {k!r} of {NAME!r} must be a number, got {v!r}") from None
        if not math.isfinite(f):
            raise ValueError(f"parameter {k!r} of {NAME!r} must be finite, got {v!r}")
        if k in INT_PARAMS:
            if f != int(f):
                raise ValueError(f"parameter {k!r} of {NAME!r} must be an integer, got {v!r}")
            f = int(f)
        if f < _MINIMA[k]:
            raise ValueError(f"parameter {k!r} of {NAME!r} must be >= {_MINIMA[k]}, got {v!r}")
        out[k] = f
    if preset is not None:
        out["preset"] = str(preset)
    return out


def label(params: Mapping[str, Any]) -> str:
    """Display label: ``BWC`` (the default preset) or ``BWC <preset>``, plus the parameters that
    differ from that preset."""
    p = normalize(params)
    preset = p.get("preset", DEFAULT_PRESET)
    base = PRESETS[preset]
    extra = [f"{k}={p[k]:g}" for k in PARAM_NAMES if p[k] != base[k]]
    head = "BWC" if preset == DEFAULT_PRESET else f"BWC {preset}"
    return head if not extra else f"{head} ({', '.join(extra)})"


# ---------------------------------------------------------------------------------------------
# Python implementation (through the env)
# ---------------------------------------------------------------------------------------------

class BrevityConsensus(ScriptedPolicy):
    """The brevity-weighted consensus controller played through env actions (module docstring).
    Same decisions as the compiled :func:`rollout_bwc`, episode for episode."""

    name = NAME

    def __init__(self, **params: Any) -> None:
        p = normalize(params)
        super().__init__(**p)
        self.p = p

    def script(self, view):
        p = self.p
        alpha, live_weight = p["alpha"], p["live_weight"]
        pf = view.probe_interval
        limit = min(p["max_width"], view.branch_limit)
        latest, depth, ledger = view.latest, view.depth, view.ledger
        st: list[int] = []       # per position: 0 live, 1 finished (pooled), 2 pruned
        dis: list[int] = []
        pool_w: dict[int, float] = {}        # answer -> summed brevity weight (pool order)
        pool_n: dict[int, int] = {}          # answer -> count (insertion = first occurrence)
        seen: list[set] = []                 # per position: answers it has revealed
        ever: dict[int, int] = {}            # answer -> positions that have revealed it
        npool = 0
        minfin = 0

        def saw(pos):
            a = int(latest[pos])
            if a not in seen[pos]:
                seen[pos].add(a)
                ever[a] = ever.get(a, 0) + 1

        def pool_add(pos):
            nonlocal npool, minfin
            a = int(latest[pos])
            led = int(ledger[pos])
            pool_w[a] = pool_w.get(a, 0.0) + (led / TOKEN_UNIT) ** (-alpha)
            pool_n[a] = pool_n.get(a, 0) + 1
            npool += 1
            if npool == 1 or led < minfin:
                minfin = led

        def bound(pos):
            return (int(depth[pos]) * pf / TOKEN_UNIT) ** (-alpha)

        def register():
            for pos in range(len(st), view.cursor):
                st.append(0)
                dis.append(0)
                seen.append(set())
                saw(pos)
                if view.flags[pos] & _FIN:
                    st[pos] = 1
                    pool_add(pos)

        for _ in range(min(p["n_init"], limit)):
            if (yield from self.open(view)) is None:
                break
        register()
        if not st:
            return None
        r = 0
        while True:
            # -- evaluate
            live_tot: dict[int, float] = {}
            B = 0.0
            for pos in range(len(st)):
                if st[pos] == 0:
                    b = bound(pos)
                    B += b
                    a = int(latest[pos])
                    live_tot[a] = live_tot.get(a, 0.0) + b
            cands = list(pool_n) + [a for a in live_tot if a not in pool_n]
            tot = [pool_w.get(a, 0.0) + live_weight * live_tot.get(a, 0.0) for a in cands]
            S = 0.0
            for v in tot:
                S += v
            a1, i1, best = -1, -1, 0.0
            for i, (a, v) in enumerate(zip(cands, tot)):
                if v > 0.0:
                    sc = (v / S + p["score_count"] * math.log(1 + pool_n.get(a, 0))
                          - p["score_ever"] * (ever[a] / len(st)))
                    if i1 < 0 or sc > best:
                        a1, i1, best = a, i, sc
            W1 = tot[i1] if i1 >= 0 else 0.0
            W2 = 0.0
            for i, v in enumerate(tot):
                if i != i1 and v > W2:
                    W2 = v
            counts = sorted(pool_n.values(), reverse=True)
            c = conf(counts[0], counts[1] if len(counts) > 1 else 0) if counts else 0.0
            if npool >= p["min_pool"] and (W1 - W2 > p["lead_slack"] * B or c >= p["conf_thresh"]):
                break
            if r + 1 >= p["max_rounds"]:
                break
            # -- prune
            prunes = []
            if p["length_cap"] > 0 and npool > 0:
                for pos in range(len(st)):
                    if st[pos] == 0 and int(ledger[pos]) > p["length_cap"] * minfin:
                        st[pos] = 2
                        prunes.append(pos)
            if p["patience"] > 0 and a1 >= 0:
                alive = 0
                cand = []
                for pos in range(len(st)):
                    if st[pos] != 0:
                        continue
                    dis[pos] = dis[pos] + 1 if int(latest[pos]) != a1 else 0
                    alive += 1
                    if dis[pos] >= p["patience"]:
                        cand.append(pos)
                cand.sort(key=lambda x: -dis[x])        # stable: ties keep opening order
                for pos in cand[:max(0, min(len(cand), alive - p["keep_alive"]))]:
                    st[pos] = 2
                    prunes.append(pos)
            n_live = sum(1 for s in st if s == 0)
            # -- widen
            room = limit - view.cursor
            k = 0
            if room > 0:
                if r >= p["widen_after"] and c < p["widen_conf"]:
                    k = min(p["widen_burst"], room)
                if n_live == 0 and k == 0:
                    k = min(max(p["widen_burst"], 1), room)
            if n_live == 0 and k == 0:
                break
            # -- one round
            for pos in prunes:
                yield from self.prune(view, pos)
            for pos in range(len(st)):
                if st[pos] != 0:
                    continue
                steps = p["burst_aligned"] if (a1 >= 0 and int(latest[pos]) == a1) else 1
                for _ in range(steps):
                    x = yield from self.advance(view, pos)
                    if x is None:
                        break
                    saw(pos)
                    if x[1]:
                        st[pos] = 1
                        pool_add(pos)
                        break
            for _ in range(k):
                if (yield from self.open(view)) is None:
                    break
            register()
            r += 1
        if a1 >= 0:
            return a1
        # nothing pooled and no live vote: majority of the unpruned branches' latest answers
        best, best_n, seen = None, 0, {}
        for pos in range(len(st)):
            if st[pos] != 2 and int(latest[pos]) >= 0:
                a = int(latest[pos])
                seen[a] = seen.get(a, 0) + 1
        for a, n in seen.items():
            if n > best_n:
                best, best_n = a, n
        return best


_FIN = int(FINISHED)
POLICY_CLASS = BrevityConsensus
"""The Python policy of this family (what ``make_policy("bwc", ...)`` builds)."""


# ---------------------------------------------------------------------------------------------
# compiled implementation (tts_gym.policies.compiled driver protocol)
# ---------------------------------------------------------------------------------------------

_JIT = dict(cache=True, nogil=True, _nrt=False)

# the env's step function, inlined at the single call site (same source as kernels.step_episode)
_step = nb.njit(nogil=True, _nrt=False, forceinline=True)(_kernels.step_episode.py_func)

# rows of ``iscratch`` (each of length >= max(A, 2M, K + 2) + 8), then M rows of revealed answers
_COUNTS, _FIRST, _MARK, _CAND, _DIS, _ST, _POOL, _LIVE, _NPW, _EVER, _NSEEN = range(11)
_ISCRATCH_ROWS = 11


@nb.njit(inline="always", **_JIT)
def _join_pool(state, e, p, alpha, W, counts, first, cand, mark, pool, st, npd, npool, pw1, pt1, pt2, minfin):
    """Finished position ``p`` joins the pool: its brevity weight goes to its answer's ``W``, a new
    answer becomes a candidate, the unweighted vote and the pool's smallest ledger follow. Returns
    the updated ``(npd, npool, pw1, pt1, pt2, minfin)``."""
    st[p] = 1
    a = state.latest[e, p]
    led = state.ledger[e, p]
    W[a] += (led / TOKEN_UNIT) ** (-alpha)
    if counts[a] == 0:
        cand[npd] = a
        npd += 1
        mark[a] = 1
    pw1, pt1, pt2 = vote_push(counts, first, a, npool, pw1, pt1, pt2)
    pool[npool] = p
    npool += 1
    if npool == 1 or led < minfin:
        minfin = led
    return npd, npool, pw1, pt1, pt2, minfin


@nb.njit(inline="always", **_JIT)
def _bound(pw, npw, d, pf, alpha):
    """``(d * pf / 1000) ** -alpha`` from the per-episode table ``pw`` (filled lazily up to
    ``npw[0]``; entries beyond the table are computed directly)."""
    if d < pw.shape[0]:
        while npw[0] <= d:
            k = npw[0]
            pw[k] = ((k * pf) / TOKEN_UNIT) ** (-alpha)
            npw[0] = k + 1
        return pw[d]
    return ((d * pf) / TOKEN_UNIT) ** (-alpha)


@nb.njit(**_JIT)
def episode_bwc(state, data, params, e, n_init, max_width, widen_burst, widen_after, widen_conf,
                alpha, live_weight, lead_slack, conf_thresh, min_pool, patience, keep_alive,
                length_cap, burst_aligned, max_rounds, score_count, score_ever, table, W, Wl, pw, npw,
                counts, first, mark, cand, dis, st, pool, live, ever, nseen, seen, acts):
    """One episode (slot ``e`` already reset). Scratch: per answer ``W``/``Wl`` (float) and
    ``counts``/``mark`` (int), zero on entry and exit, ``first``; per position ``dis``, ``st``,
    ``pool``, ``live``, ``nseen``; ``ever`` per answer (zero on entry and exit); ``seen`` [M, >= K + 2]
    (answers each position has revealed); ``cand`` (length >= 2M); ``pw`` float table, ``npw``
    int[1]; ``acts`` the action queue (length >= M * (burst_aligned + 2) + n_init + 8)."""
    M = params.max_branches
    q = state.question[e]
    pf = np.int64(data.probe_interval[q])
    limit = max_width
    if M < limit:
        limit = M
    if data.num_branches[q] < limit:
        limit = data.num_branches[q]
    npw[0] = 1
    pw[0] = 0.0
    npool = 0
    npd = 0                  # distinct pool answers: cand[:npd] in first-occurrence order
    pw1, pt1, pt2 = -1, 0, 0  # unweighted pool vote (winner unused), its top-two counts
    minfin = np.int64(0)
    nbr = 0
    r = 0
    a1 = -1
    c = 0.0
    done = False
    nq = 0
    k0 = n_init if n_init < limit else limit
    for _ in range(k0):
        acts[nq] = BRANCH
        nq += 1
    while True:
        # ---- apply the queued actions (the single env call site) ----
        for j in range(nq):
            act = acts[j]
            is_cont = act >= NUM_GLOBAL_ACTIONS and act < NUM_GLOBAL_ACTIONS + M
            old = state.latest[e, act - NUM_GLOBAL_ACTIONS] if is_cont else -1
            code, _c = _step(state, data, params, e, act)
            if is_cont:                                                           # CONTINUE(p)
                p = act - NUM_GLOBAL_ACTIONS
                if code == OK and state.latest[e, p] != old:
                    _saw(state, e, p, ever, nseen, seen)
                if st[p] == 0 and code == OK and (state.flags[e, p] & FINISHED) != 0:
                    npd, npool, pw1, pt1, pt2, minfin = _join_pool(state, e, p, alpha, W, counts, first, cand,
                                                                   mark, pool, st, npd, npool, pw1, pt1, pt2,
                                                                   minfin)
        if done:
            break
        # ---- register newly opened positions ----
        for p in range(nbr, state.cursor[e]):
            dis[p] = 0
            st[p] = 0
            nseen[p] = 0
            _saw(state, e, p, ever, nseen, seen)
            if (state.flags[e, p] & FINISHED) != 0:
                npd, npool, pw1, pt1, pt2, minfin = _join_pool(state, e, p, alpha, W, counts, first, cand, mark,
                                                               pool, st, npd, npool, pw1, pt1, pt2, minfin)
        nbr = state.cursor[e]
        stop = False
        if nbr == 0:
            a1 = -1
            stop = True
        if not stop:
            # ---- evaluate ----
            nc = npd
            B = 0.0
            for p in range(nbr):
                if st[p] == 0:
                    b = _bound(pw, npw, state.depth[e, p], pf, alpha)
                    B += b
                    a = state.latest[e, p]
                    Wl[a] += b
                    if mark[a] == 0:
                        mark[a] = 2
                        cand[nc] = a
                        nc += 1
            S = 0.0
            for i in range(nc):
                a = cand[i]
                S += W[a] + live_weight * Wl[a]
            a1 = -1
            i1 = -1
            best = 0.0
            for i in range(nc):
                a = cand[i]
                v = W[a] + live_weight * Wl[a]
                if v > 0.0:
                    sc = (v / S + score_count * math.log(1 + counts[a])
                          - score_ever * (ever[a] / nbr))
                    if i1 < 0 or sc > best:
                        a1 = a
                        i1 = i
                        best = sc
            W1 = 0.0
            W2 = 0.0
            for i in range(nc):
                a = cand[i]
                v = W[a] + live_weight * Wl[a]
                if i == i1:
                    W1 = v
                elif v > W2:
                    W2 = v
            for p in range(nbr):        # clear the live tally
                if st[p] == 0:
                    Wl[state.latest[e, p]] = 0.0
            for i in range(npd, nc):
                mark[cand[i]] = 0
            c = conf_lookup(table, pt1, pt2) if npool > 0 else 0.0
            if npool >= min_pool and (W1 - W2 > lead_slack * B or c >= conf_thresh):
                stop = True
            elif r + 1 >= max_rounds:
                stop = True
        if not stop:
            # ---- prune ----
            nq = 0
            if length_cap > 0 and npool > 0:
                for p in range(nbr):
                    if st[p] == 0 and state.ledger[e, p] > length_cap * minfin:
                        st[p] = 2
                        acts[nq] = NUM_GLOBAL_ACTIONS + 2 * M + p
                        nq += 1
            if patience > 0 and a1 >= 0:
                nq, _pruned = _abandon_disagreeing(state, e, nbr, a1, st, dis, patience, keep_alive, live, acts,
                                                   nq, M)
            n_live = 0
            for p in range(nbr):
                if st[p] == 0:
                    n_live += 1
            # ---- widen ----
            room = limit - nbr
            kw = 0
            if room > 0:
                if r >= widen_after and c < widen_conf:
                    kw = widen_burst if widen_burst < room else room
                if n_live == 0 and kw == 0:
                    kw = widen_burst if widen_burst > 1 else 1
                    if kw > room:
                        kw = room
            if n_live == 0 and kw == 0:
                stop = True
            else:
                # ---- one round: prunes (queued), CONTINUEs in opening order, BRANCHes ----
                for p in range(nbr):
                    if st[p] == 0:
                        steps = burst_aligned if (a1 >= 0 and state.latest[e, p] == a1) else 1
                        for _s in range(steps):
                            acts[nq] = NUM_GLOBAL_ACTIONS + p
                            nq += 1
                for _k in range(kw):
                    acts[nq] = BRANCH
                    nq += 1
                r += 1
                continue
        # ---- answer ----
        answer = a1
        if answer < 0:
            answer = _majority_unpruned(state, e, nbr, st, live, counts)
        for i in range(npd):
            a = cand[i]
            W[a] = 0.0
            counts[a] = 0
            mark[a] = 0
        for p in range(nbr):
            for i in range(nseen[p]):
                ever[seen[p, i]] = 0
        acts[0] = _commit_action(state, params, e, answer)
        nq = 1
        done = True


@nb.njit(inline="always", **_JIT)
def _saw(state, e, p, ever, nseen, seen):
    """Record position ``p``'s latest answer among the answers it has revealed (``ever[a]``: the
    positions that have revealed ``a``)."""
    a = state.latest[e, p]
    for i in range(nseen[p]):
        if seen[p, i] == a:
            return
    seen[p, nseen[p]] = a
    nseen[p] += 1
    ever[a] += 1


@nb.njit(**_JIT)
def rollout_bwc(data, state, slot, bounds, counter, table, questions, perms, tasks,
                policy_params, iscratch, fscratch, acts, out_answer, out_cost, out_correct,
                out_steps):
    """Driver of :func:`tts_gym.policies.compiled.run_compiled` (same signature as its rollouts):
    plays the tasks of the chunks this worker claims. ``fscratch`` is three equal parts
    (``W``, ``Wl``, the bound table), each at least as long as the largest answer table."""
    G = policy_params.shape[0]
    params = EnvParams(state.order.shape[1], True, 0, 0)   # reference semantics, folded
    L = fscratch.shape[0] // 3
    W = fscratch[:L]
    Wl = fscratch[L:2 * L]
    pw = fscratch[2 * L:3 * L]
    npw = iscratch[_NPW, :1]
    counts = iscratch[_COUNTS]
    first = iscratch[_FIRST]
    mark = iscratch[_MARK]
    cand = iscratch[_CAND]
    dis = iscratch[_DIS]
    st = iscratch[_ST]
    pool = iscratch[_POOL]
    live = iscratch[_LIVE]
    ever = iscratch[_EVER]
    nseen = iscratch[_NSEEN]
    seen = iscratch[_ISCRATCH_ROWS:]
    while True:
        k = fetch_add(counter, 0, np.int64(1))
        if k >= bounds.shape[0] - 1:
            break
        for t in range(bounds[k], bounds[k + 1]):
            i = t // G
            g = t - i * G
            j = tasks[i]
            reset_episode(state, slot, questions[j], perms[j])
            row = policy_params[g]
            episode_bwc(state, data, params, slot, int(row[0]), int(row[1]), int(row[2]),
                        int(row[3]), row[4], row[5], row[6], row[7], row[8], int(row[9]),
                        int(row[10]), int(row[11]), row[12], int(row[13]), int(row[14]), row[15],
                        row[16], table, W, Wl, pw, npw, counts, first, mark, cand, dis, st, pool, live,
                        ever, nseen, seen, acts)
            out_answer[g, j] = state.answer[slot]
            out_cost[g, j] = state.cost[slot]
            out_correct[g, j] = is_correct(state, data, slot)
            out_steps[g, j] = state.steps[slot]


# ---------------------------------------------------------------------------------------------
# sizing hooks read by tts_gym.policies.compiled.run_compiled
# ---------------------------------------------------------------------------------------------

def positions_needed(policy_params: np.ndarray) -> int:
    """The most positions any row can open: ``max_width``."""
    pp = np.asarray(policy_params, np.float64)
    return 1 if pp.shape[0] == 0 else max(1, int(pp[:, 1].max()))


def scratch_sizes(policy_params: np.ndarray, M: int, num_answers: int, max_probes: int
                  ) -> tuple[int, int, int]:
    """``(iscratch rows, fscratch length, action-queue length)`` for :func:`rollout_bwc` (the queue
    is also at least ``max_probes + 2`` long: the iscratch rows are as wide as the queue)."""
    pp = np.asarray(policy_params, np.float64)
    burst = max(1, int(pp[:, 13].max())) if pp.shape[0] else 1
    n_init = max(1, int(pp[:, 0].max())) if pp.shape[0] else 1
    queue = max(M * (burst + 2) + max(n_init, M), max_probes + 2) + 8
    L = max(num_answers, max_probes + 2, 2 * M) + 8
    return _ISCRATCH_ROWS + M, 3 * L, queue


bind_module_cache(globals())   # cache entries also keyed on the compiled layer's sources
