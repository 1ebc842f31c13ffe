"""Compiled replay kernels: pure numba functions over explicit, batch-first state arrays.

In the gymnax style, everything an episode needs is passed in explicitly:

* :class:`ReplayData` -- the store tensors (read-only; several stores are concatenated along the
  question axis by :func:`pack_stores`);
* :class:`EnvParams` -- scalar configuration (``max_branches``, fused reveals, probe cost, budget);
* :class:`EnvState` -- per-episode state, every array batch-first (``E`` episodes; one env is a
  batch of one).

The kernels (:func:`reset_episode`, :func:`step_episode`, :func:`action_mask_episode` and their
batched wrappers) hold no Python objects and allocate nothing per step. :func:`step_episode` is the
one transition: the single env and the natively batched vector env step through it by
:func:`env_step` (which adds the env's reward and truncation), the compiled rollouts
(:mod:`tts_gym.policies.compiled`) call it from inside numba.

Cost accounting follows ``docs/replay-semantics.md``, "Token accounting", exactly:

* ``BRANCH`` = the reference's ``probe_new``: charges ``pf`` and (fused mode) reveals probe 1;
* ``CONTINUE(i)`` = ``probe_more(i)``: charges ``pf`` and reveals the next probe while probes remain;
  once the ``K_b`` probes are consumed, one more ``CONTINUE`` is the *finishing step*, which charges
  ``max(0, T_b - K_b * pf)`` and reveals the final answer; finished positions are masked afterwards
  (so the reference's re-charging quirk is forbidden rather than reproduced);
* ``SAMPLE`` = ``get_new_branch_final_answer``: charges exactly ``T_b`` and reveals only the final;
* a fully probed branch costs ``max(T_b, K_b * pf)``, a sampled one ``T_b``.
"""
from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from tts_gym.core.actions import ABSTAIN, ANSWER, BRANCH, NUM_GLOBAL_ACTIONS, SAMPLE

# Every kernel here allocates nothing, so it is compiled without the NRT (``_nrt=False``): numba
# would otherwise incref/decref each array of the EnvState/ReplayData NamedTuples on every call,
# which cost ~0.5 us per check_action call (a 70x slowdown of the step path).
_NO_NRT = False

# ---- position flags (bit field in EnvState.flags) ------------------------------------------------
OPENED = np.int8(1)     # position has been opened (BRANCH or SAMPLE)
FINISHED = np.int8(2)   # final answer revealed / trajectory complete
PRUNED = np.int8(4)     # PRUNE(i) taken: no further actions, out of the default vote
SAMPLED = np.int8(8)    # opened by SAMPLE (full read)

# ---- result codes of step_episode (0 = applied) -------------------------------------------------
OK = 0
ERR_DONE = 1             # episode already ended
ERR_NO_BRANCH_LEFT = 2   # BRANCH/SAMPLE with every allowed position opened
ERR_NOT_OPENED = 3       # position not opened yet
ERR_FINISHED = 4         # CONTINUE on a finished position
ERR_PRUNED = 5           # action on a pruned position
ERR_NOTHING_TO_PROBE = 6 # PROBE with the current depth already revealed (always so in fused mode)
ERR_NO_ANSWER = 7        # ANSWER_WITH(i) with nothing revealed at position i
ERR_BAD_ACTION = 8       # action id outside the action space
ERR_BUDGET = 9           # token budget exhausted: only answering actions remain

ERROR_MESSAGES = {
    ERR_DONE: "the episode has already ended; call reset()",
    ERR_NO_BRANCH_LEFT: "every allowed branch position is already opened (cursor == max branches)",
    ERR_NOT_OPENED: "that branch position has not been opened yet",
    ERR_FINISHED: "that branch is finished: its final answer is already revealed",
    ERR_PRUNED: "that branch was pruned",
    ERR_NOTHING_TO_PROBE: "nothing to probe: the answer at the branch's current depth is already revealed",
    ERR_NO_ANSWER: "that branch has revealed no answer yet",
    ERR_BAD_ACTION: "the action id is outside the action space",
    ERR_BUDGET: "the token budget is exhausted; only ANSWER, ANSWER_WITH(i) and ABSTAIN remain",
}


class ReplayData(NamedTuple):
    """Store tensors (see :class:`tts_gym.data.store.ReplayStore`), several stores stacked along Q."""
    probe_ids: np.ndarray       # int16 (int32 for large answer tables) [Q, N, K]
    num_probes: np.ndarray      # int32 [Q, N]
    branch_tokens: np.ndarray   # int64 [Q, N]
    final_ids: np.ndarray       # int32 [Q, N]
    num_branches: np.ndarray    # int32 [Q]
    probe_interval: np.ndarray  # int32 [Q]
    gold_ids: np.ndarray        # int32 [Q]  (scoring only; never observed)
    num_answers: np.ndarray     # int32 [Q]  size of each question's answer table


class EnvParams(NamedTuple):
    max_branches: int   # M: positions per episode (<= the store's N)
    fused: bool         # CONTINUE/BRANCH also reveal the new answer (the reference's behaviour)
    probe_cost: int     # kappa: tokens charged per reveal (0 in the reference)
    token_budget: int   # cost-incurring actions are masked once cost >= budget (<= 0: no budget)


class EnvState(NamedTuple):
    """Per-episode state; leading axis = episode in the batch. Positions are opening order."""
    question: np.ndarray      # int32 [E]    question index into ReplayData
    order: np.ndarray         # int32 [E, M] stored branch index of each position (a permutation prefix)
    cursor: np.ndarray        # int32 [E]    positions opened so far
    cost: np.ndarray          # int64 [E]    tokens charged so far
    steps: np.ndarray         # int32 [E]    actions applied so far (also the reveal/finish clock)
    done: np.ndarray          # bool  [E]    an answering action ended the episode
    answer: np.ndarray        # int32 [E]    committed answer id (-1: none / abstained)
    flags: np.ndarray         # int8  [E, M] OPENED | FINISHED | PRUNED | SAMPLED
    depth: np.ndarray         # int32 [E, M] intervals advanced (K_b + 1 once finished)
    ledger: np.ndarray        # int64 [E, M] tokens charged to the position
    latest: np.ndarray        # int32 [E, M] latest revealed answer id (-1: none)
    revealed_depth: np.ndarray  # int32 [E, M] depth at which `latest` was revealed
    stable: np.ndarray        # int32 [E, M] consecutive reveals that repeated the same answer (1 = new)
    reveal_time: np.ndarray   # int32 [E, M] `steps` value of the last reveal (-1: never)
    finish_time: np.ndarray   # int32 [E, M] `steps` value when the position finished (-1: never)


def make_state(num_envs: int, max_branches: int) -> EnvState:
    """Allocate an all-empty state for ``num_envs`` episodes of ``max_branches`` positions."""
    E, M = int(num_envs), int(max_branches)
    return EnvState(
        question=np.zeros(E, np.int32), order=np.zeros((E, M), np.int32),
        cursor=np.zeros(E, np.int32), cost=np.zeros(E, np.int64), steps=np.zeros(E, np.int32),
        done=np.zeros(E, np.bool_), answer=np.full(E, -1, np.int32),
        flags=np.zeros((E, M), np.int8), depth=np.zeros((E, M), np.int32),
        ledger=np.zeros((E, M), np.int64), latest=np.full((E, M), -1, np.int32),
        revealed_depth=np.zeros((E, M), np.int32), stable=np.zeros((E, M), np.int32),
        reveal_time=np.full((E, M), -1, np.int32), finish_time=np.full((E, M), -1, np.int32))


def pack_stores(stores) -> ReplayData:
    """Stack one or more :class:`~tts_gym.data.store.ReplayStore` along the question axis (padding N, K).

    A single store's writeable arrays are used as they are (no copy; read-only ones are copied, so
    the compiled kernels see one array type); ``probe_ids`` keeps the stores' compact dtype."""
    stores = list(stores)
    num_answers = np.concatenate([np.asarray(s.answer_tables.sizes()) for s in stores]).astype(np.int32)
    if len(stores) == 1:
        s = stores[0]

        def arr(name, dt=None):
            a = np.ascontiguousarray(getattr(s, name), dtype=dt)
            return a if a.flags.writeable else a.copy()
        return ReplayData(probe_ids=arr("probe_ids"), num_probes=arr("num_probes", np.int32),
                          branch_tokens=arr("branch_tokens", np.int64), final_ids=arr("final_ids", np.int32),
                          num_branches=arr("num_branches", np.int32),
                          probe_interval=arr("probe_interval", np.int32), gold_ids=arr("gold_ids", np.int32),
                          num_answers=num_answers)
    from tts_gym.data.store import stack_branch_arrays
    probe_ids, num_probes, branch_tokens, final_ids = stack_branch_arrays(
        stores, np.result_type(*[s.probe_ids.dtype for s in stores]))
    cat = lambda name, dt: np.ascontiguousarray(  # noqa: E731
        np.concatenate([np.asarray(getattr(s, name)) for s in stores]), dtype=dt)
    return ReplayData(probe_ids=probe_ids, num_probes=num_probes, branch_tokens=branch_tokens,
                      final_ids=final_ids, num_branches=cat("num_branches", np.int32),
                      probe_interval=cat("probe_interval", np.int32),
                      gold_ids=cat("gold_ids", np.int32), num_answers=num_answers)


# ---------------------------------------------------------------------------------------------
# single-episode kernels (called from the batched wrappers and from compiled policies)
# ---------------------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT, inline="always")
def ix(i):
    """``i`` as an unsigned array index. numba wraps negative indices around (``a[-1]``): a sign
    test, a load of the axis length and an add on every index of every array access, a large part
    of a step's instructions. The kernels never index with a negative value, and an unsigned index
    skips the wraparound. (uint32, not uint64: in arithmetic with signed integers it promotes to
    int64, where uint64 would promote to float64.)"""
    return np.uint32(i)


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT)
def reset_episode(state, e, question, perm):
    """Start episode ``e`` on ``question`` with branch order ``perm`` (stored index per position).

    Only the positions the previous episode opened (``p < cursor``) are cleared: no action touches
    a position before opening it, so the others are still as :func:`make_state` left them (this
    halves the reset of short episodes, e.g. ASC's ~27 steps over 64 positions)."""
    e = ix(e)
    M = state.order.shape[1]
    state.question[e] = question
    K = perm.shape[0] if perm.shape[0] < M else M
    for p in range(K):
        state.order[e, p] = perm[p]
    for p in range(K, M):
        state.order[e, p] = 0
    n = state.cursor[e]
    if n > M or n < 0:   # not a state these kernels produced: clear everything
        n = M
    for p in range(n):
        state.flags[e, p] = 0
        state.depth[e, p] = 0
        state.ledger[e, p] = 0
        state.latest[e, p] = -1
        state.revealed_depth[e, p] = 0
        state.stable[e, p] = 0
        state.reveal_time[e, p] = -1
        state.finish_time[e, p] = -1
    state.cursor[e] = 0
    state.cost[e] = 0
    state.steps[e] = 0
    state.done[e] = False
    state.answer[e] = -1


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT, inline="always")
def position_limit(state, data, params, e):
    """Positions an episode may open: ``min(max_branches, N_q)``."""
    n = data.num_branches[ix(state.question[ix(e)])]
    return params.max_branches if params.max_branches < n else n


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT, inline="always")
def _answer_at_depth(data, q, b, d):
    """Answer id visible at depth ``d >= 1`` of stored branch ``b``: probe ``d`` or, past them, the
    final (``q``, ``b`` unsigned)."""
    if d <= data.num_probes[q, b]:
        return data.probe_ids[q, b, ix(d - 1)]
    return data.final_ids[q, b]


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT, inline="always")
def _reveal(state, data, params, e, p, answer):
    """Position ``p`` of episode ``e`` (both unsigned) reveals ``answer``."""
    t = state.steps[e]
    stable = state.stable[e, p] + 1 if answer == state.latest[e, p] else 1
    state.stable[e, p] = stable
    state.latest[e, p] = answer
    state.revealed_depth[e, p] = state.depth[e, p]
    state.reveal_time[e, p] = t
    if params.probe_cost != 0:
        state.cost[e] += params.probe_cost
        state.ledger[e, p] += params.probe_cost


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT, inline="always")
def _advance(state, data, params, e, p):
    """The reference's private ``step(b)``: one interval, or the finishing step (``e``, ``p``
    unsigned). Returns the charge."""
    q = ix(state.question[e])
    b = ix(state.order[e, p])
    k = data.num_probes[q, b]
    pf = data.probe_interval[q]
    d = state.depth[e, p]
    if d < k:
        charge = np.int64(pf)
        d += 1
    else:
        # finishing step: the remainder of the trajectory beyond the K_b probed intervals
        charge = data.branch_tokens[q, b] - np.int64(k) * pf
        if charge < 0:
            charge = np.int64(0)
        d = k + 1
        state.flags[e, p] |= FINISHED
        state.finish_time[e, p] = state.steps[e]
    state.depth[e, p] = d
    state.cost[e] += charge
    state.ledger[e, p] += charge
    if params.fused:
        _reveal(state, data, params, e, p, _answer_at_depth(data, q, b, d))
    return charge


# ---- action kinds of decode_action: the global action ids themselves, then the per-position kinds
KIND_CONTINUE = NUM_GLOBAL_ACTIONS
KIND_PROBE = NUM_GLOBAL_ACTIONS + 1
KIND_PRUNE = NUM_GLOBAL_ACTIONS + 2
KIND_ANSWER_WITH = NUM_GLOBAL_ACTIONS + 3
KIND_INVALID = -1


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT, inline="always")
def decode_action(action, M):
    """``(kind, position)`` of an action id: ``kind`` is the id itself for the global actions
    (``BRANCH``, ``SAMPLE``, ``ANSWER``, ``ABSTAIN``; position -1), :data:`KIND_CONTINUE` ..
    :data:`KIND_ANSWER_WITH` for the per-position ones, :data:`KIND_INVALID` outside the space.
    Comparisons, not ``//`` and ``%``: a 64-bit division per step was the largest single cost of
    the compiled rollouts."""
    if action < 0:
        return KIND_INVALID, -1
    if action < NUM_GLOBAL_ACTIONS:
        return action, -1
    rel = action - NUM_GLOBAL_ACTIONS
    kind = KIND_CONTINUE
    while rel >= M and kind <= KIND_ANSWER_WITH:
        rel -= M
        kind += 1
    if kind > KIND_ANSWER_WITH:
        return KIND_INVALID, -1
    return kind, rel


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT, inline="always")
def _check_decoded(state, data, params, e, kind, p):
    """Result code of an action of ``kind`` at position ``p`` (see :func:`check_action`)."""
    e = ix(e)
    if kind == KIND_INVALID:
        return ERR_BAD_ACTION
    if state.done[e]:
        return ERR_DONE
    over_budget = params.token_budget > 0 and state.cost[e] >= params.token_budget
    if kind == BRANCH or kind == SAMPLE:
        if over_budget:
            return ERR_BUDGET
        if state.cursor[e] >= position_limit(state, data, params, e):
            return ERR_NO_BRANCH_LEFT
        return OK
    if kind == ANSWER or kind == ABSTAIN:
        return OK
    if p >= state.cursor[e]:
        return ERR_NOT_OPENED
    p = ix(p)
    if kind == KIND_ANSWER_WITH:
        return OK if state.latest[e, p] >= 0 else ERR_NO_ANSWER
    f = state.flags[e, p]
    if f & PRUNED:
        return ERR_PRUNED
    if kind == KIND_CONTINUE:
        if f & FINISHED:
            return ERR_FINISHED
        return ERR_BUDGET if over_budget else OK
    if kind == KIND_PROBE:
        if params.fused or state.revealed_depth[e, p] >= state.depth[e, p]:
            return ERR_NOTHING_TO_PROBE
        return ERR_BUDGET if (over_budget and params.probe_cost > 0) else OK
    # PRUNE: live positions only
    if f & FINISHED:
        return ERR_FINISHED
    return OK


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT)
def check_action(state, data, params, e, action):
    """Result code that :func:`step_episode` would return for ``action`` (0 = admissible)."""
    kind, p = decode_action(action, params.max_branches)
    return _check_decoded(state, data, params, e, kind, p)


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT)
def default_answer(state, e):
    """Default aggregator of ``ANSWER``: plurality of the latest revealed answers of opened, unpruned
    positions, scanned in opening order; ties go to the answer whose first occurrence is earliest
    (the reference's ``Counter.most_common`` rule). -1 when nothing is revealed."""
    best, best_count, best_first = -1, 0, 0
    n = state.cursor[e]
    for p in range(n):
        a = state.latest[e, p]
        if a < 0 or (state.flags[e, p] & PRUNED):
            continue
        # count this answer only at its first occurrence (O(n^2) worst case, n <= M, no allocation)
        seen = False
        for r in range(p):
            if state.latest[e, r] == a and not (state.flags[e, r] & PRUNED):
                seen = True
                break
        if seen:
            continue
        c = 0
        for r in range(p, n):
            if state.latest[e, r] == a and not (state.flags[e, r] & PRUNED):
                c += 1
        if c > best_count:
            best, best_count, best_first = a, c, p
    return best


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT, forceinline=True)
def step_episode(state, data, params, e, action):
    """The transition: apply ``action`` to episode ``e``. Returns ``(code, charge)``: ``charge`` = all
    tokens the action charged (including ``probe_cost`` of its reveal); ``code != 0`` leaves the
    state unchanged (see ``ERROR_MESSAGES``). Terminal actions set ``done`` and ``answer``.

    Every caller inlines it (``forceinline``): an out-of-line call passing the ``EnvState`` /
    ``ReplayData`` tuples marshals ~190 machine words, more than a step costs."""
    kind, p = decode_action(action, params.max_branches)
    code = _check_decoded(state, data, params, e, kind, p)
    if code != OK:
        return code, np.int64(0)
    e = ix(e)
    before = state.cost[e]
    if kind == KIND_CONTINUE:
        _advance(state, data, params, e, ix(p))
    elif kind == SAMPLE:
        n = state.cursor[e]
        state.cursor[e] = n + 1
        p = ix(n)
        q = ix(state.question[e])
        b = ix(state.order[e, p])
        tokens = data.branch_tokens[q, b]
        state.cost[e] += tokens
        state.ledger[e, p] += tokens
        state.flags[e, p] = OPENED | FINISHED | SAMPLED
        state.depth[e, p] = data.num_probes[q, b] + 1
        state.finish_time[e, p] = state.steps[e]
        _reveal(state, data, params, e, p, data.final_ids[q, b])
    elif kind == BRANCH:
        n = state.cursor[e]
        state.cursor[e] = n + 1
        p = ix(n)
        state.flags[e, p] = OPENED
        _advance(state, data, params, e, p)
    elif kind == KIND_PRUNE:
        state.flags[e, ix(p)] |= PRUNED
    elif kind == KIND_ANSWER_WITH:
        state.answer[e] = state.latest[e, ix(p)]
        state.done[e] = True
    elif kind == ANSWER:
        state.answer[e] = default_answer(state, e)
        state.done[e] = True
    elif kind == ABSTAIN:
        state.answer[e] = -1
        state.done[e] = True
    else:  # PROBE
        p = ix(p)
        _reveal(state, data, params, e, p, _answer_at_depth(data, ix(state.question[e]),
                                                            ix(state.order[e, p]),
                                                            state.depth[e, p]))
    state.steps[e] += 1
    return OK, state.cost[e] - before


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT, forceinline=True)
def env_step(state, data, params, e, action, gamma, dense, inv_scale, max_steps, penalty, elapsed):
    """The env's step of episode ``e``: the transition (:func:`step_episode`) and what the env
    reports about it -- the one definition of the reward and the truncation, used by the single env
    and the vector env alike.

    ``elapsed[e]`` counts the actions taken (inadmissible ones included); the episode is truncated
    when it reaches ``max_steps > 0`` without terminating. Rewards with cost weight ``gamma`` and
    ``inv_scale = 1 / token_scale``: dense ``-gamma * charge * inv_scale`` per step plus
    ``1{correct}`` at termination; sparse ``1{correct} - gamma * cost * inv_scale`` at termination
    (``-gamma * cost * inv_scale`` on truncation without termination), 0 otherwise. An inadmissible action changes no
    state and is rewarded ``-penalty``.

    Returns ``(code, charge, position, revealed, finished, terminated, truncated, correct, reward)``:
    ``position`` = the position opened or acted on (-1 for ``ANSWER``/``ABSTAIN`` and inadmissible
    actions), ``revealed`` = the answer id this step revealed there (-1: none), ``finished`` = that
    position is finished."""
    code, charge = step_episode(state, data, params, e, action)
    elapsed[e] += 1
    p = -1
    revealed = -1
    finished = False
    done = False
    correct = False
    if code != OK:
        reward = -penalty
    else:
        kind, p = decode_action(action, params.max_branches)
        if kind == BRANCH or kind == SAMPLE:
            p = state.cursor[e] - 1
        if p >= 0:
            if state.reveal_time[e, p] == state.steps[e] - 1:
                revealed = state.latest[e, p]
            finished = (state.flags[e, p] & FINISHED) != 0
        done = state.done[e]
        reward = -gamma * charge * inv_scale if dense else 0.0
        if done:
            correct = is_correct(state, data, e)
            if dense:
                reward += 1.0 if correct else 0.0
            else:
                reward = (1.0 if correct else 0.0) - gamma * state.cost[e] * inv_scale
    truncated = max_steps > 0 and elapsed[e] >= max_steps   # as Gymnasium's TimeLimit: also on a terminating step
    if truncated and not done and not dense:
        reward -= gamma * state.cost[e] * inv_scale
    return code, charge, p, revealed, finished, done, truncated, correct, reward


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT)
def action_mask_episode(state, data, params, e, out):
    """Write episode ``e``'s admissible-action mask into ``out`` (bool, length ``4 + 4M``).

    ``out[a]`` is ``check_action(state, data, params, e, a) == OK`` for every ``a``, computed in one
    pass over the positions instead of ``4 + 4M`` calls (the equality is a tested invariant)."""
    M = params.max_branches
    for a in range(out.shape[0]):
        out[a] = False
    if state.done[e]:
        return
    over_budget = params.token_budget > 0 and state.cost[e] >= params.token_budget
    can_open = (not over_budget) and state.cursor[e] < position_limit(state, data, params, e)
    out[BRANCH] = can_open
    out[SAMPLE] = can_open
    out[ANSWER] = True
    out[ABSTAIN] = True
    probe_blocked = params.fused or (over_budget and params.probe_cost > 0)
    n = state.cursor[e]
    if n > M:
        n = M
    for p in range(n):
        f = state.flags[e, p]
        out[NUM_GLOBAL_ACTIONS + 3 * M + p] = state.latest[e, p] >= 0
        if f & PRUNED:
            continue
        live = (f & FINISHED) == 0
        out[NUM_GLOBAL_ACTIONS + p] = live and not over_budget
        out[NUM_GLOBAL_ACTIONS + M + p] = (not probe_blocked) and state.revealed_depth[e, p] < state.depth[e, p]
        out[NUM_GLOBAL_ACTIONS + 2 * M + p] = live


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT)
def is_correct(state, data, e):
    """Whether episode ``e`` committed the gold answer (scoring only; never part of an observation)."""
    e = ix(e)
    g = data.gold_ids[ix(state.question[e])]
    return state.done[e] and g >= 0 and state.answer[e] == g


# ---------------------------------------------------------------------------------------------
# batched wrappers
# ---------------------------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT)
def reset_batch(state, questions, perms, env_ids):
    """Reset the episodes ``env_ids`` to ``questions[j]`` with orders ``perms[j]``."""
    for j in range(env_ids.shape[0]):
        reset_episode(state, env_ids[j], questions[j], perms[j])


@nb.njit(cache=True, nogil=True, _nrt=_NO_NRT)
def action_mask_batch(state, data, params, out):
    """Masks of every episode into ``out[E, 4 + 4M]``."""
    for e in range(out.shape[0]):
        action_mask_episode(state, data, params, e, out[e])


# cache entries also keyed on the compiled layer's sources (see tts_gym.core.numba_cache)
from tts_gym.core.numba_cache import bind_module_cache  # noqa: E402

bind_module_cache(globals())
