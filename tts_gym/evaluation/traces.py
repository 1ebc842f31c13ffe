"""Per-episode execution traces recorded by the compiled path, with no Python per step.

A trace is one row per action a policy applied (or attempted) in an episode, written into a
preallocated buffer ``[episodes, max_steps, fields]`` from inside the numba step loop. Each row holds
the action and what the policy saw right after it: the acted position, its depth and revealed answer,
the width (positions opened), live and finished counts, the cost so far, and the vote state (the
plurality of the latest revealed answers of opened, unpruned positions -- the env's ``ANSWER``
aggregator -- with its top-two counts). Answer ids are per-question intern ids
(:meth:`tts_gym.data.store.ReplayStore.answer`); the gold answer is never recorded.

How it is recorded. The compiled baselines (:mod:`tts_gym.policies.compiled`) are played by one
driver, :func:`tts_gym.policies.compiled.drive`, that takes the policy, the step function and the
reset function as arguments. A traced run passes recording versions of the env's step and reset
(:func:`traced_step_episode`, :func:`traced_reset_episode`: the env's own kernels, then a trace row)
and a :class:`TraceState` (every ``EnvState`` field plus the trace buffers) to the same driver and
policies; :data:`TRACED_ROLLOUTS` are those entry points, cached by numba like the untraced ones.
Each reset opens a trace row tagged with the episode's question and branch order (checked against
the episodes afterwards), and after each run the applied actions recorded must add up to the env's
``steps``. Nothing here changes the untraced fast path.

Use :func:`record_traces` (or ``tts_gym.evaluate(..., traces=True)``) on the episodes you want to
inspect; traces are for a few hundred episodes, not for full sweeps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numba as nb
import numpy as np

from tts_gym.core import kernels as K
from tts_gym.core.actions import BRANCH, SAMPLE, describe
from tts_gym.core.voting import vote_push
from tts_gym.policies import compiled as C

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


# ---- the recording step and reset, and the traced entry points -----------------------------------
# Passed to the one compiled driver (tts_gym.policies.compiled.drive) in place of the env's own
# reset_episode / step_episode; the policies and the driver are the untraced ones.

_INLINE = dict(nogil=True, _nrt=False, forceinline=True)


@nb.njit(**_INLINE)
def traced_reset_episode(state, e, question, perm):
    """:func:`tts_gym.core.kernels.reset_episode` that opens a new trace row and notes which episode
    it holds (question and branch order, checked against the episodes afterwards)."""
    K.reset_episode(state, e, question, perm)
    row = state.next_row[0]
    state.next_row[0] = row + 1
    state.trace_row[e] = row
    if row < state.trace_len.shape[0]:
        state.trace_len[row] = 0
        state.row_question[row] = question
        for p in range(state.order.shape[1]):
            state.row_order[row, p] = state.order[e, p]


@nb.njit(**_INLINE)
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
    kind, p = K.decode_action(action, M)
    if kind == BRANCH or kind == SAMPLE:  # the newly opened position (if applied)
        p = n - 1 if code == 0 else n
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


@nb.njit(**_INLINE)
def traced_step_episode(state, data, params, e, action):
    """:func:`tts_gym.core.kernels.step_episode` that also appends a trace row."""
    code, charge = K.step_episode(state, data, params, e, action)
    _record_step(state, e, action, code, charge, params.max_branches)
    return code, charge


_JIT = dict(cache=True, nogil=True, _nrt=False)


@nb.njit(**_JIT)
def traced_rollout_asc(data, state, slot, bounds, counter, table, questions, perms, tasks,
                       policy_params, iscratch, fscratch, acts, out_answer, out_cost, out_correct,
                       out_steps):
    C.drive(C.play_asc, traced_step_episode, traced_reset_episode, data, state, slot, bounds,
            counter, table, questions, perms, tasks, policy_params, iscratch, fscratch, acts,
            out_answer, out_cost, out_correct, out_steps)


@nb.njit(**_JIT)
def traced_rollout_esc(data, state, slot, bounds, counter, table, questions, perms, tasks,
                       policy_params, iscratch, fscratch, acts, out_answer, out_cost, out_correct,
                       out_steps):
    C.drive(C.play_esc, traced_step_episode, traced_reset_episode, data, state, slot, bounds,
            counter, table, questions, perms, tasks, policy_params, iscratch, fscratch, acts,
            out_answer, out_cost, out_correct, out_steps)


@nb.njit(**_JIT)
def traced_rollout_parallel_probe(data, state, slot, bounds, counter, table, questions, perms,
                                  tasks, policy_params, iscratch, fscratch, acts, out_answer,
                                  out_cost, out_correct, out_steps):
    C.drive(C.play_parallel_probe, traced_step_episode, traced_reset_episode, data, state, slot,
            bounds, counter, table, questions, perms, tasks, policy_params, iscratch, fscratch,
            acts, out_answer, out_cost, out_correct, out_steps)


@nb.njit(**_JIT)
def traced_rollout_cmc(data, state, slot, bounds, counter, table, questions, perms, tasks,
                       policy_params, iscratch, fscratch, acts, out_answer, out_cost, out_correct,
                       out_steps):
    C.drive(C.play_cmc, traced_step_episode, traced_reset_episode, data, state, slot, bounds,
            counter, table, questions, perms, tasks, policy_params, iscratch, fscratch, acts,
            out_answer, out_cost, out_correct, out_steps)


TRACED_ROLLOUTS = {"asc": traced_rollout_asc, "esc": traced_rollout_esc,
                   "parallel_probe": traced_rollout_parallel_probe, "cmc": traced_rollout_cmc}


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

    Each configuration is one serial run of the compiled driver with the recording step and reset
    (:data:`TRACED_ROLLOUTS`): the episodes are played in the runner's order, one trace row each."""
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
    tasks = C.episode_order(questions)
    for g in range(G):
        plan = C.plan_run(data, kernel, [], questions, perms, max_branches=max_branches, workers=1,
                          policy_params=policy_params[g:g + 1])
        st = make_trace_state(E, S, plan.M, A, slots=1)
        out = C.execute(plan, data, questions, perms, tasks, rollout=TRACED_ROLLOUTS[plan.kernel],
                        state=st, conf_variant=conf_variant)
        outs.append(out)
        M_used = plan.M   # the kernels may run with fewer positions than asked
        # one worker, one chunk: row r holds episode tasks[r]
        if int(st.next_row[0]) != E or not np.array_equal(st.row_question, questions[tasks]):
            raise RuntimeError(f"traced {kernel} rollout did not play every episode once, in order")
        rows = np.empty(E, np.int64)
        rows[tasks] = np.arange(E)
        buf[g] = st.trace[rows]
        length[g] = st.trace_len[rows]
        # every applied action must have been recorded
        applied = ((buf[g, :, :, F_CODE] == 0) & (np.arange(S) < length[g][:, None])).sum(1)
        full = length[g] <= S
        if not np.array_equal(applied[full], out["steps"][0][full]):
            raise RuntimeError(f"traced {kernel} rollout applied actions the recorder did not see")
    out = {k: np.concatenate([o[k] for o in outs]) if outs else np.zeros((0, E))
           for k in ("answer", "cost", "correct", "steps")}
    tr = Traces(buf, length, questions, np.asarray(data.gold_ids)[questions], M_used, tuple(labels),
                tuple(shape))
    return tr, out


# cache entries also keyed on the compiled layer's sources (see tts_gym.core.numba_cache)
from tts_gym.core.numba_cache import bind_module_cache  # noqa: E402

bind_module_cache(globals())
