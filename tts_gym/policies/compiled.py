"""Compiled (numba) baselines: SC/ASC, ESC, Parallel-Probe and CMC as policies acting **only**
through :func:`tts_gym.core.kernels.step_episode`.

Each baseline is the reference pseudo-code of ``specs/replay-semantics.md`` section 5 written over
env actions (fused mode, ``probe_cost = 0``, where they are exactly the reference operations):

=====================  ========================================================================
reference operation    env action
=====================  ========================================================================
``probe_new`` (open)   ``BRANCH``
``probe_more(i)``      ``CONTINUE(i)``
full read              ``SAMPLE``
prune / abandon        ``PRUNE(i)`` (zero-cost bookkeeping; masks later ``CONTINUE(i)``)
return ``x``           ``ANSWER_WITH(p)`` for the lowest opened position ``p`` whose latest
                       revealed answer is ``x`` (as :func:`tts_gym.policies.base.answer_action`);
                       ``ABSTAIN`` for ``None``
=====================  ========================================================================

The safe wrappers' ``None`` is a non-zero result code of ``step_episode`` (``ERR_NO_BRANCH_LEFT``,
``ERR_FINISHED``, ...). Costs, answers and correctness are therefore the env's own: a policy reads
revealed answers, flags and the cursor from the :class:`~tts_gym.core.kernels.EnvState` and never touches
the gold answer (scoring is :func:`tts_gym.core.kernels.is_correct`). The action sequence (prunes
included) is the one the Python policies of :mod:`tts_gym.policies.baselines` emit, so ``steps``
match episode for episode.

Structure
---------
Each policy is a small state machine with **one** env call site: the policy queues its next
action(s) (a sample, a round of CONTINUEs preceded by that round's PRUNEs, the widening BRANCHes,
the final ANSWER_WITH), one loop applies them through ``step_episode`` in order, and the policy
reads the effects back from the state. The action sequence is exactly the reference's, so
``steps`` equals the Python policies' count.

Performance notes
-----------------
* ``step_episode`` is called through ``_step``, the *same Python function*
  (``kernels.step_episode.py_func``) compiled with ``forceinline``: an out-of-line call passing the
  ``EnvState`` / ``ReplayData`` NamedTuples marshals ~190 machine words (~50-100 ns per call);
  inlined at the single call site, a step costs ~35-40 ns of CPU here, most of the per-step time.
* No NRT (``_nrt=False``): nothing allocates inside the kernels; per-worker scratch (answer counts,
  per-position lists, the action queue) is allocated once per call by :func:`run_compiled`.
* A whole evaluation -- every (parameter row, episode) pair -- is a few compiled calls.
  Episodes are played question by question (all seeds and parameter rows of a question while its
  replay data is in cache), in contiguous chunks that the workers claim through an atomic counter
  (:mod:`tts_gym.core.atomics`) inside **one** compiled call per worker -- per-chunk calls from Python
  would pay ~10 us of argument unboxing each with the GIL held, which serialised small jobs on
  many cores. A worker plays in its own state slot (slots padded apart against false sharing).
  Workers are Python threads running the ``nogil`` kernels; results do not depend on the worker
  count or the schedule. The
  env runs with ``min(M, positions_needed)`` positions (less state to reset; identical results).
* The on-disk cache of these functions is keyed on the sources they inline
  (``kernels.py``, ``actions.py``, ``voting.py``, ``policies/common.py``, this file): numba alone
  only stamps this file and could serve stale code after a kernel change.

Kernel signature::

    rollout_<policy>(data, params, state, slot, bounds, counter, table, questions, perms, tasks,
                     policy_params, iscratch, fscratch, acts,
                     out_answer, out_cost, out_correct, out_steps)

``data``/``params``: :class:`~tts_gym.core.kernels.ReplayData` / :class:`~tts_gym.core.kernels.EnvParams` (only
``max_branches`` is read: the kernels always run the reference semantics -- fused reveals,
``probe_cost = 0``, no budget -- as compile-time constants, which lets LLVM drop those branches);
``state``: an :class:`~tts_gym.core.kernels.EnvState`, this worker's episode slot ``slot``; ``bounds``
int64 ``[C + 1]``: chunk ``k`` is the tasks ``bounds[k] <= t < bounds[k + 1]``, task ``t = i * G + g``
being episode ``tasks[i]`` with parameter row ``g``; ``counter`` int64 ``[1]``: the next unclaimed
chunk, shared by the workers (each claims chunks with an atomic fetch-and-add until none are left); ``table``: :func:`tts_gym.core.voting.conf_table`; ``questions`` int32 ``[E]`` / ``perms``
int32 ``[E, >=M]``; ``tasks`` int32 ``[E]``: the order to play the episodes in; ``policy_params`` float64 ``[G, P]``
(columns :data:`POLICY_PARAM_NAMES`); scratch ``iscratch`` int32 ``[9, >= max(A, M, len(acts))]``
(``A`` = largest answer table), ``fscratch`` float64 ``[>= max T_ema]``, ``acts`` int64 (the action
queue); outputs ``[G, E]``.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

import numba as nb
import numpy as np

from tts_gym.core import kernels as _kernels
from tts_gym.core.atomics import fetch_add
from tts_gym.core.numba_cache import bind_module_cache
from tts_gym.core.actions import ABSTAIN, BRANCH, NUM_GLOBAL_ACTIONS, SAMPLE
from tts_gym.core.kernels import (FINISHED, OK, EnvParams, ReplayData, is_correct, make_state,
                             reset_episode)
from tts_gym.policies.common import (CMC_MAX_BRANCH, CMC_MAX_ROUNDS, CMC_SCHEDULE_KEYS,
                                     cmc_schedule, normalize_params)
from tts_gym.core.voting import conf_lookup, conf_table, vote_push

__all__ = [
    "POLICY_PARAM_NAMES", "KERNELS", "policy_param_rows", "run_compiled", "reference_env_params",
    "default_workers", "rollout_asc", "rollout_esc", "rollout_parallel_probe", "rollout_cmc",
    "episode_asc", "episode_esc", "episode_parallel_probe", "episode_cmc",
]

# column layout of ``policy_params`` per compiled kernel (sc is asc with threshold 1.01)
POLICY_PARAM_NAMES: dict[str, tuple[str, ...]] = {
    "asc": ("max_samples", "threshold"),
    "esc": ("max_samples", "window_size"),
    "parallel_probe": ("num_chains", "T", "prune_patience", "warm_up", "probe_burst", "max_steps"),
    "cmc": CMC_SCHEDULE_KEYS,
}
KERNELS = tuple(POLICY_PARAM_NAMES)

_SLOT_STRIDE = 16  # episode slots of different workers are this far apart (no false sharing)
# Dynamic scheduling granularity of run_compiled: chunks of tasks claimed through an atomic counter
# (tts_gym.core.atomics) inside one compiled call per worker, so a chunk costs ~nothing to hand out
# (a compiled call from Python costs ~10 us of argument unboxing with the GIL held).
_CHUNKS_PER_WORKER = 64

# the env's step function, inlined at each call site (same source: kernels.step_episode)
_step = nb.njit(nogil=True, _nrt=False, forceinline=True)(_kernels.step_episode.py_func)

_JIT = dict(cache=True, nogil=True, _nrt=False)

# scratch rows of ``iscratch``
_COUNTS, _FIRST, _COUNTS2, _FIN, _AUX, _LIST, _POOL, _DISAGREE, _PS = range(9)
_ISCRATCH_ROWS = 9

# phases of the single-call-site state machines
_PH_DONE = 0
_PH_OPEN = 1
_PH_ROUND = 2
_PH_SPAWN = 3


# ---------------------------------------------------------------------------------------------
# helpers (no env calls)
# ---------------------------------------------------------------------------------------------

@nb.njit(inline="always", **_JIT)
def _commit_action(state, params, e, answer):
    """The action returning ``answer`` (-1 = ``None``): ANSWER_WITH(lowest opened position whose
    latest revealed answer is ``answer``), else ABSTAIN."""
    if answer >= 0:
        for p in range(state.cursor[e]):
            if state.latest[e, p] == answer:
                return np.int64(NUM_GLOBAL_ACTIONS + 3 * params.max_branches + p)
    return np.int64(ABSTAIN)


@nb.njit(inline="always", **_JIT)
def _is_terminal(params, action):
    return action == ABSTAIN or action >= NUM_GLOBAL_ACTIONS + 3 * params.max_branches


@nb.njit(**_JIT)
def _majority_latest(state, e, plist, n, counts):
    """Majority of ``latest`` over positions ``plist[:n]`` in that order (-1 if none), ties to the
    earliest first occurrence: count everything, then the first element reaching the top count
    wins (branch-light). ``counts`` is zero on entry and exit."""
    for i in range(n):
        a = state.latest[e, plist[i]]
        if a >= 0:
            counts[a] += 1
    w = -1
    best = 0
    for i in range(n):
        a = state.latest[e, plist[i]]
        if a >= 0:
            c = counts[a]
            if c > best:
                best = c
                w = a
    for i in range(n):
        a = state.latest[e, plist[i]]
        if a >= 0:
            counts[a] = 0
    return w


@nb.njit(**_JIT)
def _sort_desc_stable(idx, n, key):
    """Stable insertion sort of ``idx[:n]`` by ``key[idx]`` descending (ties keep their order)."""
    for i in range(1, n):
        v = idx[i]
        k = key[v]
        j = i - 1
        while j >= 0 and key[idx[j]] < k:
            idx[j + 1] = idx[j]
            j -= 1
        idx[j + 1] = v


@nb.njit(**_JIT)
def _clear_counts(state, e, counts):
    for p in range(state.cursor[e]):
        a = state.latest[e, p]
        if a >= 0:
            counts[a] = 0


# ---------------------------------------------------------------------------------------------
# per-episode policies (episode slot ``e`` already reset). Each has exactly one env call site:
# the policy decides its next action(s), the loop applies them through ``_step``.
# ---------------------------------------------------------------------------------------------

@nb.njit(inline="always", **_JIT)
def episode_asc(state, data, params, e, max_samples, threshold, table, counts, first):
    """ASC (spec 5.2); SC@N is ``threshold >= 1``. ``counts``/``first``: per-answer scratch,
    ``counts`` zero on entry and exit."""
    w, t1, t2 = -1, 0, 0
    n = 0
    action = np.int64(SAMPLE) if max_samples > 0 else np.int64(ABSTAIN)
    while True:
        code, _c = _step(state, data, params, e, action)
        if _is_terminal(params, action):
            break
        stop = code != OK
        if not stop:
            w, t1, t2 = vote_push(counts, first, state.latest[e, state.cursor[e] - 1], n, w, t1,
                                  t2)
            n += 1
            stop = n >= max_samples or (n >= 2 and conf_lookup(table, t1, t2) > threshold)
        if stop:
            _clear_counts(state, e, counts)
            action = _commit_action(state, params, e, w)
        else:
            action = np.int64(SAMPLE)


@nb.njit(inline="always", **_JIT)
def episode_esc(state, data, params, e, max_samples, window_size, counts, first):
    """ESC (spec 5.3). ``counts``/``first``: per-answer scratch (``counts`` zero on entry/exit)."""
    w, t1, t2 = -1, 0, 0
    n = 0
    n_windows = max_samples // window_size if window_size > 0 else 0
    wi = 0
    got = 0
    start = state.cursor[e]
    action = np.int64(SAMPLE) if n_windows > 0 else np.int64(ABSTAIN)
    while True:
        code, _c = _step(state, data, params, e, action)
        if _is_terminal(params, action):
            break
        if code == OK:
            got += 1
            if got < window_size:
                continue                 # action stays SAMPLE
        # the window is complete (or the branches ran out)
        answer = -2                      # -2: go on with the next window
        if got > 0:
            a0 = state.latest[e, start]
            unanimous = True
            for p in range(start, start + got):
                a = state.latest[e, p]
                if a != a0:
                    unanimous = False
                w, t1, t2 = vote_push(counts, first, a, n, w, t1, t2)
                n += 1
            if unanimous:
                answer = a0
        wi += 1
        if answer == -2 and wi >= n_windows:
            answer = w
        if answer != -2:
            _clear_counts(state, e, counts)
            action = _commit_action(state, params, e, answer)
        else:
            start = state.cursor[e]
            got = 0
            action = np.int64(SAMPLE)


@nb.njit(inline="always", **_JIT)
def _vote_active(state, e, active, nact, counts):
    """Majority of the active branches' latest answers given their ``counts``: the first branch in
    opening order whose answer has the top count (= earliest first occurrence among the tied)."""
    w = -1
    best = 0
    for i in range(nact):
        a = state.latest[e, active[i]]
        if counts[a] > best:
            best = counts[a]
            w = a
    return w


@nb.njit(inline="always", **_JIT)
def episode_parallel_probe(state, data, params, e, num_chains, T, prune_patience, warm_up,
                           probe_burst, max_steps, counts, fin, off, active, acts):
    """Parallel-Probe (spec 5.4). ``counts``: per-answer scratch (zero on entry/exit);
    ``fin``/``off``/``active``: per-position scratch (length ``>= M``); ``acts`` int64:
    the action queue (length ``>= M * (probe_burst + 1) + num_chains + 1``).

    A round is one batch: the previous round's prunes, then ``probe_burst`` CONTINUEs per live
    branch in opening order (a finished branch's extra CONTINUEs are refused by the env, which is
    the reference's ``if br.finished: break``). ``counts`` is the vote over the active branches'
    latest answers, kept up to date as answers change and branches are pruned."""
    M = params.max_branches
    nq = 0
    for _ in range(num_chains):
        acts[nq] = BRANCH
        nq += 1
    phase = _PH_OPEN
    nact = 0
    stable = 0
    prev = -1
    step = 0
    while True:
        for j in range(nq):
            a = acts[j]
            if a >= NUM_GLOBAL_ACTIONS and a < NUM_GLOBAL_ACTIONS + M:   # CONTINUE(p)
                p = a - NUM_GLOBAL_ACTIONS
                old = state.latest[e, p]
                code, _c = _step(state, data, params, e, a)
                new = state.latest[e, p]
                if new != old:
                    counts[old] -= 1
                    counts[new] += 1
                if code != OK or (state.flags[e, p] & FINISHED) != 0:
                    fin[p] = 1
            else:
                code, _c = _step(state, data, params, e, a)
        if phase == _PH_DONE:
            break
        nq = 0
        answer = -2                                   # -2: play another round
        if phase == _PH_OPEN:
            nact = state.cursor[e]
            for p in range(nact):
                fin[p] = 1 if (state.flags[e, p] & FINISHED) != 0 else 0
                off[p] = 0
                active[p] = p
                counts[state.latest[e, p]] += 1
            phase = _PH_ROUND
            if nact == 0 or max_steps <= 0:
                answer = -1
            else:
                for i in range(nact):
                    if fin[i] == 0:
                        for _b in range(probe_burst):
                            acts[nq] = NUM_GLOBAL_ACTIONS + i
                            nq += 1
                continue                              # round 0: forward pass first
        else:
            w = _vote_active(state, e, active, nact, counts)
            # off-track update and pruning (same condition for both); the recount after pruning
            if step >= warm_up and nact > 1:
                newly = False
                for i in range(nact):
                    p = active[i]
                    if fin[p] == 0:
                        off[p] = off[p] + 1 if state.latest[e, p] != w else 0
                        if off[p] >= prune_patience:
                            acts[nq] = NUM_GLOBAL_ACTIONS + 2 * M + p
                            nq += 1
                            counts[state.latest[e, p]] -= 1
                            newly = True
                if newly:
                    m = 0
                    for i in range(nact):
                        p = active[i]
                        if fin[p] != 0 or off[p] < prune_patience:
                            active[m] = p
                            m += 1
                    nact = m
                    if nact == 0:
                        answer = prev
                    else:
                        w = _vote_active(state, e, active, nact, counts)
            if answer == -2:
                # termination: stability, then everything finished or pruned, then max_steps
                stable = stable + 1 if w == prev else 0
                prev = w
                if stable >= T:
                    answer = w
                else:
                    n_prunes = nq
                    live = 0
                    for i in range(nact):
                        p = active[i]
                        if fin[p] == 0:
                            live += 1
                            for _b in range(probe_burst):
                                acts[nq] = NUM_GLOBAL_ACTIONS + p
                                nq += 1
                    if live == 0:
                        answer = w
                    else:
                        step += 1
                        if step >= max_steps:
                            answer = prev
                    if answer != -2:
                        nq = n_prunes
        if answer != -2:
            for i in range(nact):
                counts[state.latest[e, active[i]]] = 0
            acts[nq] = _commit_action(state, params, e, answer)
            nq += 1
            phase = _PH_DONE


@nb.njit(inline="always", **_JIT)
def _pool_conf(table, ps):
    if ps[0] < 0:
        return 0.0
    return conf_lookup(table, ps[1], ps[2])


@nb.njit(inline="always", **_JIT)
def _pool_push(counts, first, pool, ps, a):
    w, t1, t2 = vote_push(counts, first, a, ps[3], ps[0], ps[1], ps[2])
    pool[ps[3]] = a
    ps[0] = w
    ps[1] = t1
    ps[2] = t2
    ps[3] += 1


@nb.njit(inline="always", **_JIT)
def episode_cmc(state, data, params, e, n_init, max_branch_use, warm_up, abandon_patience, T_ema,
                ema_alpha, conf_thresh, delta_slack, burst_aligned, widen_burst, trend_thresh,
                min_complete, table, counts, first, counts2, flags, pcount, disagree, live, pool,
                ps, hist, acts):
    """CMC, the Confidence Momentum Controller (spec 5.5), with an explicit schedule
    (:func:`tts_gym.policies.common.cmc_schedule`).

    Scratch: per answer ``counts``/``first`` (pool vote) and ``counts2`` (fallback vote), ``counts*``
    zero on entry/exit; per position (length ``>= M``): ``flags`` (1 finished, 2 abandoned),
    ``pcount``, ``disagree``, ``live``, ``pool``; ``ps`` int[4] (pool winner, top1, top2, size);
    ``hist`` float64 (``>= T_ema``); action queue ``acts`` int64 (length
    ``>= M * (burst_aligned + 1) + max(n_init, widen_burst) + 1``).

    Batches: the spawns (initial, or the widening decided at the end of the previous round), then
    each round's abandonments followed by its CONTINUEs in probe-count order."""
    M = params.max_branches
    ps[0] = -1
    ps[1] = 0
    ps[2] = 0
    ps[3] = 0
    spawned = 0
    nbr = 0
    ema = 0.0
    nh = 0
    r = 0
    w0 = -1
    warm = False
    nq = 0
    for _ in range(n_init):
        acts[nq] = BRANCH
        nq += 1
    phase = _PH_SPAWN
    first_spawn = True
    n_live = 0                           # branches neither finished nor abandoned
    while True:
        for j in range(nq):
            a = acts[j]
            code, _c = _step(state, data, params, e, a)
            if a >= NUM_GLOBAL_ACTIONS and a < NUM_GLOBAL_ACTIONS + M:       # CONTINUE(p)
                p = a - NUM_GLOBAL_ACTIONS
                if flags[p] == 0:        # (a refused extra burst step on a finished one: no-op)
                    if code == OK:
                        pcount[p] += 1
                        if (state.flags[e, p] & FINISHED) == 0:
                            continue
                    flags[p] = 1         # finished now (finishing events in execution order)
                    n_live -= 1
                    if state.latest[e, p] >= 0:
                        _pool_push(counts, first, pool, ps, state.latest[e, p])
        if phase == _PH_DONE:
            break
        answer = -2                      # -2: go on; -3: leave the loop (final vote)
        if phase == _PH_SPAWN:
            # register the spawned branches (opening order); a refused BRANCH opens nothing
            for p in range(nbr, state.cursor[e]):
                spawned += 1
                pcount[p] = 0
                disagree[p] = 0
                flags[p] = 0
                if (state.flags[e, p] & FINISHED) != 0:
                    flags[p] = 1
                    _pool_push(counts, first, pool, ps, state.latest[e, p])
                else:
                    n_live += 1
            nbr = state.cursor[e]
            if first_spawn and spawned == 0:
                answer = -1
            elif r >= CMC_MAX_ROUNDS:
                answer = -3
            else:
                # ---- round r: decisions before probing ----
                w0 = ps[0]
                c = _pool_conf(table, ps)
                warm = r >= warm_up
                ema = (1.0 - ema_alpha) * ema + ema_alpha * c          # (1) pre-probe EMA
                if nh < T_ema:
                    hist[nh] = ema
                    nh += 1
                else:
                    for i in range(T_ema - 1):
                        hist[i] = hist[i + 1]
                    hist[T_ema - 1] = ema
                nq = 0
                if warm and w0 >= 0:                                   # (2) abandonment
                    alive = 0
                    nc = 0
                    for p in range(nbr):
                        if flags[p] != 0:
                            continue
                        disagree[p] = disagree[p] + 1 if state.latest[e, p] != w0 else 0
                        alive += 1
                        if disagree[p] >= abandon_patience:
                            live[nc] = p
                            nc += 1
                    k = alive - 2
                    if k > nc:
                        k = nc
                    if k > 0:
                        _sort_desc_stable(live, nc, disagree)
                        for i in range(k):
                            p = live[i]
                            acts[nq] = NUM_GLOBAL_ACTIONS + 2 * M + p
                            nq += 1
                            flags[p] = 2
                            n_live -= 1
                nl = 0                                                 # (3) depth allocation
                for p in range(nbr):
                    if flags[p] == 0:
                        live[nl] = p
                        nl += 1
                _sort_desc_stable(live, nl, pcount)
                for i in range(nl):
                    p = live[i]
                    steps = burst_aligned if (warm and w0 >= 0 and state.latest[e, p] == w0) else 1
                    for _s in range(steps):
                        acts[nq] = NUM_GLOBAL_ACTIONS + p
                        nq += 1
                first_spawn = False
                phase = _PH_ROUND
                continue
        else:
            # ---- round r: after probing ----
            w1 = ps[0]                                                 # (4) post-probe EMA
            c = _pool_conf(table, ps)
            ema = (1.0 - ema_alpha) * ema + ema_alpha * c
            hist[nh - 1] = ema
            delta = hist[nh - 1] - hist[0] if nh >= 2 else 0.0
            if warm and ps[3] >= min_complete and ema >= conf_thresh and delta >= -delta_slack:
                answer = w1                                            # (5) stopping gate
            else:
                if n_live == 0:                                        # (6) all resolved?
                    answer = -3
                else:
                    nq = 0                                             # (7) widening
                    half = warm_up // 2
                    if half < 1:
                        half = 1
                    if (spawned < max_branch_use and spawned < CMC_MAX_BRANCH
                            and delta <= trend_thresh and r >= half and ema < conf_thresh):
                        cap = max_branch_use if max_branch_use < CMC_MAX_BRANCH else CMC_MAX_BRANCH
                        k = cap - spawned
                        if k > widen_burst:
                            k = widen_burst
                        for _k in range(k):
                            acts[nq] = BRANCH
                            nq += 1
                    r += 1
                    phase = _PH_SPAWN
                    continue
        if answer == -3:                                               # loop ended: final vote
            answer = ps[0]
            if answer < 0:
                nl = 0
                for p in range(nbr):
                    if flags[p] != 2 and state.latest[e, p] >= 0:
                        live[nl] = p
                        nl += 1
                answer = _majority_latest(state, e, live, nl, counts2)
        for i in range(ps[3]):
            counts[pool[i]] = 0
        acts[0] = _commit_action(state, params, e, answer)
        nq = 1
        phase = _PH_DONE


# ---------------------------------------------------------------------------------------------
# whole-evaluation drivers (a contiguous range of tasks)
# ---------------------------------------------------------------------------------------------

@nb.njit(inline="always", **_JIT)
def _claim_chunk(bounds, counter):
    """Claim the next unplayed chunk of tasks: ``(t0, t1)``, or ``(-1, -1)`` when none is left.
    ``counter`` is shared by every worker; the atomic increment hands each chunk out once."""
    k = fetch_add(counter, 0, np.int64(1))
    if k >= bounds.shape[0] - 1:
        return np.int64(-1), np.int64(-1)
    return bounds[k], bounds[k + 1]


@nb.njit(inline="always", **_JIT)
def _task(t, G, tasks):
    """Task ``t`` = parameter row ``g`` of episode ``tasks[t // G]``: returns ``(g, episode)``."""
    i = t // G
    return t - i * G, tasks[i]


@nb.njit(inline="always", **_JIT)
def _record(state, data, e, g, j, out_answer, out_cost, out_correct, out_steps):
    out_answer[g, j] = state.answer[e]
    out_cost[g, j] = state.cost[e]
    out_correct[g, j] = is_correct(state, data, e)
    out_steps[g, j] = state.steps[e]


@nb.njit(**_JIT)
def rollout_asc(data, params, state, slot, bounds, counter, table, questions, perms, tasks,
                policy_params, iscratch, fscratch, acts, out_answer, out_cost, out_correct,
                out_steps):
    G = policy_params.shape[0]
    params = EnvParams(params.max_branches, True, 0, 0)   # reference semantics, folded
    counts = iscratch[_COUNTS]
    first = iscratch[_FIRST]
    while True:
        t0, t1 = _claim_chunk(bounds, counter)
        if t0 < 0:
            break
        for t in range(t0, t1):
            g, j = _task(t, G, tasks)
            reset_episode(state, slot, questions[j], perms[j])
            episode_asc(state, data, params, slot, int(policy_params[g, 0]), policy_params[g, 1],
                        table, counts, first)
            _record(state, data, slot, g, j, out_answer, out_cost, out_correct, out_steps)


@nb.njit(**_JIT)
def rollout_esc(data, params, state, slot, bounds, counter, table, questions, perms, tasks,
                policy_params, iscratch, fscratch, acts, out_answer, out_cost, out_correct,
                out_steps):
    G = policy_params.shape[0]
    params = EnvParams(params.max_branches, True, 0, 0)   # reference semantics, folded
    counts = iscratch[_COUNTS]
    first = iscratch[_FIRST]
    while True:
        t0, t1 = _claim_chunk(bounds, counter)
        if t0 < 0:
            break
        for t in range(t0, t1):
            g, j = _task(t, G, tasks)
            reset_episode(state, slot, questions[j], perms[j])
            episode_esc(state, data, params, slot, int(policy_params[g, 0]), int(policy_params[g, 1]),
                        counts, first)
            _record(state, data, slot, g, j, out_answer, out_cost, out_correct, out_steps)


@nb.njit(**_JIT)
def rollout_parallel_probe(data, params, state, slot, bounds, counter, table, questions, perms,
                           tasks, policy_params, iscratch, fscratch, acts, out_answer, out_cost,
                           out_correct, out_steps):
    G = policy_params.shape[0]
    params = EnvParams(params.max_branches, True, 0, 0)   # reference semantics, folded
    counts = iscratch[_COUNTS]
    fin = iscratch[_FIN]
    off = iscratch[_AUX]
    active = iscratch[_LIST]
    while True:
        t0, t1 = _claim_chunk(bounds, counter)
        if t0 < 0:
            break
        for t in range(t0, t1):
            g, j = _task(t, G, tasks)
            reset_episode(state, slot, questions[j], perms[j])
            row = policy_params[g]
            episode_parallel_probe(state, data, params, slot, int(row[0]), int(row[1]), int(row[2]),
                                   int(row[3]), int(row[4]), int(row[5]), counts, fin, off, active,
                                   acts)
            _record(state, data, slot, g, j, out_answer, out_cost, out_correct, out_steps)


@nb.njit(**_JIT)
def rollout_cmc(data, params, state, slot, bounds, counter, table, questions, perms, tasks,
                policy_params, iscratch, fscratch, acts, out_answer, out_cost, out_correct,
                out_steps):
    G = policy_params.shape[0]
    params = EnvParams(params.max_branches, True, 0, 0)   # reference semantics, folded
    counts = iscratch[_COUNTS]
    first = iscratch[_FIRST]
    counts2 = iscratch[_COUNTS2]
    flags = iscratch[_FIN]
    pcount = iscratch[_AUX]
    live = iscratch[_LIST]
    pool = iscratch[_POOL]
    disagree = iscratch[_DISAGREE]
    ps = iscratch[_PS]
    while True:
        t0, t1 = _claim_chunk(bounds, counter)
        if t0 < 0:
            break
        for t in range(t0, t1):
            g, j = _task(t, G, tasks)
            reset_episode(state, slot, questions[j], perms[j])
            row = policy_params[g]
            episode_cmc(state, data, params, slot, int(row[0]), int(row[1]), int(row[2]),
                        int(row[3]), int(row[4]), row[5], row[6], row[7], int(row[8]), int(row[9]),
                        row[10], int(row[11]), table, counts, first, counts2, flags, pcount,
                        disagree, live, pool, ps, fscratch, acts)
            _record(state, data, slot, g, j, out_answer, out_cost, out_correct, out_steps)


_ROLLOUTS = {"asc": rollout_asc, "esc": rollout_esc, "parallel_probe": rollout_parallel_probe,
             "cmc": rollout_cmc}

# Hook of :mod:`tts_gym.evaluation.traces`: the module globals through which this module reaches
# the env. To record traces it re-jits (from source, as separate cache entries) every numba function
# here that calls a "step" or "reset" name, with that name bound to a recording wrapper of the same
# signature, and runs a copy of ``run_compiled`` whose "rollouts" and "make_state" globals are the
# re-jitted drivers and a factory of trace-carrying states. A compile-time substitution only:
# nothing here reads this table, and the untraced rollouts are unchanged. Keep it in sync: every
# env call of the rollouts must go through a name listed here (traces.py checks the aliases of the
# env kernels it can see, and that the recorded steps add up to ``steps``).
TRACE_HOOK: dict[str, Any] = {
    "step": ("_step",),           # code, charge = f(state, data, params, e, action)
    "reset": ("reset_episode",),  # f(state, e, question, perm)
    "rollouts": "_ROLLOUTS",      # kernel name -> driver, read by run_compiled
    "make_state": "make_state",   # run_compiled's state factory: f(num_slots, M) -> EnvState
}




# ---------------------------------------------------------------------------------------------
# Python entry points
# ---------------------------------------------------------------------------------------------

def reference_env_params(max_branches: int) -> EnvParams:
    """Env parameters of the reference semantics: fused reveals, free probes, no budget."""
    return EnvParams(max_branches=int(max_branches), fused=True, probe_cost=0, token_budget=0)


def policy_param_rows(policy: str, params_list: Sequence[Mapping[str, Any]]
                      ) -> tuple[str, np.ndarray]:
    """``(kernel name, float64 [G, P])`` for a list of parameter dicts of one policy.

    Parameters are normalised with :func:`tts_gym.policies.common.normalize_params` (so ``sc``
    becomes ``asc`` with threshold 1.01); CMC rows hold the schedule of :func:`cmc_schedule`
    (columns :data:`CMC_SCHEDULE_KEYS`)."""
    kernel = None
    rows = []
    for params in params_list:
        name, p = normalize_params(policy, params)
        if kernel is not None and name != kernel:
            raise ValueError("all parameter rows must be of one policy")
        kernel = name
        if name == "cmc":
            sched = cmc_schedule(p["beta"])
            rows.append([float(sched[k]) for k in CMC_SCHEDULE_KEYS])
        else:
            rows.append([float(p[k]) for k in POLICY_PARAM_NAMES[name]])
    if kernel is None:
        kernel = normalize_params(policy, {})[0]
        return kernel, np.zeros((0, len(POLICY_PARAM_NAMES[kernel])), np.float64)
    return kernel, np.ascontiguousarray(rows, dtype=np.float64)


def default_workers() -> int:
    """Worker threads used by default: ``numba.get_num_threads()`` (``NUMBA_NUM_THREADS``)."""
    return max(1, int(nb.get_num_threads()))


_POOL_EXECUTOR: ThreadPoolExecutor | None = None


def _executor(n: int) -> ThreadPoolExecutor:
    global _POOL_EXECUTOR
    if _POOL_EXECUTOR is None or _POOL_EXECUTOR._max_workers < n:
        _POOL_EXECUTOR = ThreadPoolExecutor(max_workers=n, thread_name_prefix="tts_gym-rollout")
    return _POOL_EXECUTOR


def positions_needed(kernel: str, policy_params: np.ndarray) -> int:
    """The most branch positions any row of ``policy_params`` can open (asc: ``max_samples``; esc:
    whole windows; parallel_probe: ``num_chains``; cmc: ``max(n_init, min(max_branch_use, 64))``)."""
    pp = np.asarray(policy_params, np.float64)
    if pp.shape[0] == 0:
        return 1
    if kernel == "asc":
        need = pp[:, 0]
    elif kernel == "esc":
        w = np.maximum(pp[:, 1], 1)
        need = np.floor(pp[:, 0] / w) * w
    elif kernel == "parallel_probe":
        need = pp[:, 0]
    else:
        need = np.maximum(pp[:, 0], np.minimum(pp[:, 1], CMC_MAX_BRANCH))
    return max(1, int(need.max()))


def episode_order(questions: np.ndarray) -> np.ndarray:
    """The order :func:`run_compiled` plays episodes in: question by question (stable), so every
    seed and parameter row of a question runs while its replay data is in cache."""
    return np.argsort(np.asarray(questions), kind="stable").astype(np.int32)


def run_compiled(data: ReplayData, policy: str, params_list: Sequence[Mapping[str, Any]],
                 questions: np.ndarray, perms: np.ndarray, *, max_branches: int | None = None,
                 workers: int | None = None, conf_variant: str = "exact",
                 policy_params: np.ndarray | None = None,
                 tasks: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Play every (parameter row, episode) of one policy in compiled calls (a few per worker).

    ``questions`` int32 ``[E]`` and ``perms`` int32 ``[E, >=M]`` define the episodes (question index
    into ``data``, and the branch order: stored index per position). ``params_list``: parameter
    dicts (protocol names, see :func:`tts_gym.policies.common.normalize_params`); or pass a ready
    ``policy_params`` array in the layout of :data:`POLICY_PARAM_NAMES` (``policy`` is then a kernel
    name: ``asc``, ``esc``, ``parallel_probe``, ``cmc``). ``max_branches`` (default: the width of
    ``perms``) is the env's ``M``; the kernels run with ``min(M, positions_needed(...))``
    positions, which changes nothing but the state to reset (no row can open more).
    ``workers``: threads (default :func:`default_workers`); results do not depend on it.
    ``tasks``: a precomputed :func:`episode_order` of ``questions`` (saves its sort when the same
    episodes are evaluated repeatedly). Returns ``{"answer", "cost", "correct", "steps"}``,
    arrays ``[G, E]``.
    """
    if policy_params is None:
        kernel, policy_params = policy_param_rows(policy, params_list)
    else:
        from tts_gym.policies.registry import canonical
        kernel = policy if policy in _ROLLOUTS else canonical(policy)
        policy_params = np.ascontiguousarray(policy_params, dtype=np.float64)
    if kernel not in _ROLLOUTS:
        raise ValueError(f"no compiled kernel {kernel!r}; choose one of {sorted(_ROLLOUTS)}")
    if policy_params.ndim != 2 or policy_params.shape[1] != len(POLICY_PARAM_NAMES[kernel]):
        raise ValueError(f"policy_params for {kernel!r} must be [G, {len(POLICY_PARAM_NAMES[kernel])}]")
    questions = np.ascontiguousarray(questions, dtype=np.int32)
    perms = np.ascontiguousarray(perms, dtype=np.int32)
    E = questions.shape[0]
    if perms.ndim != 2 or perms.shape[0] != E:
        raise ValueError(f"perms must be [E, M] with E = {E}, got {perms.shape}")
    M = int(max_branches if max_branches is not None else perms.shape[1])
    if M < 1:
        raise ValueError(f"max_branches must be >= 1, got {M}")
    M = min(M, positions_needed(kernel, policy_params))
    n_max = int(data.num_branches.max(initial=0))
    if perms.shape[1] < min(M, n_max):
        raise ValueError(f"perms has {perms.shape[1]} columns; {min(M, n_max)} positions are needed")
    G = policy_params.shape[0]
    out = {"answer": np.full((G, E), -1, np.int32), "cost": np.zeros((G, E), np.int64),
           "correct": np.zeros((G, E), np.bool_), "steps": np.zeros((G, E), np.int32)}
    if G * E == 0:
        return out
    W = int(workers if workers is not None else default_workers())
    total = G * E
    n_chunks = max(1, min(total, _CHUNKS_PER_WORKER * max(W, 1)))
    W = max(1, min(W, n_chunks))
    A = int(max(1, int(data.num_answers.max(initial=1))))
    if kernel == "cmc":
        H = max(1, int(policy_params[:, 4].max()))
        burst = max(1, int(policy_params[:, 8].max()))
        spawn = int(max(policy_params[:, 0].max(), policy_params[:, 9].max()))
    elif kernel == "parallel_probe":
        H, burst, spawn = 1, max(1, int(policy_params[:, 4].max())), int(policy_params[:, 0].max())
    else:
        H, burst, spawn = 1, 1, 1
    Lq = M * (burst + 1) + max(spawn, 0) + 8
    state = make_state(W * _SLOT_STRIDE, M)
    params = reference_env_params(M)
    table = conf_table(conf_variant)
    rollout = _ROLLOUTS[kernel]
    width = max(A, M, Lq) + 8
    iscr = [np.zeros((_ISCRATCH_ROWS, width), np.int32) for _ in range(W)]
    fscr = [np.zeros(H + 8, np.float64) for _ in range(W)]
    acts = [np.zeros(Lq, np.int64) for _ in range(W)]
    # tasks t = i * G + g: episode tasks[i] with parameter row g, episodes question by question
    # (every seed and row of a question while its replay data is in cache); results do not
    # depend on the order or on which worker plays a task
    if tasks is None:
        tasks = episode_order(questions)
    else:   # the kernels index with it unchecked: insist on a permutation of 0..E-1
        tasks = np.ascontiguousarray(tasks)
        if (tasks.shape != questions.shape or tasks.dtype != np.int32 or tasks.min() < 0
                or tasks.max() >= E or not (np.bincount(tasks, minlength=E) == 1).all()):
            raise ValueError(f"tasks must be an int32 permutation of 0..{E - 1}")

    # chunk k = tasks bounds[k] <= t < bounds[k + 1]; every worker makes one compiled call and
    # claims chunks through the atomic counter until none are left (dynamic scheduling: a worker
    # slowed by other load does not hold the others up)
    bounds = (np.arange(n_chunks + 1, dtype=np.int64) * total) // n_chunks
    counter = np.zeros(1, np.int64)

    def play(w: int) -> None:
        rollout(data, params, state, w * _SLOT_STRIDE, bounds, counter, table, questions, perms,
                tasks, policy_params, iscr[w], fscr[w], acts[w], out["answer"], out["cost"],
                out["correct"], out["steps"])

    if W == 1:
        play(0)
    else:
        list(_executor(W).map(play, range(W)))
    return out


bind_module_cache(globals())   # cache entries also keyed on the kernels they inline
