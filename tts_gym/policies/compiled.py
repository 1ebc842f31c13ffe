"""Compiled (numba) baselines: SC/ASC, ESC, Parallel-Probe and CMC as policies acting **only**
through :func:`tts_gym.core.kernels.step_episode`.

Each baseline is the reference pseudo-code of ``docs/replay-semantics.md``, "Baselines", written over
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
One driver, :func:`drive`, plays every evaluation: it claims chunks of tasks, resets an episode slot
and hands it to a policy's ``play_*`` function together with the step function. Each policy is a
small state machine with **one** env call site: it queues its next action(s) (a sample, a round of
CONTINUEs preceded by that round's PRUNEs, the widening BRANCHes, the final ANSWER_WITH), one loop
applies them through the step function in order, and the policy reads the effects back from the
state. The action sequence is exactly the reference's, so ``steps`` equals the Python policies'
count. The step function is the env's transition :func:`tts_gym.core.kernels.step_episode`; the
traces of :mod:`tts_gym.evaluation.traces` pass a recording wrapper of it instead (and a state type
that carries the trace buffers) to the same driver and policies.

Policy and step function are jitted functions passed to the driver as arguments (numba's
dispatcher types: each is a compile-time constant of the caller, so both are inlined; numba's
first-class function type would make every step an indirect call passing the ``EnvState`` /
``ReplayData`` tuples by value, ~190 machine words). A function that takes jitted functions as
arguments is cached by numba only under a key tied to those objects, i.e. never across processes,
so every (policy, step function) pair has a one-line cached entry point (:data:`ROLLOUTS` here, the
recording ones in :mod:`tts_gym.evaluation.traces`).

Performance notes
-----------------
* ``step_episode`` is compiled with ``forceinline``: inlined at the single call site of each
  policy, with the reference semantics (fused reveals, no probe cost, no budget) as constants.
* No NRT (``_nrt=False``): nothing allocates inside the kernels; per-worker scratch (answer counts,
  per-position lists, the action queue) is allocated by :func:`execute` and reused by later runs.
* A whole evaluation -- every (parameter row, episode) pair -- is one compiled call per worker.
  Episodes are played question by question (all seeds and parameter rows of a question while its
  replay data is in cache), in contiguous chunks that the workers claim through an atomic counter
  (:mod:`tts_gym.core.atomics`) -- per-chunk calls from Python would pay ~10 us of argument
  unboxing each with the GIL held, which serialised small jobs on many cores. A worker plays in
  its own state slot (slots padded apart against false sharing). Workers are Python threads
  running the ``nogil`` kernels (the calling thread is the first); small runs stay on the calling
  thread. Results do not depend on the worker count or the schedule. The env runs with
  ``min(M, positions_needed)`` positions (less state to reset; identical results).
* The on-disk cache of these functions is keyed on the sources they inline
  (:mod:`tts_gym.core.numba_cache`): numba alone only stamps this file and could serve stale code
  after a kernel change.

Entry point signature::

    rollout_<policy>(data, state, slot, bounds, counter, table, questions, perms, tasks,
                     policy_params, iscratch, fscratch, acts,
                     out_answer, out_cost, out_correct, out_steps)

``data``: :class:`~tts_gym.core.kernels.ReplayData`; ``state``: an
:class:`~tts_gym.core.kernels.EnvState` (its width is the env's ``M``), this worker's episode slot
``slot``; ``bounds`` int64 ``[C + 1]``: chunk ``k`` is the tasks ``bounds[k] <= t < bounds[k + 1]``,
task ``t = i * G + g`` being episode ``tasks[i]`` with parameter row ``g``; ``counter`` int64
``[1]``: the next unclaimed chunk, shared by the workers (each claims chunks with an atomic
fetch-and-add until none are left); ``table``: :func:`tts_gym.core.voting.conf_table`;
``questions`` int32 ``[E]`` / ``perms`` int32 ``[E, >=M]``; ``tasks`` int32 ``[E]``: the order to
play the episodes in; ``policy_params`` float64 ``[G, P]`` (columns :data:`POLICY_PARAM_NAMES`);
scratch ``iscratch`` int32 ``[9, >= max(A, M, len(acts))]`` (``A`` = largest answer table),
``fscratch`` float64 ``[>= max T_ema]``, ``acts`` int64 (the action queue); outputs ``[G, E]``.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, NamedTuple, Sequence

import numba as nb
import numpy as np

from tts_gym.core.atomics import fetch_add
from tts_gym.core.numba_cache import bind_module_cache
from tts_gym.core.actions import ABSTAIN, BRANCH, NUM_GLOBAL_ACTIONS, SAMPLE
from tts_gym.core.kernels import (FINISHED, OK, EnvParams, ReplayData, is_correct, ix, make_state,
                                  reset_episode, step_episode)
from tts_gym.policies.common import (CMC_MAX_BRANCH, CMC_MAX_ROUNDS, CMC_SCHEDULE_KEYS,
                                     cmc_schedule, external_policy, normalize_params)
from tts_gym.core.voting import conf_lookup, conf_table, vote_push

__all__ = [
    "POLICY_PARAM_NAMES", "KERNELS", "ROLLOUTS", "PLAYS", "RunPlan", "policy_param_rows",
    "plan_run", "execute", "run_compiled", "reference_env_params", "default_workers", "drive",
    "play_asc", "play_esc", "play_parallel_probe", "play_cmc",
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

_JIT = dict(cache=True, nogil=True, _nrt=False)
# the policies and the driver take jitted functions as arguments: compiled (and inlined) as part of
# each cached entry point, never cached on their own (see the entry points below)
_PLAY = dict(nogil=True, _nrt=False, forceinline=True)

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


@nb.njit(**_PLAY)
def _majority_latest(state, e, plist, n, counts):
    """Majority of ``latest`` over positions ``plist[:n]`` in that order (-1 if none), ties to the
    earliest first occurrence: count everything, then the first element reaching the top count
    wins (branch-light). ``counts`` is zero on entry and exit."""
    for i in range(n):
        a = state.latest[e, ix(plist[i])]
        if a >= 0:
            counts[ix(a)] += 1
    w = -1
    best = 0
    for i in range(n):
        a = state.latest[e, ix(plist[i])]
        if a >= 0:
            c = counts[ix(a)]
            if c > best:
                best = c
                w = a
    for i in range(n):
        a = state.latest[e, ix(plist[i])]
        if a >= 0:
            counts[ix(a)] = 0
    return w


@nb.njit(**_PLAY)
def _sort_desc_stable(idx, n, key):
    """Stable insertion sort of ``idx[:n]`` by ``key[idx]`` descending (ties keep their order)."""
    for i in range(1, n):
        v = idx[i]
        k = key[ix(v)]
        j = i - 1
        while j >= 0 and key[ix(idx[ix(j)])] < k:
            idx[ix(j + 1)] = idx[ix(j)]
            j -= 1
        idx[ix(j + 1)] = v


@nb.njit(**_PLAY)
def _majority_unpruned(state, e, nbr, flags, live, counts):
    """Majority of the latest answers of the opened positions ``0 .. nbr - 1`` not pruned
    (``flags[p] != 2``) that have revealed one (:func:`_majority_latest`; ``live`` is scratch)."""
    nl = 0
    for p in range(nbr):
        if flags[p] != 2 and state.latest[e, p] >= 0:
            live[nl] = p
            nl += 1
    return _majority_latest(state, e, live, nl, counts)


@nb.njit(**_PLAY)
def _abandon_disagreeing(state, e, nbr, leader, flags, disagree, patience, keep, live, acts, nq, M):
    """Abandonment of branches that keep disagreeing with ``leader``: each live position's
    (``flags[p] == 0``) ``disagree`` counter counts consecutive rounds with a latest answer other
    than ``leader`` (0 again on agreement); those with a counter ``>= patience`` are pruned,
    most-disagreeing first (stable), keeping ``keep`` live: PRUNE queued at ``acts[nq:]``, flag 2.
    Returns ``(nq, number pruned)``."""
    alive = 0
    nc = 0
    for p in range(nbr):
        if flags[p] != 0:
            continue
        disagree[p] = disagree[p] + 1 if state.latest[e, p] != leader else 0
        alive += 1
        if disagree[p] >= patience:
            live[nc] = p
            nc += 1
    k = alive - keep
    if k > nc:
        k = nc
    pruned = 0
    if k > 0:
        _sort_desc_stable(live, nc, disagree)
        for i in range(k):
            p = ix(live[i])
            acts[nq] = NUM_GLOBAL_ACTIONS + 2 * M + p
            nq += 1
            flags[p] = 2
        pruned = k
    return nq, pruned


@nb.njit(**_PLAY)
def _clear_counts(state, e, counts):
    for p in range(state.cursor[e]):
        a = state.latest[e, p]
        if a >= 0:
            counts[ix(a)] = 0


# ---------------------------------------------------------------------------------------------
# per-episode policies (episode slot ``e`` already reset). Each has exactly one env call site:
# the policy decides its next action(s), the loop applies them through ``_step``.
# ---------------------------------------------------------------------------------------------

@nb.njit(**_PLAY)
def play_asc(step, state, data, params, e, row, table, iscratch, fscratch, acts):
    """ASC (replay semantics, "ASC"); SC@N is ``threshold >= 1``. Row: ``max_samples, threshold``. Scratch: per
    answer ``counts`` (zero on entry and exit) and ``first``."""
    max_samples = int(row[0])
    threshold = row[1]
    counts = iscratch[_COUNTS]
    first = iscratch[_FIRST]
    can_stop = threshold < 1.0      # a confidence is at most 1: SC@N (threshold >= 1) never stops
    w, t1, t2 = -1, 0, 0
    n = 0
    action = np.int64(SAMPLE) if max_samples > 0 else np.int64(ABSTAIN)
    while True:
        code, _c = step(state, data, params, e, action)
        if _is_terminal(params, action):
            break
        stop = code != OK
        if not stop:
            w, t1, t2 = vote_push(counts, first, state.latest[e, ix(state.cursor[e] - 1)], n, w,
                                  t1, t2)
            n += 1
            stop = n >= max_samples or (can_stop and n >= 2
                                        and conf_lookup(table, t1, t2) > threshold)
        if stop:
            _clear_counts(state, e, counts)
            action = _commit_action(state, params, e, w)
        else:
            action = np.int64(SAMPLE)


@nb.njit(**_PLAY)
def play_esc(step, state, data, params, e, row, table, iscratch, fscratch, acts):
    """ESC (replay semantics, "ESC"). Row: ``max_samples, window_size``. Scratch: per answer ``counts`` (zero on
    entry and exit) and ``first``."""
    max_samples = int(row[0])
    window_size = int(row[1])
    counts = iscratch[_COUNTS]
    first = iscratch[_FIRST]
    w, t1, t2 = -1, 0, 0
    n = 0
    n_windows = max_samples // window_size if window_size > 0 else 0
    wi = 0
    got = 0
    start = state.cursor[e]
    action = np.int64(SAMPLE) if n_windows > 0 else np.int64(ABSTAIN)
    while True:
        code, _c = step(state, data, params, e, action)
        if _is_terminal(params, action):
            break
        if code == OK:
            got += 1
            if got < window_size:
                continue                 # action stays SAMPLE
        # the window is complete (or the branches ran out)
        answer = -2                      # -2: go on with the next window
        if got > 0:
            a0 = state.latest[e, ix(start)]
            unanimous = True
            for p in range(start, start + got):
                a = state.latest[e, ix(p)]
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
        a = state.latest[e, ix(active[i])]
        c = counts[ix(a)]
        if c > best:
            best = c
            w = a
    return w


@nb.njit(**_PLAY)
def play_parallel_probe(step, state, data, params, e, row, table, iscratch, fscratch, acts):
    """Parallel-Probe (replay semantics, "Parallel-Probe"). Row: ``num_chains, T, prune_patience, warm_up, probe_burst,
    max_steps``. Scratch: per answer ``counts`` (zero on entry and exit); per position (length
    ``>= M``) ``fin``, ``off``, ``active``; ``acts`` int64: the action queue (length
    ``>= M * (probe_burst + 1) + num_chains + 1``).

    A round is one batch: the previous round's prunes, then ``probe_burst`` CONTINUEs per live
    branch in opening order (a finished branch's extra CONTINUEs are refused by the env, which is
    the reference's ``if br.finished: break``). ``counts`` is the vote over the active branches'
    latest answers, kept up to date as answers change and branches are pruned."""
    num_chains = int(row[0])
    T = int(row[1])
    prune_patience = int(row[2])
    warm_up = int(row[3])
    probe_burst = int(row[4])
    max_steps = int(row[5])
    counts = iscratch[_COUNTS]
    fin = iscratch[_FIN]
    off = iscratch[_AUX]
    active = iscratch[_LIST]
    M = params.max_branches
    c0 = M + 1        # acts[:nq]: opens, prunes, the commit; acts[c0:c0 + nc]: a round's CONTINUEs
    nq = 0
    nc = 0
    for _ in range(num_chains):
        acts[nq] = BRANCH
        nq += 1
    phase = _PH_OPEN
    nact = 0
    stable = 0
    prev = -1
    rnd = 0                                         # rounds played
    while True:
        for j in range(nq):
            code, _c = step(state, data, params, e, acts[j])
        for j in range(c0, c0 + nc):
            a = acts[j]
            p = ix(a - NUM_GLOBAL_ACTIONS)
            old = state.latest[e, p]
            code, _c = step(state, data, params, e, a)
            new = state.latest[e, p]
            if new != old:
                counts[ix(old)] -= 1
                counts[ix(new)] += 1
            if code != OK or (state.flags[e, p] & FINISHED) != 0:
                fin[p] = 1
        if phase == _PH_DONE:
            break
        nq = 0
        nc = 0
        answer = -2                                   # -2: play another round
        if phase == _PH_OPEN:
            nact = state.cursor[e]
            for p in range(nact):
                f = 1 if (state.flags[e, p] & FINISHED) != 0 else 0
                fin[p] = f
                off[p] = 0
                active[p] = p
                counts[ix(state.latest[e, p])] += 1
                if f == 0:
                    for _b in range(probe_burst):
                        acts[c0 + nc] = NUM_GLOBAL_ACTIONS + p
                        nc += 1
            phase = _PH_ROUND
            if nact == 0 or max_steps <= 0:
                answer = -1
                nc = 0
            else:
                continue                              # round 0: forward pass first
        else:
            w = _vote_active(state, e, active, nact, counts)
            # one pass: the off-track update and pruning (after the warm-up), the survivors kept
            # in order, and the next round's CONTINUEs of the live ones (discarded if it stops)
            pruning = rnd >= warm_up and nact > 1
            newly = False
            live = 0
            m = 0
            for i in range(nact):
                p = ix(active[i])
                if fin[p] == 0:
                    if pruning:
                        off[p] = off[p] + 1 if state.latest[e, p] != w else 0
                        if off[p] >= prune_patience:
                            acts[nq] = NUM_GLOBAL_ACTIONS + 2 * M + p
                            nq += 1
                            counts[ix(state.latest[e, p])] -= 1
                            newly = True
                            continue
                    live += 1
                    for _b in range(probe_burst):
                        acts[c0 + nc] = NUM_GLOBAL_ACTIONS + p
                        nc += 1
                active[m] = p
                m += 1
            nact = m
            if newly:
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
                elif live == 0:
                    answer = w
                else:
                    rnd += 1
                    if rnd >= max_steps:
                        answer = prev
        if answer != -2:
            nc = 0
            for i in range(nact):
                counts[ix(state.latest[e, ix(active[i])])] = 0
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
    pool[ix(ps[3])] = a
    ps[0] = w
    ps[1] = t1
    ps[2] = t2
    ps[3] += 1


@nb.njit(**_PLAY)
def play_cmc(step, state, data, params, e, row, table, iscratch, fscratch, acts):
    """CMC, the Confidence Momentum Controller (replay semantics, "CMC"), with an explicit schedule
    (:func:`tts_gym.policies.common.cmc_schedule`; row: :data:`CMC_SCHEDULE_KEYS`).

    Scratch: per answer ``counts``/``first`` (pool vote) and ``counts2`` (fallback vote), ``counts*``
    zero on entry/exit; per position (length ``>= M``): ``flags`` (1 finished, 2 abandoned),
    ``pcount``, ``disagree``, ``live``, ``pool``; ``ps`` int[4] (pool winner, top1, top2, size);
    ``hist`` float64 (``>= T_ema``); action queue ``acts`` int64 (length
    ``>= M * (burst_aligned + 1) + max(n_init, widen_burst) + 1``).

    Batches: the spawns (initial, or the widening decided at the end of the previous round), then
    each round's abandonments followed by its CONTINUEs in probe-count order."""
    n_init = int(row[0])
    max_branch_use = int(row[1])
    warm_up = int(row[2])
    abandon_patience = int(row[3])
    T_ema = int(row[4])
    ema_alpha = row[5]
    conf_thresh = row[6]
    delta_slack = row[7]
    burst_aligned = int(row[8])
    widen_burst = int(row[9])
    trend_thresh = row[10]
    min_complete = int(row[11])
    counts = iscratch[_COUNTS]
    first = iscratch[_FIRST]
    counts2 = iscratch[_COUNTS2]
    flags = iscratch[_FIN]
    pcount = iscratch[_AUX]
    live = iscratch[_LIST]
    pool = iscratch[_POOL]
    disagree = iscratch[_DISAGREE]
    ps = iscratch[_PS]
    hist = fscratch
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
            code, _c = step(state, data, params, e, a)
            if a >= NUM_GLOBAL_ACTIONS and a < NUM_GLOBAL_ACTIONS + M:       # CONTINUE(p)
                p = ix(a - NUM_GLOBAL_ACTIONS)
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
            for pp in range(nbr, state.cursor[e]):
                p = ix(pp)
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
                    nq, pruned = _abandon_disagreeing(state, e, nbr, w0, flags, disagree, abandon_patience, 2,
                                                      live, acts, nq, M)
                    n_live -= pruned
                nl = 0                                                 # (3) depth allocation
                for p in range(nbr):
                    if flags[p] == 0:
                        live[nl] = p
                        nl += 1
                _sort_desc_stable(live, nl, pcount)
                for i in range(nl):
                    p = ix(live[i])
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
                answer = _majority_unpruned(state, e, nbr, flags, live, counts2)
        for i in range(ps[3]):
            counts[ix(pool[i])] = 0
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
    if G == 1:
        return ix(0), ix(tasks[ix(t)])
    i = t // G
    return ix(t - i * G), ix(tasks[ix(i)])


@nb.njit(inline="always", **_JIT)
def _record(state, data, e, g, j, out_answer, out_cost, out_correct, out_steps):
    out_answer[g, j] = state.answer[e]
    out_cost[g, j] = state.cost[e]
    out_correct[g, j] = is_correct(state, data, e)
    out_steps[g, j] = state.steps[e]


@nb.njit(**_PLAY)
def drive(play, step, reset, data, state, slot, bounds, counter, table, questions, perms, tasks,
          policy_params, iscratch, fscratch, acts, out_answer, out_cost, out_correct, out_steps):
    """The one compiled driver: claim chunks of tasks until none is left; for each task ``reset``
    episode slot ``slot`` of ``state`` to its question and branch order, let ``play`` play it
    through ``step`` and record the outcome. ``play`` (a ``play_*`` policy), ``step`` and ``reset``
    (the env's :func:`tts_gym.core.kernels.step_episode` / ``reset_episode``, or recording wrappers
    of them with a state type that carries the trace: :mod:`tts_gym.evaluation.traces`) are jitted
    functions passed in; each is a compile-time constant of the entry point, so all are inlined.
    The env runs with the reference semantics (fused reveals, free probes, no budget) as
    constants, which lets LLVM drop those branches; ``M`` is the state's width."""
    G = policy_params.shape[0]
    params = EnvParams(state.order.shape[1], True, 0, 0)
    e = ix(slot)
    while True:
        t0, t1 = _claim_chunk(bounds, counter)
        if t0 < 0:
            break
        for t in range(t0, t1):
            g, j = _task(t, G, tasks)
            reset(state, e, questions[j], perms[j])
            play(step, state, data, params, e, policy_params[g], table, iscratch, fscratch, acts)
            _record(state, data, e, g, j, out_answer, out_cost, out_correct, out_steps)


# The entry points: the driver with each policy and the env's transition (numba caches a function
# that takes jitted functions as arguments only under a key tied to those objects, i.e. never
# across processes, so each (policy, step function) pair gets a plain cached entry point). Signature:
# (data, state, slot, bounds, counter, table, questions, perms, tasks, policy_params, iscratch,
#  fscratch, acts, out_answer, out_cost, out_correct, out_steps).

@nb.njit(**_JIT)
def rollout_asc(data, state, slot, bounds, counter, table, questions, perms, tasks, policy_params,
               iscratch, fscratch, acts, out_answer, out_cost, out_correct, out_steps):
    drive(play_asc, step_episode, reset_episode, data, state, slot, bounds, counter, table,
          questions, perms, tasks, policy_params, iscratch, fscratch, acts, out_answer, out_cost,
          out_correct, out_steps)


@nb.njit(**_JIT)
def rollout_esc(data, state, slot, bounds, counter, table, questions, perms, tasks, policy_params,
               iscratch, fscratch, acts, out_answer, out_cost, out_correct, out_steps):
    drive(play_esc, step_episode, reset_episode, data, state, slot, bounds, counter, table,
          questions, perms, tasks, policy_params, iscratch, fscratch, acts, out_answer, out_cost,
          out_correct, out_steps)


@nb.njit(**_JIT)
def rollout_parallel_probe(data, state, slot, bounds, counter, table, questions, perms, tasks,
                           policy_params, iscratch, fscratch, acts, out_answer, out_cost,
                           out_correct, out_steps):
    drive(play_parallel_probe, step_episode, reset_episode, data, state, slot, bounds, counter,
          table, questions, perms, tasks, policy_params, iscratch, fscratch, acts, out_answer,
          out_cost, out_correct, out_steps)


@nb.njit(**_JIT)
def rollout_cmc(data, state, slot, bounds, counter, table, questions, perms, tasks, policy_params,
               iscratch, fscratch, acts, out_answer, out_cost, out_correct, out_steps):
    drive(play_cmc, step_episode, reset_episode, data, state, slot, bounds, counter, table,
          questions, perms, tasks, policy_params, iscratch, fscratch, acts, out_answer, out_cost,
          out_correct, out_steps)


ROLLOUTS = {"asc": rollout_asc, "esc": rollout_esc, "parallel_probe": rollout_parallel_probe,
            "cmc": rollout_cmc}
PLAYS = {"asc": play_asc, "esc": play_esc, "parallel_probe": play_parallel_probe, "cmc": play_cmc}


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
    ext = external_policy(policy)
    if ext is not None:   # a policy of its own module (tts_gym.policies.common.EXTERNAL_POLICIES)
        rows = [[float(ext.normalize(p)[k]) for k in ext.PARAM_NAMES] for p in params_list]
        return ext.NAME, np.asarray(rows, np.float64).reshape(len(rows), len(ext.PARAM_NAMES))
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
_POOL_LOCK = threading.Lock()


def _executor(n: int) -> ThreadPoolExecutor:
    global _POOL_EXECUTOR
    with _POOL_LOCK:
        if _POOL_EXECUTOR is None or _POOL_EXECUTOR._max_workers < n:
            _POOL_EXECUTOR = ThreadPoolExecutor(max_workers=n, thread_name_prefix="tts_gym-rollout")
        return _POOL_EXECUTOR


def positions_needed(kernel: str, policy_params: np.ndarray) -> int:
    """The most branch positions any row of ``policy_params`` can open (asc: ``max_samples``; esc:
    whole windows; parallel_probe: ``num_chains``; cmc: ``max(n_init, min(max_branch_use, 64))``)."""
    pp = np.asarray(policy_params, np.float64)
    ext = external_policy(kernel)
    if ext is not None:
        return ext.positions_needed(pp)
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


class RunPlan(NamedTuple):
    """Everything :func:`execute` needs besides the episodes: validated kernel inputs and sizes."""
    kernel: str
    policy_params: np.ndarray   # float64 [G, P]
    M: int                      # positions the kernels run with
    workers: int
    queue: int                  # length of the action queue
    width: int                  # columns of the int scratch
    history: int                # length of the float scratch
    n_chunks: int
    rows: int = _ISCRATCH_ROWS  # rows of the int scratch


# A small evaluation is played on the calling thread: handing work to another thread costs more
# than the few microseconds it would save (tasks = episodes x parameter rows).
_MIN_TASKS_PER_WORKER = 512


def plan_run(data: ReplayData, policy: str, params_list: Sequence[Mapping[str, Any]],
             questions: np.ndarray, perms: np.ndarray, *, max_branches: int | None = None,
             workers: int | None = None, policy_params: np.ndarray | None = None) -> RunPlan:
    """Check the inputs of :func:`run_compiled` and size its scratch (no episode is played)."""
    if policy_params is None:
        kernel, policy_params = policy_param_rows(policy, params_list)
    else:
        from tts_gym.policies.registry import canonical
        kernel = policy if policy in ROLLOUTS else canonical(policy)
        policy_params = np.ascontiguousarray(policy_params, dtype=np.float64)
    ext = external_policy(kernel)
    if ext is None and kernel not in ROLLOUTS:
        raise ValueError(f"no compiled kernel {kernel!r}; choose one of {sorted(ROLLOUTS)}")
    n_cols = len(ext.PARAM_NAMES if ext is not None else POLICY_PARAM_NAMES[kernel])
    if policy_params.ndim != 2 or policy_params.shape[1] != n_cols:
        raise ValueError(f"policy_params for {kernel!r} must be [G, {n_cols}]")
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
    total = policy_params.shape[0] * E
    W = int(workers if workers is not None else default_workers())
    W = max(1, min(W, total // _MIN_TASKS_PER_WORKER))
    n_chunks = max(1, min(total, _CHUNKS_PER_WORKER * W)) if W > 1 else 1
    A = int(max(1, int(data.num_answers.max(initial=1))))
    if kernel == "cmc" and total:
        H = max(1, int(policy_params[:, 4].max()))
        burst = max(1, int(policy_params[:, 8].max()))
        spawn = int(max(policy_params[:, 0].max(), policy_params[:, 9].max()))
    elif kernel == "parallel_probe" and total:
        H, burst, spawn = 1, max(1, int(policy_params[:, 4].max())), int(policy_params[:, 0].max())
    else:
        H, burst, spawn = 1, 1, 1
    queue = M * (burst + 1) + max(spawn, 0) + 8
    rows, width, history = _ISCRATCH_ROWS, max(A, M, queue) + 8, H + 8
    ext = external_policy(kernel)
    if ext is not None:   # scratch sizes from the policy's own module
        rows, history, queue = (int(x) for x in ext.scratch_sizes(policy_params, M, A,
                                                                  int(data.probe_ids.shape[2])))
        width = max(A, 2 * M, queue) + 8
    return RunPlan(kernel, policy_params, M, W, queue, width, history, n_chunks, rows)


# Scratch buffers of finished runs, reused by the next run of the same sizes (the kernels leave the
# vote counts zeroed and write everything else before reading it; a reset clears what the previous
# episode of a state slot opened).
_SCRATCH: dict[tuple, list] = {}
_SCRATCH_LOCK = threading.Lock()


def _take_scratch(plan: RunPlan):
    key = (plan.workers, plan.M, plan.width, plan.history, plan.queue, plan.rows)
    with _SCRATCH_LOCK:
        free = _SCRATCH.get(key)
        if free:
            return key, free.pop()
    W = plan.workers
    return key, (make_state(W * _SLOT_STRIDE, plan.M),
                 [np.zeros((plan.rows, plan.width), np.int32) for _ in range(W)],
                 [np.zeros(plan.history, np.float64) for _ in range(W)],
                 [np.zeros(plan.queue, np.int64) for _ in range(W)])


def _give_scratch(key, scratch) -> None:
    with _SCRATCH_LOCK:
        free = _SCRATCH.setdefault(key, [])
        if len(free) < 2:
            free.append(scratch)


def execute(plan: RunPlan, data: ReplayData, questions: np.ndarray, perms: np.ndarray,
            tasks: np.ndarray, *, rollout=None, state=None, conf_variant: str = "exact",
            scratch=None) -> dict[str, np.ndarray]:
    """Play the planned run: ``plan.workers`` compiled calls of ``rollout`` (default: the plan's
    entry point of :data:`ROLLOUTS`), the calling thread making the first. ``state`` (default: a
    pooled :class:`~tts_gym.core.kernels.EnvState`) must have ``plan.workers * 16`` slots of
    ``plan.M`` positions. Returns ``{"answer", "cost", "correct", "steps"}``, arrays ``[G, E]``."""
    G, E = plan.policy_params.shape[0], questions.shape[0]
    out = {"answer": np.full((G, E), -1, np.int32), "cost": np.zeros((G, E), np.int64),
           "correct": np.zeros((G, E), np.bool_), "steps": np.zeros((G, E), np.int32)}
    if G * E == 0:
        return out
    pooled = None
    if scratch is None:
        pooled, scratch = _take_scratch(plan)
    own_state, iscr, fscr, acts = scratch
    state = own_state if state is None else state
    if rollout is None:
        ext = external_policy(plan.kernel)   # a policy of its own module
        rollout = ROLLOUTS[plan.kernel] if ext is None else getattr(ext, f"rollout_{ext.NAME}")
    fn = rollout
    table = conf_table(conf_variant)
    W, total = plan.workers, G * E
    # chunk k = tasks bounds[k] <= t < bounds[k + 1]; every worker makes one compiled call and
    # claims chunks through the atomic counter until none are left (dynamic scheduling: a worker
    # slowed by other load does not hold the others up)
    bounds = (np.arange(plan.n_chunks + 1, dtype=np.int64) * total) // plan.n_chunks
    counter = np.zeros(1, np.int64)
    pp = plan.policy_params
    oa, oc, ok, os_ = out["answer"], out["cost"], out["correct"], out["steps"]

    def play(w: int) -> None:
        fn(data, state, w * _SLOT_STRIDE, bounds, counter, table, questions, perms, tasks, pp,
           iscr[w], fscr[w], acts[w], oa, oc, ok, os_)

    if W == 1:
        play(0)
    else:
        futures = [_executor(W - 1).submit(play, w) for w in range(1, W)]
        play(0)
        for f in futures:
            f.result()
    if pooled is not None:
        _give_scratch(pooled, scratch)
    return out


def check_tasks(tasks, E: int) -> np.ndarray:
    """``tasks`` as the kernels need it: an int32 permutation of ``0 .. E - 1`` (they index with it
    unchecked)."""
    tasks = np.ascontiguousarray(tasks)
    if (tasks.shape != (E,) or tasks.dtype != np.int32 or (E and (tasks.min() < 0 or tasks.max() >= E))
            or not (np.bincount(tasks, minlength=E) == 1).all()):
        raise ValueError(f"tasks must be an int32 permutation of 0..{E - 1}")
    return tasks


def run_compiled(data: ReplayData, policy: str, params_list: Sequence[Mapping[str, Any]],
                 questions: np.ndarray, perms: np.ndarray, *, max_branches: int | None = None,
                 workers: int | None = None, conf_variant: str = "exact",
                 policy_params: np.ndarray | None = None,
                 tasks: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Play every (parameter row, episode) of one policy in compiled calls (one per worker).

    ``questions`` int32 ``[E]`` and ``perms`` int32 ``[E, >=M]`` define the episodes (question index
    into ``data``, and the branch order: stored index per position). ``params_list``: parameter
    dicts (protocol names, see :func:`tts_gym.policies.common.normalize_params`); or pass a ready
    ``policy_params`` array in the layout of :data:`POLICY_PARAM_NAMES` (``policy`` is then a kernel
    name: ``asc``, ``esc``, ``parallel_probe``, ``cmc``). ``max_branches`` (default: the width of
    ``perms``) is the env's ``M``; the kernels run with ``min(M, positions_needed(...))``
    positions, which changes nothing but the state to reset (no row can open more).
    ``workers``: threads (default :func:`default_workers`; small runs use fewer); results do not
    depend on it. ``tasks``: a precomputed :func:`episode_order` of ``questions`` (saves its sort
    when the same episodes are evaluated repeatedly). Returns ``{"answer", "cost", "correct",
    "steps"}``, arrays ``[G, E]``.
    """
    questions = np.ascontiguousarray(questions, dtype=np.int32)
    perms = np.ascontiguousarray(perms, dtype=np.int32)
    plan = plan_run(data, policy, params_list, questions, perms, max_branches=max_branches,
                    workers=workers, policy_params=policy_params)
    tasks = episode_order(questions) if tasks is None else check_tasks(tasks, questions.shape[0])
    return execute(plan, data, questions, perms, tasks, conf_variant=conf_variant)


bind_module_cache(globals())   # cache entries also keyed on the kernels they inline
