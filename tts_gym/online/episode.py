"""A live episode: one question played against an OpenAI-compatible server through the env's actions.

:class:`LiveEpisode` gives a policy the same :class:`~tts_gym.envs.view.EpisodeView` a replay
episode gives it, over the same kernel state (:class:`~tts_gym.core.kernels.EnvState`), and applies
each action with the same compiled transition (:func:`~tts_gym.core.kernels.step_episode`). What
differs is where the branch tensors come from: instead of a stored trajectory, position ``p`` is a
:class:`~tts_gym.collect.trajectory.Trajectory` sampled on demand, and the entries of the
one-question :class:`~tts_gym.core.kernels.ReplayData` that an action is about to read (probe
``d``, the probe count ``K``, the length ``T``, the final answer) are filled in from the server's
answers just before the kernel applies it:

==================  ==================================================================================
action              requests (cached per trajectory; every request carries its collector seed)
==================  ==================================================================================
``BRANCH``          the first Δ tokens of a new trajectory; fused: its probe at Δ (or, if the
                    trajectory already ended, its final answer)
``CONTINUE(i)``     the next Δ tokens of trajectory ``i``; fused: the probe at the new boundary, or the
                    final answer when this chunk ended the trajectory (the finishing step)
``PROBE(i)``        unfused mode: the probe at ``i``'s current depth (or its final answer)
``SAMPLE``          a new trajectory to its end and its final answer (no probes)
``PRUNE(i)``        none: the trajectory is no longer extended
``ANSWER...``       none
==================  ==================================================================================

Costs are therefore exactly the replay's (``docs/replay-semantics.md``, section 2): ``BRANCH`` and
``CONTINUE`` charge Δ for a chunk that came back full, the finishing step charges the last partial
chunk (``T - K·Δ``), ``SAMPLE`` charges ``T``. Answer-forcing requests (probes and forced finals)
are free in the replay (``probe_cost = 0``) and reported separately (``probe`` / ``final`` kinds of
:class:`~tts_gym.collect.client.Usage`). A store collected with the same
:class:`~tts_gym.collect.collector.CollectConfig` from a server that honours per-request seeds holds
the same trajectories, so replaying a policy on it gives the answers and costs of the live run.

Concurrency: a policy acts one action at a time, but its next actions are cheap to guess and the
requests are what costs. With ``prefetch`` the episode asks ahead, before the policy does, for
the next interval (and its probe) of every live branch and for the first interval (or, after a
``SAMPLE``, the whole trajectory) of the next ``lookahead`` unopened positions. Results are
cached, so prefetching changes what a policy sees or is charged in no way: only the wall time, and
the server's work on intervals the policy never reads (``speculative`` tokens, reported). The
client's ``concurrency`` bounds the requests in flight.
"""
from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np

from tts_gym.collect.client import CompletionsClient, Usage
from tts_gym.collect.collector import CollectConfig, Question
from tts_gym.collect.trajectory import Trajectory
from tts_gym.core import actions as A
from tts_gym.core import kernels as K
from tts_gym.envs.view import EpisodeView

__all__ = ["LiveActionError", "LiveEpisode"]

_LIVE_MASK = int(K.OPENED | K.FINISHED | K.PRUNED)
_OPENED = int(K.OPENED)


class LiveActionError(ValueError):
    """A policy chose an action that is not admissible in the live episode (as ``env.step`` with
    ``invalid_action="raise"``)."""


class LiveEpisode:
    """One question played live (see the module docstring).

    ``config``: the sampling configuration (its ``branches`` is the number of positions ``M``
    unless ``max_branches`` is given). ``branch_ids[p]``: the trajectory identity (the ``branch``
    of :func:`~tts_gym.collect.trajectory.request_seed`) at position ``p``; default ``p``. Pass the
    reference permutation of shuffle seed ``s`` to play the episode ``(question, s)`` of a store
    collected with ``config``. ``fused``, ``token_budget``: as in the env. ``prefetch``,
    ``lookahead``: see the module docstring; ``open_limit`` (the most positions the policy will
    open, when known) caps the prefetch of unopened positions. ``usage``: where this question's
    requests are counted.
    """

    def __init__(self, client: CompletionsClient, config: CollectConfig, question: Question, *,
                 max_branches: int | None = None, branch_ids=None, fused: bool = True,
                 token_budget: int | None = None, prefetch: bool = True, lookahead: int = 8,
                 open_limit: int | None = None, usage: Usage | None = None):
        if config.append_final_probe:
            raise ValueError("append_final_probe is a store convention, not a live sampling mode: "
                             "run live with append_final_probe=False")
        M = int(max_branches if max_branches is not None else config.branches)
        if M < 1:
            raise ValueError("max_branches must be >= 1")
        if branch_ids is None:
            branch_ids = np.arange(M)
        branch_ids = [int(b) for b in branch_ids]
        if len(branch_ids) < M or len(set(branch_ids[:M])) != M:
            raise ValueError(f"branch_ids must hold {M} distinct trajectory ids")
        self.client = client
        self.cfg = config
        self.question = question
        self.M = M
        self.branch_ids = branch_ids[:M]
        self.fused = bool(fused)
        self.prefetch = bool(prefetch)
        self.lookahead = max(0, int(lookahead))
        self.open_limit = M if open_limit is None else max(1, min(M, int(open_limit)))
        self.usage = usage if usage is not None else Usage()
        self.prompt = config.render_prompt(question.question)
        kcap = max(1, math.ceil(config.max_tokens / config.interval))
        capacity = M * (kcap + 1) + 1   # every answer a question can reveal
        self.data = K.ReplayData(
            probe_ids=np.full((1, M, kcap), -1, np.int32), num_probes=np.zeros((1, M), np.int32),
            branch_tokens=np.zeros((1, M), np.int64), final_ids=np.full((1, M), -1, np.int32),
            num_branches=np.array([M], np.int32), probe_interval=np.array([config.interval], np.int32),
            gold_ids=np.array([-1], np.int32), num_answers=np.array([capacity], np.int32))
        budget = int(token_budget) if token_budget else 0
        self.params = K.EnvParams(max_branches=M, fused=self.fused, probe_cost=0, token_budget=budget)
        self.state = K.make_state(1, M)
        K.reset_episode(self.state, 0, 0, np.arange(M, dtype=np.int32))
        self.answers: list[str] = []
        self._answer_ids: dict[str, int] = {}
        self.view = EpisodeView(self.state, self.data, self.params, 0, [self.answers], live=True)
        self.trajectories: dict[int, Trajectory] = {}
        self._fetches: dict[tuple, asyncio.Future] = {}
        self._open_mode: str | None = None   # "branch" / "sample": how the policy opens positions
        self.actions: list[int] = []
        self.revealed_forcing_tokens = 0     # answer-forcing tokens of the answers the policy was shown

    # -- state ---------------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return bool(self.state.done[0])

    @property
    def cost(self) -> int:
        return int(self.state.cost[0])

    @property
    def answer(self) -> str | None:
        """The committed answer string (``None``: none, or abstained)."""
        return self.view.answer_string(int(self.state.answer[0]))

    def trajectory(self, p: int) -> Trajectory:
        t = self.trajectories.get(p)
        if t is None:
            t = self.trajectories[p] = Trajectory(self.client, self.cfg, self.prompt, self.question.id,
                                                  self.branch_ids[p], self.usage)
        return t

    def _intern(self, s: str) -> int:
        i = self._answer_ids.get(s)
        if i is None:
            i = self._answer_ids[s] = len(self.answers)
            self.answers.append(s)
        return i

    # -- requests (network only; idempotent) ------------------------------------------------------------
    async def _advance_requests(self, p: int, d: int) -> None:
        """What advancing position ``p`` from depth ``d`` reads: chunk ``d`` and, fused, the answer
        then revealed."""
        t = self.trajectory(p)
        await t.ensure_chunks(d + 1)
        if self.fused:
            if t.boundaries >= d + 1:
                await t.probe(d + 1)
            else:
                await t.final()

    async def _full_requests(self, p: int) -> None:
        t = self.trajectory(p)
        await t.run_to_end()
        await t.final()

    async def _reveal_requests(self, p: int, d: int) -> None:
        t = self.trajectory(p)
        if d <= t.boundaries:
            await t.probe(d)
        else:
            await t.final()

    def _fetch(self, key: tuple) -> asyncio.Future:
        f = self._fetches.get(key)
        if f is None or (f.done() and (f.cancelled() or f.exception() is not None)):
            kind, p, d = key
            coro = (self._advance_requests(p, d) if kind == "advance" else
                    self._full_requests(p) if kind == "full" else self._reveal_requests(p, d))
            f = self._fetches[key] = asyncio.ensure_future(coro)
            f.add_done_callback(_consume_exception)
        return f

    def _schedule_prefetch(self) -> None:
        if not self.prefetch:
            return
        st, e = self.state, 0
        if st.done[e]:
            return
        n = int(st.cursor[e])
        over_budget = self.params.token_budget > 0 and st.cost[e] >= self.params.token_budget
        if over_budget:
            return
        for p in range(n):
            if (int(st.flags[e, p]) & _LIVE_MASK) == _OPENED:
                self._fetch(("advance", p, int(st.depth[e, p])))
        if self._open_mode is not None:
            for p in range(n, min(n + self.lookahead, self.open_limit)):
                self._fetch(("full", p, 0) if self._open_mode == "sample" else ("advance", p, 0))

    # -- applying results to the kernel's tensors --------------------------------------------------------
    def _apply_advance(self, p: int, d: int) -> None:
        t = self.trajectories[p]
        data = self.data
        if t.boundaries >= d + 1:          # chunk d came back full: an interval with a probe after it
            data.num_probes[0, p] = d + 1
            if self.fused:
                data.probe_ids[0, p, d] = self._reveal_probe(t, d + 1)
        else:                              # chunk d ended the trajectory: the finishing step
            data.num_probes[0, p] = t.boundaries
            data.branch_tokens[0, p] = t.tokens
            if self.fused:
                data.final_ids[0, p] = self._reveal_final(t)

    def _apply_full(self, p: int) -> None:
        t = self.trajectories[p]
        self.data.num_probes[0, p] = t.boundaries
        self.data.branch_tokens[0, p] = t.tokens
        self.data.final_ids[0, p] = self._reveal_final(t)

    def _apply_reveal(self, p: int, d: int) -> None:
        t = self.trajectories[p]
        if d <= t.boundaries:
            self.data.probe_ids[0, p, d - 1] = self._reveal_probe(t, d)
        else:
            self.data.final_ids[0, p] = self._reveal_final(t)

    def _reveal_probe(self, t: Trajectory, k: int) -> int:
        self.revealed_forcing_tokens += t.answer_cost(k)
        return self._intern(t.probe_task(k).result())

    def _reveal_final(self, t: Trajectory) -> int:
        self.revealed_forcing_tokens += t.answer_cost(None)
        return self._intern(t.final_task().result())

    # -- the step ----------------------------------------------------------------------------------------
    async def step(self, action: int) -> int:
        """Apply ``action`` (after the requests it needs); returns the tokens it charged."""
        st, data, params = self.state, self.data, self.params
        a = int(action)
        code = int(K.check_action(st, data, params, 0, a))
        if code != K.OK:
            raise LiveActionError(f"question {self.question.id}: action {A.describe(a, self.M)} is not admissible: "
                                  f"{K.ERROR_MESSAGES.get(code, f'code {code}')}")
        need: tuple | None = None
        apply = None
        if a == A.BRANCH:
            p = int(st.cursor[0])
            self._open_mode = "branch"
            need, apply = ("advance", p, 0), (lambda: self._apply_advance(p, 0))
        elif a == A.SAMPLE:
            p = int(st.cursor[0])
            self._open_mode = "sample"
            need, apply = ("full", p, 0), (lambda: self._apply_full(p))
        elif a >= A.NUM_GLOBAL_ACTIONS:
            kind, p = divmod(a - A.NUM_GLOBAL_ACTIONS, self.M)
            d = int(st.depth[0, p])
            if kind == 0:
                need, apply = ("advance", p, d), (lambda: self._apply_advance(p, d))
            elif kind == 1:
                need, apply = ("reveal", p, d), (lambda: self._apply_reveal(p, d))
            elif kind == 2:  # PRUNE: what was requested ahead for this branch will not be read
                f = self._fetches.get(("advance", p, d))
                if f is not None:
                    f.cancel()
        if need is not None:
            fut = self._fetch(need)       # first in the client's queue
            self._schedule_prefetch()
            await asyncio.shield(fut)
            fut.result()
            apply()
        code, charge = K.step_episode(st, data, params, 0, a)
        if int(code) != K.OK:  # pragma: no cover - check_action said it was admissible
            raise RuntimeError(f"question {self.question.id}: the kernel refused {A.describe(a, self.M)}")
        self.actions.append(a)
        if self.done:
            self.cancel_pending()
        else:
            self._schedule_prefetch()
        return int(charge)

    def cancel_pending(self, everything: bool = False) -> None:
        """Cancel the generation still in flight (prefetches the policy will not read); with
        ``everything``, the trajectories' answer requests too."""
        for f in self._fetches.values():
            f.cancel()
        if everything:
            for t in self.trajectories.values():
                t.cancel()

    async def play(self, policy, *, max_steps: int | None = None) -> str | None:
        """Run ``policy`` (a :class:`~tts_gym.policies.base.Policy` that reads the view) to its answer;
        returns the committed answer string."""
        view = self.view
        policy.reset(view)
        n = 0
        try:
            while not self.done:
                a = policy.act(None, view)
                await self.step(a)
                n += 1
                if max_steps is not None and n >= max_steps and not self.done:
                    raise LiveActionError(f"question {self.question.id}: {getattr(policy, 'name', policy)!r} "
                                          f"did not answer within {max_steps} steps")
        finally:
            if not self.done:
                self.cancel_pending()
                close = getattr(policy, "close", None)
                if close is not None:
                    close()
        return self.answer

    # -- what the episode sampled --------------------------------------------------------------------
    def opened(self) -> list[int]:
        return list(range(int(self.state.cursor[0])))

    def summary(self) -> dict[str, Any]:
        """Positions, flags and per-kind request counts of the episode (JSON-serialisable)."""
        st = self.state
        n = int(st.cursor[0])
        flags = st.flags[0, :n]
        return {
            "opened": n,
            "finished": int(np.count_nonzero(flags & K.FINISHED)),
            "pruned": int(np.count_nonzero(flags & K.PRUNED)),
            "sampled": int(np.count_nonzero(flags & K.SAMPLED)),
            "steps": int(st.steps[0]),
            "ledger": [int(x) for x in st.ledger[0, :n]],
        }

    def __repr__(self) -> str:
        return f"LiveEpisode(question={self.question.id!r}, cursor={int(self.state.cursor[0])}, cost={self.cost})"


def _consume_exception(f: asyncio.Future) -> None:
    # a prefetch nobody awaits must not log "exception was never retrieved"; whoever needs its
    # result awaits the same future and sees the exception
    if not f.cancelled():
        f.exception()
