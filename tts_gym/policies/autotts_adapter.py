"""Run AutoTTS-style controllers unchanged over a tts_gym episode.

An AutoTTS controller (the reference's ``LLMDesignedMethod``) is an object with
``solve(question) -> answer string | None`` that drives a *question object* through four calls.
:class:`ReplayQuestion` is that object, backed by one env episode; each call becomes env actions:

* ``question.probe_new()`` -> ``BRANCH``; returns ``(answer, position, finished)``;
* ``question.probe_more(i)`` -> ``CONTINUE(i)``; returns ``(answer, finished)``;
* ``question.get_new_branch_final_answer()`` -> ``SAMPLE``; returns the final answer;
* ``question.get_seq_and_total_tokens()`` -> no action; returns ``(0, tokens charged so far)``.

Answers are the exact strings of the store. The methods have the semantics of the reference's
*safe wrappers* (the way every reference controller calls them): ``None`` instead of an exception
when nothing is available (every position opened; ``probe_more`` on a position that is not open).
Pass ``raise_on_exhaustion=True`` to get the raw reference exceptions instead (``ValueError`` from
``probe_new``, ``IndexError`` from the other two), for controllers that wrap the calls themselves.

When ``solve`` returns, its string is committed with ``ANSWER_WITH(p)`` for the lowest opened
position ``p`` whose latest revealed answer equals it, or ``ABSTAIN`` when it returned ``None``.
A string that no opened position currently shows (never revealed, or only an older probe of some
branch, or not a string) cannot be committed by the env: the episode abstains (scored wrong) and
the outcome is flagged ``unmapped`` (the reference would have scored the string itself).

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

Two ways to run a controller:

* :func:`run_autotts_controller` -- the simple, robust path: the question's methods call
  ``env.step`` themselves; one call plays one episode and returns an :class:`AutoTTSOutcome`;
* :class:`AutoTTSPolicy` -- the controller as a :class:`~tts_gym.policies.base.Policy` (so every
  evaluator accepts it): ``solve`` runs in a worker thread that hands each action to ``act`` and
  waits until the env has applied it (strict hand-off: only one thread runs at a time).
"""
from __future__ import annotations

import operator
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from tts_gym.core import actions as A
from tts_gym.policies.base import Policy, PolicyError

__all__ = ["ReplayQuestion", "AutoTTSOutcome", "run_autotts_controller", "AutoTTSPolicy",
           "answer_string_action"]


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


class ReplayQuestion:
    """The AutoTTS question object over one episode (see the module docstring).

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

    # -- public, gold-free metadata --------------------------------------------------------------
    @property
    def probe_freq(self) -> int:
        return self._view.probe_interval

    # -- the reference operations ----------------------------------------------------------------
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
    reset episode is used. Every question-object call becomes ``env.step``; the returned string is
    committed as described in the module docstring.
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
# the controller as a Policy (worker thread)
# ------------------------------------------------------------------------------------------------

class _Cancelled(BaseException):
    """Raised inside an abandoned worker (BaseException: controllers' ``except Exception`` and the
    safe wrappers do not swallow it)."""


_GO = object()
_CANCEL = object()


class AutoTTSPolicy(Policy):
    """An AutoTTS controller as a :class:`~tts_gym.policies.base.Policy`.

    ``reset(view)`` prepares a :class:`ReplayQuestion` for the episode; the first ``act`` starts
    ``controller.solve(question)`` in a worker thread. Each question-object call hands its action
    to ``act`` (which returns it to the caller's ``env.step``) and blocks until the next ``act``,
    when the action has been applied and the view shows its effect. When ``solve`` returns, ``act``
    returns the answering action. Exceptions raised by the controller are re-raised by ``act``.
    ``reset`` during an unfinished episode cancels the worker. ``timeout`` (seconds, ``None``: no
    limit) bounds the wait for the controller's next call.

    ``outcomes``-style statistics of the last episode: ``last_answer``, ``last_unmapped``,
    ``last_free_repeats``.
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
        self._thread: threading.Thread | None = None
        self._view = None
        self._question: ReplayQuestion | None = None
        self.last_answer = None
        self.last_unmapped = False
        self.last_free_repeats = 0

    # -- worker side ------------------------------------------------------------------------------
    def _worker_step(self, action: int) -> None:
        self._to_main.put(("action", action))
        msg = self._to_worker.get()
        if msg is _CANCEL:
            raise _Cancelled()

    def _worker(self, question: ReplayQuestion) -> None:
        try:
            answer = self.controller.solve(question)
        except _Cancelled:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._to_main.put(("error", exc))
            return
        self._to_main.put(("answer", answer))

    # -- main side --------------------------------------------------------------------------------
    def _cancel(self) -> None:
        t = self._thread
        self._thread = None
        if t is not None and t.is_alive():
            self._to_worker.put(_CANCEL)
            t.join(timeout=5.0)

    def reset(self, view) -> None:
        self._cancel()
        self._view = view
        self._to_main: queue.SimpleQueue = queue.SimpleQueue()
        self._to_worker: queue.SimpleQueue = queue.SimpleQueue()
        self._question = ReplayQuestion(view, self._worker_step, strict=self.strict,
                                        raise_on_exhaustion=self.raise_on_exhaustion)
        self._started = False
        self._finished = False
        self.last_answer, self.last_unmapped, self.last_free_repeats = None, False, 0

    def act(self, observation, view) -> int:
        if self._question is None or self._finished:
            raise PolicyError(f"{self.name}: act() called before reset() or after the episode ended")
        if not self._started:
            self._started = True
            self._thread = threading.Thread(target=self._worker, args=(self._question,),
                                            name=f"autotts-{self.name}", daemon=True)
            self._thread.start()
        else:
            self._to_worker.put(_GO)
        try:
            kind, payload = self._to_main.get(timeout=self.timeout)
        except queue.Empty:
            self._cancel()
            self._finished = True
            raise TimeoutError(f"{self.name}: controller made no call within {self.timeout} s") from None
        if kind == "action":
            return int(payload)
        self._finished = True
        self._thread = None
        if kind == "error":
            raise payload
        action, unmapped = answer_string_action(self._view, payload)
        self.last_answer, self.last_unmapped = payload, unmapped
        self.last_free_repeats = self._question.free_repeats
        return action

    def close(self) -> None:
        """Cancel a running worker (also done by the next ``reset``)."""
        self._cancel()

    def __del__(self):  # best effort: never leave a blocked worker behind
        try:
            self._cancel()
        except Exception:  # noqa: BLE001
            pass
