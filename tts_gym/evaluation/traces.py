"""Per-episode execution traces recorded by the compiled path, with no Python per step.

A trace is one row per action a policy applied (or attempted) in an episode, written into a
preallocated buffer ``[episodes, max_steps, fields]`` from inside the numba step loop. Each row holds
the action and what the policy saw right after it: the acted position, its depth and revealed answer,
the width (positions opened), live and finished counts, the cost so far, and the vote state (the
plurality of the latest revealed answers of opened, unpruned positions -- the env's ``ANSWER``
aggregator -- with its top-two counts). Answer ids are per-question intern ids
(:meth:`tts_gym.data.store.ReplayStore.answer`); the gold answer is never recorded.

How it is recorded (the hook). The compiled baselines (:mod:`tts_gym.policies.compiled`) act only
through the env kernels (``step_episode`` and ``reset_episode``) on an
:class:`~tts_gym.core.kernels.EnvState`, under the global names that module declares in its
``TRACE_HOOK`` table (e.g. ``_step``, its inlined copy of ``step_episode``). Here they are
*re-targeted*: every numba function of that module that reaches those names is re-jitted from its
own Python source with the names bound to recording wrappers, and a copy of ``run_compiled`` (with
the hook's ``rollouts`` and ``make_state`` globals rebound) is called with a state factory that
returns a :class:`TraceState` (every ``EnvState`` field plus the trace buffers). The table is checked
before use (each name is the kernel it claims to be, and no other global of the module aliases an
env kernel), and after each run the applied actions recorded must add up to the env's ``steps``, so
an env call that bypasses the hook is an error, not a silently incomplete trace. The policy logic, the
drivers and the argument preparation are those of the compiled path, unchanged; only the two kernel
entry points differ, and the wrappers call the original kernels. Each reset opens a trace row tagged with the episode's
question and branch order; rows are put back in episode order by that tag, so the order in which a
driver plays its episodes does not matter (one serial run per configuration). The re-targeted
functions are cached by numba under their own names (``traced_<digest>__<name>``, the digest
covering the recorder's, kernels' and voting sources), so only the first traced run of a policy
pays the compile. Nothing here changes the untraced fast path.

Use :func:`record_traces` (or ``tts_gym.evaluate(..., traces=True)``) on the episodes you want to
inspect; traces are for a few hundred episodes, not for full sweeps.
"""
from __future__ import annotations

import types
from dataclasses import dataclass
from typing import NamedTuple

import numba as nb
import numpy as np
from numba.core.registry import CPUDispatcher

from tts_gym.core import kernels as K
from tts_gym.core.actions import describe
from tts_gym.core.voting import vote_push

# ---- trace fields ------------------------------------------------------------------------------
FIELDS = ("action", "code", "position", "charge", "cost", "width", "live", "finished",
          "depth", "answer", "pos_finished", "vote", "vote_top1", "vote_top2", "vote_size")
F_ACTION, F_CODE, F_POSITION, F_CHARGE, F_COST, F_WIDTH, F_LIVE, F_FINISHED, F_DEPTH, F_ANSWER, \
    F_POS_FINISHED, F_VOTE, F_VOTE_TOP1, F_VOTE_TOP2, F_VOTE_SIZE = range(len(FIELDS))
NUM_FIELDS = len(FIELDS)
FIELD_DOCS = {
    "action": "action id (tts_gym.core.actions layout; see describe())",
    "code": "result code of step_episode (0 = applied; otherwise the state is unchanged)",
    "position": "position acted on (BRANCH/SAMPLE: the newly opened one); -1 for ANSWER/ABSTAIN",
    "charge": "tokens charged by this action",
    "cost": "tokens charged so far in the episode (after the action)",
    "width": "positions opened so far (cursor)",
    "live": "opened positions neither finished nor pruned",
    "finished": "opened positions whose final answer is revealed",
    "depth": "depth of the acted position after the action (intervals advanced)",
    "answer": "latest revealed answer id of the acted position (-1: none); committed id on a commit",
    "pos_finished": "1 if the acted position is finished",
    "vote": "plurality of the latest answers of opened, unpruned positions (-1: none)",
    "vote_top1": "its count",
    "vote_top2": "the runner-up's count",
    "vote_size": "number of voting positions",
}


class TraceState(NamedTuple):
    """:class:`tts_gym.core.kernels.EnvState` plus trace buffers (field names and order of EnvState first)."""
    question: np.ndarray
    order: np.ndarray
    cursor: np.ndarray
    cost: np.ndarray
    steps: np.ndarray
    done: np.ndarray
    answer: np.ndarray
    flags: np.ndarray
    depth: np.ndarray
    ledger: np.ndarray
    latest: np.ndarray
    revealed_depth: np.ndarray
    stable: np.ndarray
    reveal_time: np.ndarray
    finish_time: np.ndarray
    trace: np.ndarray        # int64 [T, S, F]
    trace_len: np.ndarray    # int64 [T]  actions attempted in episode row t (may exceed S: truncated)
    trace_row: np.ndarray    # int64 [W]  row of the episode the slot is playing
    next_row: np.ndarray     # int64 [1]  rows handed out so far (one per episode reset)
    row_question: np.ndarray  # int64 [T] question of each row's episode
    row_order: np.ndarray    # int32 [T, M] branch order of each row's episode (as reset saw it)
    vote_counts: np.ndarray  # int32 [W, A] scratch
    vote_first: np.ndarray   # int32 [W, A] scratch


assert TraceState._fields[:len(K.EnvState._fields)] == K.EnvState._fields


def make_trace_state(rows: int, max_steps: int, max_branches: int, max_answers: int,
                     slots: int = 1) -> TraceState:
    """A :class:`TraceState` with ``slots`` episode slots and trace rows for ``rows`` episodes."""
    base = K.make_state(slots, max_branches)
    return TraceState(*base, trace=np.zeros((rows, max_steps, NUM_FIELDS), np.int64),
                      trace_len=np.zeros(rows, np.int64), trace_row=np.full(slots, -1, np.int64),
                      next_row=np.zeros(1, np.int64), row_question=np.full(rows, -1, np.int64),
                      row_order=np.zeros((rows, max_branches), np.int32),
                      vote_counts=np.zeros((slots, max_answers), np.int32),
                      vote_first=np.zeros((slots, max_answers), np.int32))


# ---- the recording wrappers ------------------------------------------------------------------------

@nb.njit(cache=True, nogil=True)
def traced_reset_episode(state, e, question, perm):
    """:func:`tts_gym.core.kernels.reset_episode` that opens a new trace row and notes which episode
    it holds (question and branch order: the rows are matched to episodes afterwards, so the order
    in which a driver plays its episodes does not matter)."""
    K.reset_episode(state, e, question, perm)
    row = state.next_row[0]
    state.next_row[0] = row + 1
    state.trace_row[e] = row
    if row < state.trace_len.shape[0]:
        state.trace_len[row] = 0
        state.row_question[row] = question
        for p in range(state.order.shape[1]):
            state.row_order[row, p] = state.order[e, p]


@nb.njit(cache=True, nogil=True)
def _record_step(state, e, action, code, charge, M):
    row = state.trace_row[e]
    if row < 0 or row >= state.trace_len.shape[0]:
        return
    i = state.trace_len[row]
    state.trace_len[row] = i + 1
    if i >= state.trace.shape[1]:
        return  # truncated (trace_len keeps counting)
    out = state.trace[row, i]
    n = state.cursor[e]
    if action == 0 or action == 1:  # BRANCH / SAMPLE: the newly opened position (if applied)
        p = n - 1 if code == 0 else n
    elif action == 2 or action == 3:
        p = -1
    else:
        p = (action - 4) % M
    live = 0
    fin = 0
    counts = state.vote_counts[e]
    first = state.vote_first[e]
    w, t1, t2, size = -1, 0, 0, 0
    for j in range(n):
        f = state.flags[e, j]
        if f & K.FINISHED:
            fin += 1
        elif not (f & K.PRUNED):
            live += 1
        a = state.latest[e, j]
        if a >= 0 and not (f & K.PRUNED):
            w, t1, t2 = vote_push(counts, first, a, size, w, t1, t2)
            size += 1
    for j in range(n):
        a = state.latest[e, j]
        if a >= 0:
            counts[a] = 0
    out[F_ACTION] = action
    out[F_CODE] = code
    out[F_POSITION] = p
    out[F_CHARGE] = charge
    out[F_COST] = state.cost[e]
    out[F_WIDTH] = n
    out[F_LIVE] = live
    out[F_FINISHED] = fin
    if 0 <= p < M:
        out[F_DEPTH] = state.depth[e, p]
        out[F_ANSWER] = state.latest[e, p]
        out[F_POS_FINISHED] = 1 if (state.flags[e, p] & K.FINISHED) else 0
    else:
        out[F_DEPTH] = 0
        out[F_ANSWER] = state.answer[e] if state.done[e] else -1
        out[F_POS_FINISHED] = 0
    out[F_VOTE] = w
    out[F_VOTE_TOP1] = t1
    out[F_VOTE_TOP2] = t2
    out[F_VOTE_SIZE] = size


@nb.njit(cache=True, nogil=True)
def traced_step_episode(state, data, params, e, action):
    """:func:`tts_gym.core.kernels.step_episode` that also appends a trace row."""
    code, charge = K.step_episode(state, data, params, e, action)
    _record_step(state, e, action, code, charge, params.max_branches)
    return code, charge


# ---- re-targeting of the compiled policies ------------------------------------------------------

_TRACED: dict[str, CPUDispatcher] = {}


def _trace_hook(C) -> dict:
    """``C.TRACE_HOOK`` (see :mod:`tts_gym.policies.compiled`), checked against the module: each
    "step"/"reset" name is bound to that env kernel (or a re-jit of its source, like ``_step``), no
    other global of the module is one (calls through it would not be recorded), and ``run_compiled``
    reads the "rollouts" and "make_state" globals."""
    hook = C.TRACE_HOOK
    kinds = {"step": K.step_episode.py_func, "reset": K.reset_episode.py_func}
    for kind, pf in kinds.items():
        for n in hook[kind]:
            if getattr(getattr(C, n, None), "py_func", None) is not pf:
                raise RuntimeError(f"{C.__name__}.TRACE_HOOK[{kind!r}] names {n!r}, which is not "
                                   f"tts_gym.core.kernels.{pf.__name__} there")
    for n, f in vars(C).items():
        pf = getattr(f, "py_func", None)
        for kind, kpf in kinds.items():
            if pf is kpf and n not in hook[kind]:
                raise RuntimeError(f"{C.__name__}.{n} is tts_gym.core.kernels.{kpf.__name__} but is not in "
                                   f"TRACE_HOOK[{kind!r}]: calls through it would not be traced")
    names = C.run_compiled.__code__.co_names
    for key in ("rollouts", "make_state"):
        if hook[key] not in names:
            raise RuntimeError(f"{C.__name__}.run_compiled does not read TRACE_HOOK[{key!r}] = {hook[key]!r}")
    return hook


def _source_tag() -> str:
    """Digest of the sources the traced functions are built from. numba's cache only stamps the
    defining file, so the digest is part of the cached names: editing the recorder, the kernels or
    the voting helpers gives fresh cache entries instead of stale machine code."""
    import hashlib
    import sys

    from tts_gym.core import actions, voting
    from tts_gym.policies import common
    h = hashlib.sha1()
    for mod in (K, voting, actions, common, sys.modules[__name__]):
        with open(mod.__file__, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:8]


def _retarget(module, replacements: dict) -> dict:
    """Re-jit every numba function of ``module`` that (transitively) calls a name in ``replacements``,
    with those names bound to the replacements. Returns ``{name: new dispatcher}``."""
    funcs = {n: f for n, f in vars(module).items()
             if isinstance(f, CPUDispatcher) and getattr(f.py_func, "__module__", None) == module.__name__}
    todo = set(replacements)
    changed = True
    while changed:
        changed = False
        for n, f in funcs.items():
            if n not in todo and todo & set(f.py_func.__code__.co_names):
                todo.add(n)
                changed = True
    g = dict(vars(module))
    g.update(replacements)
    out = {}
    tag = _source_tag()
    for n in sorted(todo - set(replacements)):
        pf = funcs[n].py_func
        fn = types.FunctionType(pf.__code__, g, pf.__name__, pf.__defaults__, pf.__closure__)
        fn.__qualname__ = f"traced_{tag}__{pf.__qualname__}"
        fn.__module__ = module.__name__
        opts = {k: v for k, v in funcs[n].targetoptions.items() if k in ("nogil", "boundscheck", "_nrt")}
        out[n] = nb.njit(cache=True, **opts)(fn)   # serial: any ``parallel`` option is dropped
        g[n] = out[n]
    return out


def _traced_kernels() -> dict:
    if not _TRACED:
        from tts_gym.policies import compiled as C
        hook = _trace_hook(C)
        rep = {n: traced_step_episode for n in hook["step"]}
        rep.update({n: traced_reset_episode for n in hook["reset"]})
        new = _retarget(C, rep)
        rollouts = {}
        for kernel, disp in getattr(C, hook["rollouts"]).items():
            name = disp.py_func.__name__
            if name not in new:
                raise RuntimeError(f"compiled rollout {name} does not call the env kernels by any of "
                                   f"{tuple(rep)} (compiled.TRACE_HOOK); traces cannot hook it")
            rollouts[kernel] = new[name]
        _TRACED.update(rollouts)
    return _TRACED


def traced_run_compiled(make_trace_state_fn):
    """``tts_gym.policies.compiled.run_compiled`` with the trace-recording rollouts and a state
    factory that returns a :class:`TraceState` (everything else -- argument preparation, scratch
    buffers, output arrays -- is the compiled path's, unchanged). Call it with ``workers=1``."""
    from tts_gym.policies import compiled as C
    hook = _trace_hook(C)
    f = C.run_compiled
    g = dict(vars(C))
    g[hook["rollouts"]] = _traced_kernels()
    g[hook["make_state"]] = make_trace_state_fn
    fn = types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)
    fn.__kwdefaults__ = dict(f.__kwdefaults__ or {})
    return fn


# ---- Python side -----------------------------------------------------------------------------------

@dataclass
class Traces:
    """Recorded traces of ``G`` configurations x ``E`` episodes.

    ``buffer[g, j, s, f]`` is field ``f`` (:data:`FIELDS`) of step ``s`` of episode ``j`` under
    configuration ``g``; ``length[g, j]`` the number of actions attempted (rows beyond ``max_steps``
    are dropped: ``truncated``). ``questions`` / ``gold_ids`` identify the episodes for scoring
    (the gold is only used by the oracle helpers, never recorded by the policy).
    """
    buffer: np.ndarray        # int64 [G, E, S, F]
    length: np.ndarray        # int64 [G, E]
    questions: np.ndarray     # int32 [E]
    gold_ids: np.ndarray      # int32 [E] gold id of each episode's question
    max_branches: int         # M of the action layout the episodes ran with
    labels: tuple = ()
    shape: tuple = ()         # episode axes, e.g. (R, J) of the protocol

    fields = FIELDS

    @property
    def truncated(self) -> np.ndarray:
        return self.length > self.buffer.shape[2]

    def field(self, name: str) -> np.ndarray:
        """``[G, E, S]`` view of one field (entries past ``length`` are zero)."""
        return self.buffer[..., FIELDS.index(name)]

    def steps(self, g: int, j: int) -> list[dict]:
        """Episode ``(g, j)`` as a list of dicts (with the action's name)."""
        n = int(min(self.length[g, j], self.buffer.shape[2]))
        rows = []
        for s in range(n):
            r = {f: int(v) for f, v in zip(FIELDS, self.buffer[g, j, s])}
            r["name"] = describe(r["action"], self.max_branches)
            rows.append(r)
        return rows

    def position_history(self, g: int, j: int) -> dict[str, np.ndarray]:
        """Per-position state after every step of episode ``(g, j)``, rebuilt from the trace (only
        the acted position changes per step): ``depth`` / ``latest`` (answer id, -1 none) int
        ``[steps, width]``, ``finished`` / ``pruned`` bool ``[steps, width]``."""
        n = int(min(self.length[g, j], self.buffer.shape[2]))
        rows = self.buffer[g, j, :n]
        ok = rows[:, F_CODE] == 0
        pos = rows[:, F_POSITION]
        W = int(max(1, rows[:, F_WIDTH].max(initial=0)))
        depth = np.zeros((n, W), np.int64)
        latest = np.full((n, W), -1, np.int64)
        finished = np.zeros((n, W), np.bool_)
        pruned = np.zeros((n, W), np.bool_)
        M = self.max_branches
        for s in range(n):
            if s:
                depth[s], latest[s], finished[s], pruned[s] = depth[s - 1], latest[s - 1], finished[s - 1], pruned[s - 1]
            p = int(pos[s])
            a = int(rows[s, F_ACTION])
            if not ok[s] or not (0 <= p < W):
                continue
            if 4 + 2 * M <= a < 4 + 3 * M:          # PRUNE(p)
                pruned[s, p] = True
            elif a < 4 + 3 * M:                      # BRANCH / SAMPLE / CONTINUE / PROBE
                depth[s, p] = rows[s, F_DEPTH]
                latest[s, p] = rows[s, F_ANSWER]
                finished[s, p] = bool(rows[s, F_POS_FINISHED])
        return {"depth": depth, "latest": latest, "finished": finished, "pruned": pruned}

    def final_cost(self) -> np.ndarray:
        """Episode cost, ``[G, E]`` (reshaped to ``[G, *shape]`` when ``shape`` is set)."""
        n = np.minimum(self.length, self.buffer.shape[2])
        idx = np.maximum(n - 1, 0)
        cost = np.take_along_axis(self.buffer[..., F_COST], idx[..., None], axis=2)[..., 0]
        cost = np.where(n > 0, cost, 0)
        return self._shaped(cost)

    def first_correct_vote_cost(self) -> np.ndarray:
        """Cheapest cost so far at which the vote names the gold (-1: never), ``[G, E]``."""
        S = self.buffer.shape[2]
        valid = np.arange(S)[None, None, :] < np.minimum(self.length, S)[..., None]
        gold = self.gold_ids[None, :, None]
        hit = valid & (self.buffer[..., F_VOTE] == gold) & (gold >= 0) & (self.buffer[..., F_CODE] == 0)
        any_hit = hit.any(axis=2)
        first = hit.argmax(axis=2)
        cost = np.take_along_axis(self.buffer[..., F_COST], first[..., None], axis=2)[..., 0]
        return self._shaped(np.where(any_hit, cost, -1))

    def _shaped(self, a: np.ndarray) -> np.ndarray:
        if self.shape and int(np.prod(self.shape)) == a.shape[1]:
            return a.reshape((a.shape[0],) + tuple(self.shape))
        return a

    def render(self, g: int, j: int, answer_string=None, limit: int | None = 50) -> str:
        """Plain-text rendering of one episode's trace (``answer_string(id) -> str`` optional)."""
        out = [f"{'step':>4} {'action':<16} {'charge':>7} {'cost':>9} {'width':>5} {'live':>4} "
               f"{'depth':>5} {'answer':<12} {'vote':<12} {'t1':>3} {'t2':>3}"]
        name = (lambda a: str(a)) if answer_string is None else (lambda a: str(answer_string(a)))
        for s, r in enumerate(self.steps(g, j)):
            if limit is not None and s >= limit:
                out.append(f"... {int(self.length[g, j]) - s} more")
                break
            act = r["name"] + ("" if r["code"] == 0 else f" !{r['code']}")
            ans = name(r["answer"]) if r["answer"] >= 0 else "-"
            vote = name(r["vote"]) if r["vote"] >= 0 else "-"
            out.append(f"{s:>4} {act:<16} {r['charge']:>7} {r['cost']:>9} {r['width']:>5} {r['live']:>4} "
                       f"{r['depth']:>5} {ans[:12]:<12} {vote[:12]:<12} {r['vote_top1']:>3} {r['vote_top2']:>3}")
        return "\n".join(out)


def record_traces(data: K.ReplayData, kernel: str, policy_params: np.ndarray, questions, perms, *,
                  max_branches: int, max_steps: int = 4096, conf_variant: str = "exact",
                  labels=(), shape=()) -> tuple[Traces, dict]:
    """Run ``G`` configurations (rows of ``policy_params``, kernel layout) on ``E`` episodes with
    traces. Returns ``(traces, outcomes)``; ``outcomes`` has the same arrays as
    :func:`tts_gym.policies.compiled.run_compiled` (and equals them).

    Each configuration is one serial run of ``run_compiled`` with the recording kernels; every
    reset opens a trace row tagged with the episode's question and branch order, and the rows are
    then put in episode order by that tag (identical tags are identical, deterministic episodes)."""
    questions = np.ascontiguousarray(questions, np.int32)
    perms = np.ascontiguousarray(perms, np.int32)
    policy_params = np.ascontiguousarray(policy_params, np.float64)
    G, E = policy_params.shape[0], questions.shape[0]
    S = int(max_steps)
    A = int(max(1, data.num_answers.max(initial=1)))
    buf = np.zeros((G, E, S, NUM_FIELDS), np.int64)
    length = np.zeros((G, E), np.int64)
    outs = []
    M_used = int(max_branches)
    for g in range(G):
        holder = []

        def factory(slots, M):
            st = make_trace_state(E, S, int(M), A, slots=int(slots))
            holder.append(st)
            return st

        out = traced_run_compiled(factory)(data, kernel, [], questions, perms,
                                           max_branches=max_branches, workers=1,
                                           conf_variant=conf_variant,
                                           policy_params=policy_params[g:g + 1])
        outs.append(out)
        if not holder:
            continue
        st = holder[0]
        M_used = int(st.order.shape[1])   # the kernels may run with fewer positions than asked
        rows = _match_rows(st, questions, perms, M_used)
        buf[g] = st.trace[rows]
        length[g] = st.trace_len[rows]
        # every applied action must have been recorded (an env call bypassing the hook is not)
        applied = ((buf[g, :, :, F_CODE] == 0) & (np.arange(S) < length[g][:, None])).sum(1)
        full = length[g] <= S
        if not np.array_equal(applied[full], out["steps"][0][full]):
            raise RuntimeError(f"traced {kernel} rollout applied actions the recorder did not see: an env "
                               "call in tts_gym.policies.compiled bypasses its TRACE_HOOK")
    out = {k: np.concatenate([o[k] for o in outs]) if outs else np.zeros((0, E))
           for k in ("answer", "cost", "correct", "steps")}
    tr = Traces(buf, length, questions, np.asarray(data.gold_ids)[questions], M_used, tuple(labels),
                tuple(shape))
    return tr, out


def _match_rows(st: TraceState, questions, perms, M: int) -> np.ndarray:
    """Trace row of each episode ``j`` (its question and the first ``M`` positions of its order)."""
    n = int(min(st.next_row[0], st.trace_len.shape[0]))
    index = {}
    for r in range(n):
        index.setdefault((int(st.row_question[r]), st.row_order[r].tobytes()), r)
    order = np.zeros((len(questions), M), np.int32)
    k = min(M, perms.shape[1])
    order[:, :k] = perms[:, :k]
    rows = np.empty(len(questions), np.int64)
    for j in range(len(questions)):
        r = index.get((int(questions[j]), order[j].tobytes()))
        if r is None:
            raise RuntimeError(f"episode {j} was not played by the traced rollout (question "
                               f"{int(questions[j])}); the compiled driver changed how it resets episodes")
        rows[j] = r
    return rows


# cache entries also keyed on the compiled layer's sources (see tts_gym.core.numba_cache)
from tts_gym.core.numba_cache import bind_module_cache  # noqa: E402

bind_module_cache(globals())
