"""Run AutoTTS-style controllers unchanged over tts_gym episodes.

An AutoTTS controller (the reference's ``LLMDesignedMethod``) is an object with
``solve(question) -> answer string | None`` that drives a *question object* through four calls:

* ``question.probe_new()`` -> ``BRANCH``; returns ``(answer, position, finished)``;
* ``question.probe_more(i)`` -> ``CONTINUE(i)``; returns ``(answer, finished)``;
* ``question.get_new_branch_final_answer()`` -> ``SAMPLE``; returns the final answer;
* ``question.get_seq_and_total_tokens()`` -> no action; returns ``(0, tokens charged so far)``
  (and ``get_cost_per_branch_active()``: the tokens charged to each opened position).

Answers are the exact strings of the store. When ``solve`` returns, its string is committed with
``ANSWER_WITH(p)`` for the lowest opened position ``p`` whose latest revealed answer equals it, or
``ABSTAIN`` when it returned ``None``. A string that no opened position currently shows cannot be
committed by the env: the episode abstains (scored wrong) and the outcome is flagged ``unmapped``.

Two question objects implement these calls; neither can reach the gold answer:

* :class:`~tts_gym.core.reference_question.ReferenceQuestion` -- over the branches of one episode
  as plain Python values (:class:`~tts_gym.core.reference_question.BranchTable`): every call is a
  few list operations and is appended to an action log.
  This is the fast path of every controller evaluation (the discovery sandbox, ``tts-gym eval
  --controller``, :class:`AutoTTSPolicy`): the log is then applied to the compiled kernels, which
  are the authority for costs and answers (the sandbox re-plays every log and compares; the
  policy compares the env's cost after every action), so a disagreement fails loudly instead of
  changing a number;
* :class:`ReplayQuestion` -- over a live env episode: each call is an ``env.step``
  (:func:`run_autotts_controller`), for envs with settings the reference does not have (token
  budgets, probe costs).

The methods have the semantics of the reference's *safe wrappers* (the way every reference
controller calls them): ``None`` instead of an exception when nothing is available (every position
opened; ``probe_more`` on a position that is not open). Pass ``raise_on_exhaustion=True`` to get
the raw reference exceptions instead (``ValueError`` from ``probe_new``, ``IndexError`` from the
other two), for controllers that wrap the calls themselves (the reference's own files do).

Deliberate differences to the reference's index quirks (``docs/replay-semantics.md``, "Index
quirks of advance"), because the env masks those actions; none of the five reference algorithms
reaches any of them:

* ``probe_more(i)`` on a **finished** position returns its final answer again, ``(final, True)``,
  **without an env step and without a charge**; the reference would re-charge the remainder
  ``max(0, T_b - K_b*pf)`` on each such call (often 0). These calls are counted in
  ``question.free_repeats``; ``strict=True`` raises ``ValueError`` instead.
* ``probe_more(i)`` for ``i >= cursor`` returns ``None`` (the reference accepted ``i == cursor < N``
  and advanced the unopened branch; ``i == N`` gave ``None`` through the safe wrapper), and for
  negative ``i`` returns ``None`` (the reference addressed a branch from the end of the order).
  ``strict=True`` raises ``ValueError`` for these.
"""
from __future__ import annotations

import operator
import queue
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from tts_gym.core import actions as A
from tts_gym.core.reference_question import BranchTable, ReferenceQuestion
from tts_gym.policies.base import Policy, PolicyError

__all__ = ["BranchTable", "ReferenceQuestion", "ReplayQuestion", "AutoTTSOutcome",
           "run_autotts_controller", "AutoTTSPolicy", "answer_string_action"]

_G = A.NUM_GLOBAL_ACTIONS


def answer_string_action(view, answer) -> tuple[int, bool]:
    """``(action, unmapped)`` committing the answer *string* ``answer`` in the episode of ``view``:
    ``ANSWER_WITH(p)`` for the lowest opened ``p`` whose latest revealed answer is ``answer``;
    ``ABSTAIN`` for ``None`` (``unmapped = False``) or for an answer no position shows
    (``unmapped = True``)."""
    if answer is None:
        return A.ABSTAIN, False
    if isinstance(answer, str):
        latest = view.latest
        for p in range(view.cursor):
            a = int(latest[p])
            if a >= 0 and view.answer_string(a) == answer:
                return A.answer_with_action(p, view.max_branches), False
    return A.ABSTAIN, True


# ------------------------------------------------------------------------------------------------
# the question object over a live env episode
# ------------------------------------------------------------------------------------------------

class ReplayQuestion:
    """The AutoTTS question object over one live env episode (see the module docstring).

    ``view`` is the episode's :class:`~tts_gym.envs.view.EpisodeView`; ``step(action)`` must apply the
    action to that episode and return once the view shows its effect (``env.step`` for
    :func:`run_autotts_controller`). The gold answer is not reachable from this object.
    """

    def __init__(self, view, step: Callable[[int], Any], *, strict: bool = False,
                 raise_on_exhaustion: bool = False) -> None:
        self._view = view
        self._step = step
        self._strict = bool(strict)
        self._raise = bool(raise_on_exhaustion)
        self._M = view.max_branches
        self.calls = 0           # question-method calls that became env steps
        self.free_repeats = 0    # probe_more calls on finished positions (answered without a step)

    @property
    def probe_freq(self) -> int:
        return self._view.probe_interval

    def probe_new(self):
        """Open the next branch and read its first probe: ``(answer, position, finished)``."""
        v = self._view
        p = v.cursor
        if p >= v.branch_limit:
            if self._raise:
                raise ValueError("no more branches to open")
            return None
        self._step(A.BRANCH)
        self.calls += 1
        return v.answer_string(int(v.latest[p])), p, v.is_finished(p)

    def probe_more(self, index):
        """Advance opened position ``index`` by one interval: ``(answer, finished)``."""
        v = self._view
        i = operator.index(index)
        if not (0 <= i < v.cursor):
            if self._strict:
                raise ValueError(f"probe_more({i}): position not opened (cursor={v.cursor}); the env "
                                 f"only advances opened positions 0 <= i < cursor")
            if self._raise and i >= v.branch_limit:
                raise IndexError(f"branch index {i} out of range")
            return None
        if v.is_finished(i):
            if self._strict:
                raise ValueError(f"probe_more({i}): branch already finished (the reference would "
                                 f"re-charge its remainder; the env forbids the action)")
            self.free_repeats += 1
            return v.answer_string(int(v.latest[i])), True
        if v.is_pruned(i):
            return None
        self._step(A.NUM_GLOBAL_ACTIONS + i)
        self.calls += 1
        return v.answer_string(int(v.latest[i])), v.is_finished(i)

    def get_new_branch_final_answer(self):
        """Read the next branch to completion (cost ``T_b``): its final answer."""
        v = self._view
        p = v.cursor
        if p >= v.branch_limit:
            if self._raise:
                raise IndexError("no more branches to read")
            return None
        self._step(A.SAMPLE)
        self.calls += 1
        return v.answer_string(int(v.latest[p]))

    def get_seq_and_total_tokens(self):
        """``(sequential tokens, total tokens)``; the first is the reference's stub, always 0."""
        return 0, self._view.cost

    def get_cost_per_branch_active(self):
        """Tokens charged to each opened position, in opening order."""
        return [int(x) for x in self._view.ledger[:self._view.cursor]]

    def __repr__(self) -> str:
        return f"ReplayQuestion(cursor={self._view.cursor}, cost={self._view.cost})"


@dataclass
class AutoTTSOutcome:
    """One episode played by an AutoTTS controller through the env."""
    answer: Any                 # what solve() returned (normally a string or None)
    answer_id: int              # committed answer id (-1: abstained)
    cost: int                   # tokens charged in the episode
    correct: bool | None        # from the env's terminal info when it reports it
    unmapped: bool              # solve() returned an answer the env could not commit
    steps: int                  # env steps taken, the answering step included
    free_repeats: int           # probe_more calls on finished positions (no step, no charge)
    total_reward: float = 0.0   # sum of the env rewards of the episode
    info: dict = field(default_factory=dict)   # the terminal step's info


def _terminal_info_correct(info) -> bool | None:
    if isinstance(info, dict) and "correct" in info:
        return bool(info["correct"])
    return None


def run_autotts_controller(env, controller, question: int | None = None,
                           shuffle_seed: int | None = None, *, strict: bool = False,
                           raise_on_exhaustion: bool = False, reset_options: dict | None = None
                           ) -> AutoTTSOutcome:
    """Play one episode of ``env`` with an AutoTTS-style ``controller`` (``solve(question)``).

    With ``question`` (and ``shuffle_seed``) given the env is reset to that reference episode
    (``env.reset(options={"question": q, "shuffle_seed": s})``); otherwise the current, freshly
    reset episode is used. Every question-object call becomes ``env.step`` (a
    :class:`ReplayQuestion`: the controller's ``solve`` drives the env directly); the returned
    string is committed as described in the module docstring.
    """
    if question is not None:
        options = dict(reset_options or {})
        options.update(question=int(question), shuffle_seed=int(shuffle_seed or 0))
        env.reset(options=options)
    view = env.unwrapped.episode
    total = [0.0]

    def step(action):
        _, reward, terminated, truncated, info = env.step(action)
        if info.get("invalid_action"):  # a "penalize"-mode env: a controller's mistake stops the run
            raise PolicyError(str(info.get("error")))
        total[0] += float(reward)
        if terminated or truncated:
            raise PolicyError(f"the episode ended on a question-object call (action "
                              f"{A.describe(action, view.max_branches)})")

    q = ReplayQuestion(view, step, strict=strict, raise_on_exhaustion=raise_on_exhaustion)
    answer = controller.solve(q)
    action, unmapped = answer_string_action(view, answer)
    answer_id = -1
    if action != A.ABSTAIN:
        answer_id = int(view.latest[action - A.NUM_GLOBAL_ACTIONS - 3 * view.max_branches])
    _, reward, terminated, truncated, info = env.step(action)
    total[0] += float(reward)
    return AutoTTSOutcome(answer=answer, answer_id=answer_id, cost=view.cost,
                          correct=_terminal_info_correct(info), unmapped=unmapped,
                          steps=view.steps, free_repeats=q.free_repeats,
                          total_reward=total[0], info=dict(info))


# ------------------------------------------------------------------------------------------------
# the controller as a Policy: solve() runs first, on the episode's branches; act() hands out its log
# ------------------------------------------------------------------------------------------------

class _SolveTimeout(BaseException):
    """Raised inside ``solve`` by the timer of :class:`AutoTTSPolicy` (a ``BaseException``: the
    controller's ``except Exception`` and the safe wrappers do not swallow it)."""


class _Cancelled(BaseException):
    """Raised inside an abandoned live ``solve`` (not an ``Exception``: the controller's handlers and
    the safe wrappers do not swallow it)."""


class _LiveSolve:
    """``controller.solve`` over a live episode (a model server answers each step, so nothing can be
    read ahead): ``solve`` runs in a worker thread on a :class:`ReplayQuestion` whose every call hands
    its action to the caller and waits until the caller has applied it. Strict hand-off: one of the
    two threads runs at a time."""

    def __init__(self, policy: "AutoTTSPolicy", view) -> None:
        self._to_main: queue.SimpleQueue = queue.SimpleQueue()
        self._to_worker: queue.SimpleQueue = queue.SimpleQueue()
        self.question = ReplayQuestion(view, self._handoff, strict=policy.strict,
                                       raise_on_exhaustion=policy.raise_on_exhaustion)
        self._thread = threading.Thread(target=self._work, args=(policy.controller,),
                                        name=f"autotts-{policy.name}", daemon=True)
        self._started = False

    def _handoff(self, action: int) -> None:
        self._to_main.put(("action", action))
        if self._to_worker.get() is None:
            raise _Cancelled()

    def _work(self, controller) -> None:
        try:
            answer = controller.solve(self.question)
        except _Cancelled:
            return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self._to_main.put(("error", exc))
            return
        self._to_main.put(("answer", answer))

    def next(self, timeout: float | None):
        """The controller's next call after the previous action was applied: ``("action", a)``,
        ``("answer", string)`` or ``("error", exception)``."""
        if self._started:
            self._to_worker.put(True)
        else:
            self._started = True
            self._thread.start()
        try:
            return self._to_main.get(timeout=timeout)
        except queue.Empty:
            self.cancel()
            return "timeout", None

    def cancel(self) -> None:
        if self._thread.is_alive():
            self._to_worker.put(None)
            self._thread.join(timeout=5.0)


class AutoTTSPolicy(Policy):
    """An AutoTTS controller as a :class:`~tts_gym.policies.base.Policy`.

    At the first ``act`` of an episode, ``controller.solve`` runs to completion on a
    :class:`ReferenceQuestion` over the episode's own branches and branch order (read from the
    view's replay tensors, which carry no gold ids), and its calls are recorded; each ``act`` then
    returns the next recorded action, the last one the answering action. Before handing out the
    answering action, ``act`` checks that the env charged exactly what the question object charged
    (:class:`PolicyError` otherwise; the env itself refuses an inadmissible action), so the replay
    tensors remain the authority.

    The env must have the reference's settings (fused reveals, free probes, no token budget): a
    controller written against the question object cannot see masks. Exceptions raised by the
    controller propagate from the first ``act``. ``timeout`` (seconds, ``None``: no limit) bounds one
    ``solve`` (a real-time timer; main thread only).

    On a live episode (``view.live``: a model server answers each step, see
    :mod:`tts_gym.online`) nothing can be read ahead, so ``solve`` runs in a worker thread on a
    :class:`ReplayQuestion` instead: each call hands its action to ``act`` and waits until the
    episode has applied it; ``timeout`` then bounds the wait for the controller's next call.

    Statistics of the last episode: ``last_answer``, ``last_unmapped``, ``last_free_repeats``.
    """

    requires_view = True

    def __init__(self, controller, name: str | None = None, *, strict: bool = False,
                 raise_on_exhaustion: bool = False, timeout: float | None = None) -> None:
        cfg = getattr(controller, "config", None)
        super().__init__(**(dict(cfg) if isinstance(cfg, dict) else {}))
        self.controller = controller
        self.name = name or str(getattr(controller, "NAME", type(controller).__name__))
        self.strict, self.raise_on_exhaustion = bool(strict), bool(raise_on_exhaustion)
        self.timeout = timeout
        self._tables: dict = {}
        self._live: _LiveSolve | None = None
        self._view = None
        self._plan: list | None = None
        self._cost = 0
        self._next = 0
        self.last_answer = None
        self.last_unmapped = False
        self.last_free_repeats = 0

    def _branch_table(self, view) -> BranchTable:
        data = view._data          # the view's copy of the replay tensors (gold ids blanked)
        hit = self._tables.get(id(data.probe_ids))
        if hit is None or hit[0] is not data.probe_ids:   # the array is kept: its id is not reused
            hit = self._tables[id(data.probe_ids)] = (data.probe_ids, BranchTable(data, view._tables))
        return hit[1]

    def reset(self, view) -> None:
        self.close()
        self._view = view
        self._plan = None
        self._next = 0
        self.last_answer, self.last_unmapped, self.last_free_repeats = None, False, 0

    def _solve(self, view) -> None:
        params = view._params
        if not params.fused or params.probe_cost != 0 or params.token_budget > 0:
            raise PolicyError(f"{self.name}: an AutoTTS controller needs the reference env settings "
                              f"(fused=True, probe_cost=0, no token_budget); use "
                              f"run_autotts_controller for other settings")
        if view.cursor != 0 or view.steps != 0:
            raise PolicyError(f"{self.name}: act() must start at the beginning of an episode")
        state, e = view._state, view._e
        q = int(state.question[e])
        question = self._branch_table(view).question(
            q, state.order[e], view.max_branches, strict=self.strict,
            raise_on_exhaustion=self.raise_on_exhaustion)
        answer = self._run_solve(question)
        _, _, unmapped = question.commit(answer)
        self.last_answer, self.last_unmapped = answer, unmapped
        self.last_free_repeats = question.free_repeats
        self._plan, self._cost = question.actions, question.cost

    def _run_solve(self, question):
        if not self.timeout or threading.current_thread() is not threading.main_thread():
            return self.controller.solve(question)

        def fire(signum, frame):
            raise _SolveTimeout()

        old = signal.signal(signal.SIGALRM, fire)
        signal.setitimer(signal.ITIMER_REAL, float(self.timeout))
        try:
            return self.controller.solve(question)
        except _SolveTimeout:
            raise TimeoutError(f"{self.name}: solve() took more than {self.timeout} s") from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    def _act_live(self, view) -> int:
        if self._live is None:
            if view.cursor != 0 or view.steps != 0:
                raise PolicyError(f"{self.name}: act() must start at the beginning of an episode")
            self._live = _LiveSolve(self, view)
        kind, payload = self._live.next(self.timeout)
        if kind == "action":
            return int(payload)
        live, self._live = self._live, None
        self._plan = []                          # the episode is over for this policy
        if kind == "timeout":
            raise TimeoutError(f"{self.name}: the controller made no call within {self.timeout} s")
        if kind == "error":
            raise payload
        action, unmapped = answer_string_action(view, payload)
        self.last_answer, self.last_unmapped = payload, unmapped
        self.last_free_repeats = live.question.free_repeats
        return action

    def act(self, observation, view) -> int:
        if self._view is None:
            raise PolicyError(f"{self.name}: act() called before reset()")
        if getattr(view, "live", False):
            if self._plan is not None:
                raise PolicyError(f"{self.name}: act() called after the episode ended")
            return self._act_live(view)
        if self._plan is None:
            self._solve(view)
        i = self._next
        if i >= len(self._plan):
            raise PolicyError(f"{self.name}: act() called after the episode ended")
        if i == len(self._plan) - 1 and view.cost != self._cost:
            raise PolicyError(f"{self.name}: the env charged {view.cost} tokens, the question "
                              f"object {self._cost} (replay mismatch)")
        self._next = i + 1
        return int(self._plan[i])

    def close(self) -> None:
        """Cancel the worker of an unfinished live episode (also done by the next ``reset``)."""
        live, self._live = self._live, None
        if live is not None:
            live.cancel()

    def __del__(self):  # never leave a blocked worker behind
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
