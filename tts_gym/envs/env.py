r"""Test-time scaling of a reasoning LLM as a Gymnasium environment (``tts_gym/Replay-v0``).

## Description

A reasoning model has answered each question of a benchmark many times (``N = 128`` pre-sampled
*branches* per question), and every branch was probed every ``pf`` tokens (``pf = 500``) for the
answer it would give at that point. An episode replays one question: the agent decides how many
branches to open, how deep to read each one, which to prune, and when to stop and which answer to
commit. Reading costs tokens; a correct answer earns 1. The replay is exact: a controller acting
through this environment spends the same tokens and returns the same answers as the AutoTTS
reference implementation (``docs/replay-semantics.md``: costs of "Token accounting", episode order of
"Reference protocol"). Steps run in compiled numba kernels (:mod:`tts_gym.core.kernels`).

Branches are addressed by *position* ``i`` = their index in the episode's shuffled branch order
(also their opening order); at most ``M = max_branches`` positions are used.

## Action Space

``Discrete(4 + 4 * M)`` (:mod:`tts_gym.core.actions`). Every action of the space is accepted; in a
given state only some of them are *admissible* (the mask: ``action_masks()`` and
``info["action_mask"]``). By default an inadmissible action is a no-op with a penalty (see Rewards),
as in Gymnasium's Taxi; masked agents (sb3-contrib's ``MaskablePPO``) never take one.

| Num            | Action            | Effect (charge in tokens)                                                  |
|----------------|-------------------|----------------------------------------------------------------------------|
| 0              | ``BRANCH``        | open position ``cursor``, advance it one interval (``pf``); fused: reveal probe 1 |
| 1              | ``SAMPLE``        | open position ``cursor`` by a full read (``T_b``); reveals the final answer only |
| 2              | ``ANSWER``        | stop; commit the plurality of the latest answers of opened unpruned positions (ties: earliest first occurrence) |
| 3              | ``ABSTAIN``       | stop without an answer (scored wrong)                                      |
| 4 + i          | ``CONTINUE(i)``   | advance position ``i`` one interval (``pf``); after its ``K_b`` probes, the finishing step (``max(0, T_b - K_b pf)``) reaches the final answer; fused: reveal the new answer |
| 4 + M + i      | ``PROBE(i)``      | unfused mode only: reveal position ``i``'s answer at its current depth (``probe_cost``) |
| 4 + 2M + i     | ``PRUNE(i)``      | retire live position ``i`` (free): no more actions on it, out of the default vote |
| 4 + 3M + i     | ``ANSWER_WITH(i)``| stop; commit position ``i``'s latest revealed answer                      |

Admissibility (the mask): ``BRANCH``/``SAMPLE`` need ``cursor < min(M, N_q)``; ``CONTINUE(i)`` needs an
opened, unfinished, unpruned ``i``; ``PROBE(i)`` an opened unpruned ``i`` advanced past its last reveal
(never in fused mode); ``PRUNE(i)`` an opened live ``i``; ``ANSWER_WITH(i)`` an opened ``i`` with a
revealed answer. With ``token_budget``, once ``cost >= token_budget`` only ``ANSWER``,
``ANSWER_WITH`` and ``ABSTAIN`` remain (and free ``PROBE``). Every reveal costs ``probe_cost`` extra
tokens (0 by default, as in the reference).

## Observation Space

A flat ``Dict`` of float32 boxes (stable-baselines3 ``MultiInputPolicy``), invariant to relabeling
the answers; the gold answer never enters it (full table in :mod:`tts_gym.core.observation`):

| Key           | Shape       | Content                                                              |
|---------------|-------------|----------------------------------------------------------------------|
| ``positions`` | ``(M, 15)`` | per position: opened, live, finished, pruned, sampled, available, depth, revealed, unrevealed, share of its answer in the vote, agrees with plurality / runner-up, stability, share among finished answers, fresh reveal |
| ``globals``   | ``(15,)``   | width used, width available, cost, budget used, top-1 / top-2 vote shares, votes, clusters, finished / live / pruned counts, Beta-majority confidence of finished answers, top-1 finished share, ``gamma``, steps |

## Rewards

With cost weight ``gamma`` (``cost_weight``) and ``token_scale`` (default 100,000 tokens):

    return = 1{committed answer == gold} - gamma * cost / token_scale

* sparse (default): 0 on every step, the whole return on the terminating step (on truncation:
  ``- gamma * cost / token_scale``);
* ``dense_reward=True``: ``- gamma * charge / token_scale`` on each step, plus ``1{correct}`` on the
  terminating step -- the same return.

Answers are compared as exact strings (no normalisation); ``ABSTAIN`` and an empty vote are wrong.

An inadmissible action (default ``invalid_action="penalize"``) changes nothing -- no tokens, no
reveal, the same observation -- and is rewarded ``-invalid_action_penalty`` (0.1); ``info`` then has
``invalid_action=True`` and ``error``, the rule it broke. With ``invalid_action="raise"`` it raises a
``ValueError`` naming the action and the rule instead: what controllers and the built-in evaluators
use, so that a bug in a policy stops the run. ``gamma`` may be a ``(low, high)`` range drawn
uniformly per episode (gamma-conditioned RL); the episode's value is in ``obs["globals"][13]`` and
``info["cost_weight"]``.

## Starting State

``reset`` picks a question and a branch order. ``question_sampling="uniform"`` draws the question
uniformly over all questions of all stores; ``"sequential"`` walks episode ``k`` to question
``k mod Q`` (and, with reference permutations, shuffle seed ``k // Q``: the evaluation protocol).
``permutation="reference"`` uses the reference shuffle ``random.Random(s).shuffle`` with ``s`` drawn
from ``0 .. num_shuffle_seeds - 1``; ``"random"`` a uniform random permutation. The order is truncated
to ``max_branches``. ``reset(seed=...)`` makes the draw reproducible; ``reset(options={"question": q,
"shuffle_seed": s})`` selects an exact episode of the reference protocol (also accepted: an explicit
``"permutation"`` array, and ``"cost_weight"``). Nothing is opened and the cost is 0.

## Episode End

* Termination: ``ANSWER``, ``ANSWER_WITH(i)`` or ``ABSTAIN``. Then ``info`` holds ``correct``,
  ``answer`` (string, ``None`` if none), ``answer_id`` and ``tokens``.
* Truncation: once ``step_limit`` actions (inadmissible ones included) were taken, if a limit is
  set; then ``info`` holds ``correct=False``, ``answer=None``, ``answer_id=-1`` and ``tokens``, and
  the sparse reward is ``- gamma * cost / token_scale``. Masked policies always terminate without a
  limit: every admissible non-terminal action consumes a finite resource. There is no limit by
  default.

  The limit means the same whichever way it is asked for: ``TTSReplayEnv(step_limit=N)`` (or
  ``gym.make(..., step_limit=N)``), ``gym.make(..., max_episode_steps=N)`` -- Gymnasium then wraps
  the env in a ``TimeLimit``, which the env finds at ``reset`` and adopts, so that the truncating
  step has the env's reward, infos and observations rather than a bare ``truncated=True`` -- and
  ``gym.make_vec(..., max_episode_steps=N)`` in every vectorization mode. As with ``TimeLimit``,
  ``truncated`` is true on the ``N``-th step even when that step also terminates.

## Information

Every step's ``info``: ``action_mask`` (bool, length ``4 + 4M``), ``position`` (position opened or
addressed, -1 for ``ANSWER``/``ABSTAIN``), ``revealed_id``/``revealed`` (answer id and exact string
revealed by this step, -1/``None`` if none), ``finished`` (that position is finished), ``charge``
(tokens of this step), ``cost`` (episode total), ``cursor``, ``cost_weight`` and ``invalid_action``
(plus ``error`` when it is true).
The gold answer never appears in observations or infos; only ``correct`` after termination.

Code controllers read the raw episode state through ``env.unwrapped.episode`` (also
``env.unwrapped.raw_state()``), a live read-only :class:`tts_gym.envs.view.EpisodeView` (revealed answer
ids, depths, flags, ledger, cost) -- never the gold.

## Arguments

```python
import gymnasium as gym
import tts_gym
env = gym.make("tts_gym/Replay-v0", store=None, max_branches=64, cost_weight=0.0)
```

| Argument                 | Default       | Meaning                                                          |
|--------------------------|---------------|------------------------------------------------------------------|
| ``store``                | ``None``      | ``None`` (embedded synthetic store, or ``model``/``benchmark`` via :func:`tts_gym.data.resolve.resolve_stores`), a ``ReplayStore``, a ``"Model/benchmark"`` name, a path (``.h5``, AutoTTS JSON file or directory: all its stores), or a list of them (questions concatenated) |
| ``model``, ``benchmark`` | ``None``      | select a store inside a path / the data location                 |
| ``max_branches``         | 64            | ``M``: positions per episode                                     |
| ``fused``                | ``True``      | advancing also reveals the answer (the reference); ``False``: ``PROBE`` reveals |
| ``probe_cost``           | 0             | tokens charged per reveal                                        |
| ``token_budget``         | ``None``      | cost-incurring actions masked once ``cost >= token_budget``     |
| ``cost_weight``          | 0.0           | ``gamma``, or a ``(low, high)`` range drawn per episode          |
| ``token_scale``          | 100_000       | tokens per unit of reward                                        |
| ``dense_reward``         | ``False``     | per-step cost rewards (same return)                              |
| ``invalid_action``       | ``"penalize"`` | an inadmissible action is a penalized no-op; ``"raise"``: a ``ValueError`` naming the action and the rule |
| ``invalid_action_penalty`` | 0.1         | penalty of an inadmissible action in ``"penalize"`` mode         |
| ``question_sampling``    | ``"uniform"`` | or ``"sequential"``                                              |
| ``permutation``          | ``"reference"`` | or ``"random"``                                                |
| ``num_shuffle_seeds``    | 100           | reference shuffle seeds drawn from ``0 .. num_shuffle_seeds - 1`` |
| ``render_mode``          | ``None``      | ``"ansi"`` or ``"rgb_array"`` (:mod:`tts_gym.envs.render`)            |
| ``step_limit``           | ``None``      | truncation after this many steps (also accepted as ``max_episode_steps``) |

Actions must be integers (Python ``int``, a numpy integer, or a 0-d / one-element integer array);
floats, strings and booleans raise a ``TypeError`` rather than being rounded. Ids outside the space
and steps after the episode ended raise a ``ValueError`` in both modes.

## Copying and pickling

The env pickles and deep-copies (``copy.deepcopy``, ``pickle``, subprocess vector envs started with
``spawn``): the store tensors and the episode state travel, and the compiled kernel handles are
rebuilt on load, so a copy continues the same episode.

## Vectorized environment

``gymnasium.make_vec("tts_gym/Replay-v0", num_envs=E, vectorization_mode="vector_entry_point")``
gives :class:`tts_gym.envs.vector.TTSReplayVectorEnv`: ``E`` episodes stepped, observed and autoreset in
one compiled call per step (``autoreset_mode`` ``NEXT_STEP`` by default, ``SAME_STEP`` or ``DISABLED``;
stable-baselines3 via :mod:`tts_gym.envs.sb3`, over ``DISABLED``), with batched ``action_masks()``
and ``infos["action_mask"]``. ``"sync"`` and ``"async"`` (also with the ``spawn`` start method)
work as for any Gymnasium env, with the same rewards and infos.

## Version History

* v0: initial version (fused and unfused reveals, probe cost, token budget, gamma-conditioning);
  inadmissible actions are penalized no-ops by default; the step limit is shared with Gymnasium's
  ``TimeLimit``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numba as nb
import numpy as np
from gymnasium import spaces
from numba.core import types as nbt
from numba.experimental import structref

from tts_gym.core.actions import describe, num_actions
from tts_gym.core.kernels import (ERR_BAD_ACTION, ERR_DONE, ERROR_MESSAGES, EnvParams,
                                  action_mask_episode, check_action, env_step, make_state,
                                  pack_stores, reset_episode)
from tts_gym.core.observation import (G_COST_WEIGHT, ObsParams, confidence_table, make_buffers, make_obs_params,
                                 make_scratch, observation_space, observe_episode)
from tts_gym.core.orders import reference_permutation
from tts_gym.data.resolve import resolve_stores
from tts_gym.envs.view import EpisodeView

__all__ = ["TTSReplayEnv", "ReplaySetup", "compiled_entry", "action_id"]

INVALID_ACTION_MODES = ("raise", "penalize")
QUESTION_SAMPLING = ("uniform", "sequential")
PERMUTATIONS = ("reference", "random")


# ---------------------------------------------------------------------------------------------
# store resolution and the packed replay shared by the single and the vector env
# ---------------------------------------------------------------------------------------------

def _uniform_ints(rng: np.random.Generator, high: int, n: int) -> np.ndarray:
    """``n`` uniform integers in ``0 .. high - 1`` (``floor(U * high)``; ``Generator.integers`` costs
    ~10 us of overhead per call, too much for the autoreset path)."""
    return np.minimum((rng.random(n) * high).astype(np.int64), high - 1)


def _check_step_limit(step_limit, alias=None) -> int | None:
    """The step limit given as ``step_limit`` or ``max_episode_steps`` (``alias``): ``None`` or a
    positive integer."""
    if alias is not None:
        if step_limit is not None and int(step_limit) != int(alias):
            raise ValueError(f"step_limit={step_limit} and max_episode_steps={alias} disagree; give one")
        step_limit = alias
    if step_limit is None:
        return None
    if isinstance(step_limit, bool) or not isinstance(step_limit, (int, np.integer)) or int(step_limit) < 1:
        raise ValueError(f"step_limit (max_episode_steps) must be a positive integer or None, got {step_limit!r}")
    return int(step_limit)


def action_id(action, n_actions: int) -> int:
    """``action`` as a Python ``int``, refusing what is not an integer: a Python ``int``, a numpy
    integer, or a 0-d / one-element integer array (what agents and vector wrappers hand over).
    Floats, strings and booleans raise a ``TypeError`` -- rounding them would silently take another
    action. The range is checked by the caller (the kernels report out-of-space ids)."""
    if action.__class__ is int:
        return action
    if isinstance(action, np.integer):
        return int(action)
    if isinstance(action, np.ndarray) and action.dtype.kind in "iu" and action.size == 1 and action.ndim <= 1:
        return int(action.reshape(()))
    raise TypeError(f"action must be an integer id in 0..{n_actions - 1} (an int, a numpy integer or a "
                    f"one-element integer array), got {action!r} of type {type(action).__name__}")


_TIME_LIMIT_RESET = None


def _time_limit_around(env, depth: int = 16) -> int | None:
    """``max_episode_steps`` of a Gymnasium ``TimeLimit`` whose ``reset`` is (through other
    wrappers) calling ``env.reset`` right now, else ``None``.

    ``gymnasium.make(..., max_episode_steps=N)`` keeps ``N`` for its ``TimeLimit`` wrapper and never
    passes it to the env; the env then learns it here, from the call stack of its own ``reset``, so
    that it truncates with its own reward, infos and observation on the very step the wrapper does."""
    global _TIME_LIMIT_RESET
    if _TIME_LIMIT_RESET is None:
        from gymnasium.wrappers import TimeLimit
        _TIME_LIMIT_RESET = TimeLimit.reset.__code__
    code = _TIME_LIMIT_RESET
    f = sys._getframe(2)
    while f is not None and depth > 0:
        if f.f_code is code:
            wrapper = f.f_locals.get("self")
            if getattr(wrapper, "unwrapped", None) is env:
                n = getattr(wrapper, "_max_episode_steps", None)
                return int(n) if n else None
        f = f.f_back
        depth -= 1
    return None


def _check_cost_weight(cost_weight) -> tuple[float, float]:
    if isinstance(cost_weight, (tuple, list, np.ndarray)):
        if len(cost_weight) != 2:
            raise ValueError(f"cost_weight range must be (low, high), got {cost_weight!r}")
        lo, hi = float(cost_weight[0]), float(cost_weight[1])
    else:
        lo = hi = float(cost_weight)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi < lo:
        raise ValueError(f"cost_weight must be >= 0 (or a range 0 <= low <= high), got {cost_weight!r}")
    return lo, hi


class ReplaySetup:
    """Everything an env needs that does not change between episodes: the packed stores, kernel
    parameters, observation normalisers and the episode sampler. Shared by :class:`TTSReplayEnv`
    and :class:`tts_gym.envs.vector.TTSReplayVectorEnv` so both draw episodes the same way."""

    def __init__(self, store=None, model=None, benchmark=None, *, max_branches=64, fused=True,
                 probe_cost=0, token_budget=None, cost_weight=0.0, token_scale=100_000,
                 dense_reward=False, invalid_action="penalize", invalid_action_penalty=0.1,
                 question_sampling="uniform", permutation="reference", num_shuffle_seeds=100,
                 max_episode_steps=None):
        if int(max_branches) < 1:
            raise ValueError(f"max_branches must be >= 1, got {max_branches}")
        if invalid_action not in INVALID_ACTION_MODES:
            raise ValueError(f"invalid_action must be one of {INVALID_ACTION_MODES}, got {invalid_action!r}")
        if question_sampling not in QUESTION_SAMPLING:
            raise ValueError(f"question_sampling must be one of {QUESTION_SAMPLING}, got {question_sampling!r}")
        if permutation not in PERMUTATIONS:
            raise ValueError(f"permutation must be one of {PERMUTATIONS}, got {permutation!r}")
        if int(probe_cost) < 0:
            raise ValueError(f"probe_cost must be >= 0, got {probe_cost}")
        if token_budget is not None and int(token_budget) <= 0:
            raise ValueError(f"token_budget must be > 0 or None, got {token_budget}")
        if not float(token_scale) > 0:
            raise ValueError(f"token_scale must be > 0, got {token_scale}")
        if int(num_shuffle_seeds) < 1:
            raise ValueError(f"num_shuffle_seeds must be >= 1, got {num_shuffle_seeds}")
        max_episode_steps = _check_step_limit(max_episode_steps)
        self.stores = resolve_stores(store, model, benchmark)
        self.data = pack_stores(self.stores)
        self.M = M = int(max_branches)
        self.params = EnvParams(max_branches=M, fused=bool(fused), probe_cost=int(probe_cost),
                                token_budget=int(token_budget) if token_budget else 0)
        self.max_episode_steps = int(max_episode_steps) if max_episode_steps else 0
        self.oparams: ObsParams = make_obs_params(self.data, self.params,
                                                  max_episode_steps=max_episode_steps)
        self.invalid_action = invalid_action
        self.conf = confidence_table()
        self.gamma_low, self.gamma_high = _check_cost_weight(cost_weight)
        self.token_scale = float(token_scale)
        self.dense_reward = bool(dense_reward)
        self.raise_invalid = invalid_action == "raise"
        self.invalid_action_penalty = float(invalid_action_penalty)
        self.question_sampling = question_sampling
        self.permutation = permutation
        self.num_shuffle_seeds = int(num_shuffle_seeds)
        # per packed question: answer tables, store names
        self.answer_tables = tuple(t for s in self.stores for t in s.answer_tables)
        self._gold = tuple(g for s in self.stores for g in s.gold_answers)  # scoring/rendering only
        self.store_names = tuple(s.name for s in self.stores)
        self.question_store = np.concatenate(
            [np.full(s.num_questions, k, np.int32) for k, s in enumerate(self.stores)])
        self.question_offset = np.cumsum([0] + [s.num_questions for s in self.stores])[:-1]
        self.Q = int(self.data.num_branches.shape[0])
        if self.Q == 0:
            raise ValueError("the stores hold no question")
        # flat answer-string table for vectorised lookups (object array) and its offsets
        sizes = np.array([len(t) for t in self.answer_tables], np.int64)
        self.answer_offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        flat = np.empty(int(sizes.sum()) + 1, dtype=object)
        flat[:-1] = [a for t in self.answer_tables for a in t]
        flat[-1] = None
        self.flat_answers = flat
        # reference permutations: one [S, M] table per distinct branch count N_q
        nvals, nidx = np.unique(self.data.num_branches, return_inverse=True)
        self.n_values = nvals.astype(np.int64)
        self.n_index = nidx.astype(np.int32).reshape(-1)
        S = self.num_shuffle_seeds if permutation == "reference" else 0
        table = np.zeros((len(nvals), S, M), np.int32)
        for k, n in enumerate(nvals.tolist()):
            for s in range(S):
                table[k, s] = self._prefix(reference_permutation(s, n))
        self.perm_table = table
        self.observation_space = observation_space(M, self.gamma_high)
        self.action_space = spaces.Discrete(num_actions(M))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("conf")  # the shared read-only table: a writable copy would be another numba type
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.conf = confidence_table()

    # -- helpers -----------------------------------------------------------------------------------
    def set_step_limit(self, steps: int) -> None:
        """Truncate after ``steps`` actions (0: no limit); the observation's step feature is
        normalised by it, as when the limit is given at construction."""
        steps = int(steps)
        self.max_episode_steps = steps
        self.oparams = make_obs_params(self.data, self.params, max_episode_steps=steps or None)

    def _prefix(self, perm) -> np.ndarray:
        out = np.zeros(self.M, np.int32)
        k = min(self.M, len(perm))
        out[:k] = np.asarray(perm[:k], dtype=np.int32)
        return out

    def store_question(self, q: int) -> tuple[str, int]:
        """``(store name, question index in that store)`` of packed question ``q``."""
        k = int(self.question_store[q])
        return self.store_names[k], int(q - self.question_offset[k])

    def gold_answer(self, q: int) -> str:
        """Scoring/rendering only: the gold string of packed question ``q`` (never observed)."""
        return self._gold[q]

    def draw(self, rng: np.random.Generator, n: int, counter: int, questions=None, shuffle_seeds=None,
             permutations=None, cost_weights=None):
        """Draw ``n`` episodes: ``(questions[n], shuffle_seeds[n] (-1: random order), perms[n, M],
        gammas[n])``. ``counter`` numbers the episodes for sequential sampling. Vectorised."""
        Q, S = self.Q, self.num_shuffle_seeds
        if questions is None and shuffle_seeds is None and permutations is None and cost_weights is None \
                and self.permutation == "reference":
            # the autoreset path: a handful of numpy calls
            if self.question_sampling == "sequential":
                k = counter + np.arange(n, dtype=np.int64)
                q, seeds = (k % Q).astype(np.int32), (k // Q) % S
            else:
                q = _uniform_ints(rng, Q, n).astype(np.int32)
                seeds = _uniform_ints(rng, S, n)
            if self.gamma_low == self.gamma_high:
                g = np.zeros(n) + self.gamma_low
            else:
                g = rng.uniform(self.gamma_low, self.gamma_high, size=n)
            return q, seeds, self.perm_table[self.n_index[q], seeds], g
        k = counter + np.arange(n, dtype=np.int64)
        if questions is None:
            if self.question_sampling == "sequential":
                q = (k % Q).astype(np.int32)
            else:
                q = _uniform_ints(rng, Q, n).astype(np.int32)
        else:
            q = np.broadcast_to(np.asarray(questions, dtype=np.int64), (n,)).astype(np.int32)
            if q.min() < 0 or q.max() >= Q:
                raise ValueError(f"question must be in 0..{Q - 1}, got {questions!r}")
        if permutations is not None:
            perms_in = np.asarray(permutations)
            if perms_in.ndim == 1:
                perms_in = np.broadcast_to(perms_in, (n, perms_in.shape[0]))
            perms = np.zeros((n, self.M), np.int32)
            for j in range(n):  # explicit orders: validate each (options path, not the step path)
                nq = int(self.data.num_branches[q[j]])
                row = np.asarray(perms_in[j], dtype=np.int64)
                if len(row) < min(nq, self.M) or np.any(row < 0) or np.any(row >= nq) \
                        or len(np.unique(row[: min(nq, self.M)])) != min(nq, self.M):
                    raise ValueError(f"permutation must list at least min(M, N_q) = {min(nq, self.M)} distinct "
                                     f"branch indices in 0..{nq - 1}")
                perms[j] = self._prefix(row)
            seeds = np.full(n, -1, np.int64)
        elif shuffle_seeds is not None or self.permutation == "reference":
            if shuffle_seeds is None:
                if self.question_sampling == "sequential":
                    seeds = (k // Q) % S
                else:
                    seeds = _uniform_ints(rng, S, n)
            else:
                seeds = np.broadcast_to(np.asarray(shuffle_seeds, dtype=np.int64), (n,)).copy()
                if seeds.min() < 0:
                    raise ValueError(f"shuffle_seed must be >= 0, got {shuffle_seeds!r}")
            ni = self.n_index[q]
            if self.perm_table.shape[1] and seeds.max() < self.perm_table.shape[1]:
                perms = self.perm_table[ni, seeds]
            else:
                perms = np.stack([self._prefix(reference_permutation(int(s), int(self.n_values[i])))
                                  for s, i in zip(seeds, ni)])
        else:
            nq = self.data.num_branches[q].astype(np.int64)
            N = int(self.data.num_branches.max())
            keys = rng.random((n, N))
            keys[np.arange(N)[None, :] >= nq[:, None]] = 2.0  # padding branches sort last
            order = np.argsort(keys, axis=1, kind="stable")[:, : self.M].astype(np.int32)
            perms = np.zeros((n, self.M), np.int32)
            perms[:, : order.shape[1]] = order
            seeds = np.full(n, -1, np.int64)
        if cost_weights is not None:
            g = np.broadcast_to(np.asarray(cost_weights, dtype=np.float64), (n,)).copy()
            if np.any(g < 0) or not np.all(np.isfinite(g)):
                raise ValueError(f"cost_weight must be finite and >= 0, got {cost_weights!r}")
            bound = float(self.observation_space["globals"].high[G_COST_WEIGHT])
            if np.any(g > bound):
                raise ValueError(f"cost_weight above the observation bound {bound}; construct the env "
                                 "with a cost_weight range that covers it")
        elif self.gamma_low == self.gamma_high:
            g = np.full(n, self.gamma_low)
        else:
            g = rng.uniform(self.gamma_low, self.gamma_high, size=n)
        return q, seeds, np.ascontiguousarray(perms, dtype=np.int32), g


# ---------------------------------------------------------------------------------------------
# single-env hot path: one compiled call per step, state held in a numba StructRef
# ---------------------------------------------------------------------------------------------

@structref.register
class _CoreType(nbt.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, nbt.unliteral(typ)) for name, typ in fields)


class _Core(structref.StructRefProxy):
    """Opaque handle on one env's kernel state and buffers (fast to pass to compiled code)."""


structref.define_proxy(_Core, _CoreType, ["state", "data", "params", "oparams", "conf", "gammas",
                                          "pos", "glob", "mask", "scratch", "elapsed"])


@nb.njit(cache=True)
def _make_core(state, data, params, oparams, conf, gammas, pos, glob, mask, scratch, elapsed):
    return _Core(state, data, params, oparams, conf, gammas, pos, glob, mask, scratch, elapsed)


@nb.njit(cache=True, nogil=True)
def _core_reset(core, question, perm, gamma):
    state = core.state
    reset_episode(state, 0, question, perm)
    core.gammas[0] = gamma
    core.elapsed[0] = 0
    observe_episode(state, core.data, core.params, core.oparams, core.conf, gamma, 0, core.pos,
                    core.glob, core.scratch, True)
    action_mask_episode(state, core.data, core.params, 0, core.mask)


@nb.njit(cache=True, nogil=True)
def _core_step(core, action, raise_mode, penalty, dense, inv_scale, max_steps):
    """The env's step (:func:`tts_gym.core.kernels.env_step`), then observe and mask. Returns
    ``(stepped, code, charge, position, revealed_id, finished, terminated, truncated, correct, reward,
    answer_id, cost, cursor)``; ``stepped`` is False (and nothing changed) for an action that must
    raise: out of the space, after the end, or inadmissible in raise mode."""
    state = core.state
    data = core.data
    params = core.params
    code = check_action(state, data, params, 0, action)
    if code != 0 and (raise_mode or code == ERR_BAD_ACTION or code == ERR_DONE):
        return (False, code, np.int64(0), -1, -1, False, False, False, False, 0.0, -1,
                state.cost[0], state.cursor[0])
    code, charge, p, revealed, finished, done, truncated, correct, reward = env_step(
        state, data, params, 0, action, core.gammas[0], dense, inv_scale, max_steps, penalty,
        core.elapsed)
    if code == 0:
        observe_episode(state, data, params, core.oparams, core.conf, core.gammas[0], 0, core.pos,
                        core.glob, core.scratch, False)
        action_mask_episode(state, data, params, 0, core.mask)
    return (True, code, charge, p, revealed, finished, done, truncated, correct, reward,
            state.answer[0] if done else -1, state.cost[0], state.cursor[0])


def refresh_numba_cache(dispatchers, dependencies) -> None:
    """Drop the on-disk numba cache of ``dispatchers`` if a module they call into changed since.

    numba keys a cached function on its own source file only; a wrapper cached here embeds the
    kernels of :mod:`tts_gym.core.kernels` / :mod:`tts_gym.core.observation` it calls, and would silently keep
    stale copies after those files change. Called at import, before first use."""
    try:
        newest = max(os.stat(getattr(m, "__file__", m)).st_mtime for m in dependencies)
        for d in dispatchers:
            index = Path(d._cache._cache_file._index_path)
            if index.exists() and index.stat().st_mtime < newest:
                index.unlink()
    except Exception:  # pragma: no cover - unusual cache locations, read-only installs
        pass


def compiled_entry(dispatcher, *args):
    """Call ``dispatcher(*args)`` once (compiling or loading it from the cache) and return the compiled
    entry point for exactly these argument types. Calling the entry point skips numba's per-call type
    dispatch (microseconds for a StructRef argument); arguments must keep the same types. Falls back
    to the dispatcher itself if numba's internals do not expose the entry point."""
    dispatcher(*args)
    try:
        sig = tuple(nb.typeof(a) for a in args)
        cres = dispatcher.overloads.get(sig)
        if cres is not None and getattr(cres, "entry_point", None) is not None:
            return cres.entry_point
    except Exception:  # pragma: no cover - numba internals changed
        pass
    return dispatcher


import tts_gym.core.actions as _actions_mod  # noqa: E402
import tts_gym.core.kernels as _kernels_mod  # noqa: E402
import tts_gym.core.observation as _observation_mod  # noqa: E402

KERNEL_MODULES = (_actions_mod, _kernels_mod, _observation_mod)
refresh_numba_cache([_make_core, _core_reset, _core_step], KERNEL_MODULES)


# ---------------------------------------------------------------------------------------------
# the env
# ---------------------------------------------------------------------------------------------

_ENTRY_POINTS: dict = {}


def _make_env_core(su: ReplaySetup, state, gammas, pos, glob, mask, elapsed):
    return _make_core(state, su.data, su.params, su.oparams, su.conf, gammas, pos, glob, mask,
                      make_scratch(su.data), elapsed)


def _entry_points(su: ReplaySetup) -> tuple:
    """``(reset, step)``: the direct entry points of :func:`_core_reset` / :func:`_core_step` for
    cores over ``su``. Compiled (or loaded from the cache) on a throwaway core, never on a live
    env's state, and kept per numba type: every env of a process shares them."""
    M = su.M
    pos, glob = make_buffers(1, M)
    core = _make_env_core(su, make_state(1, M), np.zeros(1, np.float64), pos, glob,
                          np.zeros(num_actions(M), np.bool_), np.zeros(1, np.int64))
    key = nb.typeof(core)
    hit = _ENTRY_POINTS.get(key)
    if hit is None:
        # warm-up calls: a reset of question 0, then an out-of-space action (changes nothing)
        hit = (compiled_entry(_core_reset, core, 0, np.zeros(M, np.int32), 0.0),
               compiled_entry(_core_step, core, -1, False, 0.0, False, 1.0, 0))
        _ENTRY_POINTS[key] = hit
    return hit


class RebuiltOnUnpickling:
    """Pickling of an env holding compiled-side handles: the attributes named in ``_DERIVED`` are
    left out and rebuilt from the rest by ``_build_core()`` on unpickling."""

    _DERIVED: tuple[str, ...] = ()

    def _build_core(self) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in self._DERIVED:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._build_core()


class TTSReplayEnv(RebuiltOnUnpickling, gym.Env):
    """Replay of pre-sampled reasoning trajectories as a Gymnasium env (see the module docstring)."""

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    # rebuilt from the rest on unpickling (numba handles and views of the buffers)
    _DERIVED = ("_core", "_reset_fn", "_step_fn", "_view", "_pos0", "_glob0")

    def __init__(self, store=None, model: str | None = None, benchmark: str | None = None, *,
                 max_branches: int = 64, fused: bool = True, probe_cost: int = 0,
                 token_budget: int | None = None, cost_weight=0.0, token_scale: float = 100_000,
                 dense_reward: bool = False, invalid_action: str = "penalize",
                 invalid_action_penalty: float = 0.1, question_sampling: str = "uniform",
                 permutation: str = "reference", num_shuffle_seeds: int = 100,
                 render_mode: str | None = None, step_limit: int | None = None,
                 max_episode_steps: int | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                             f"got {render_mode!r}")
        step_limit = _check_step_limit(step_limit, max_episode_steps)
        self.setup = su = ReplaySetup(
            store, model, benchmark, max_branches=max_branches, fused=fused, probe_cost=probe_cost,
            token_budget=token_budget, cost_weight=cost_weight, token_scale=token_scale,
            dense_reward=dense_reward, invalid_action=invalid_action,
            invalid_action_penalty=invalid_action_penalty, question_sampling=question_sampling,
            permutation=permutation, num_shuffle_seeds=num_shuffle_seeds,
            max_episode_steps=step_limit)
        self.render_mode = render_mode
        self.observation_space = su.observation_space
        self.action_space = su.action_space
        self.max_branches = su.M
        self._own_limit = step_limit or 0      # given at construction
        self._wrapper_limit = 0                # a Gymnasium TimeLimit's, found at reset
        # kernel state (a batch of one) and buffers
        self.state = make_state(1, su.M)
        self.state.done[0] = True  # stepping before reset() reports ERR_DONE -> RuntimeError
        self.data, self.params = su.data, su.params
        self._pos, self._glob = make_buffers(1, su.M)
        self._mask = np.zeros(num_actions(su.M), np.bool_)
        self._gammas = np.zeros(1, np.float64)
        self._n_actions = num_actions(su.M)
        self._elapsed_steps = np.zeros(1, np.int64)   # actions taken this episode (the kernel counts)
        self._max_steps = su.max_episode_steps
        self._build_core()
        self._episode_counter = 0
        self._gamma = 0.0
        self._table: tuple = ()
        self._question = -1
        self._shuffle_seed = -1
        self._has_reset = False
        self._ended = False  # terminated or truncated (the renderer marks the gold only then)

    def _build_core(self) -> None:
        """The compiled-side handles over this env's arrays: the kernels' entry points, the core
        holding the state and buffers (and, once, the episode view: policies keep hold of it)."""
        su = self.setup
        self._reset_fn, self._step_fn = _entry_points(su)
        self._core = _make_env_core(su, self.state, self._gammas, self._pos, self._glob, self._mask,
                                    self._elapsed_steps)
        self._step_args = (bool(su.raise_invalid), float(su.invalid_action_penalty),
                           bool(su.dense_reward), 1.0 / su.token_scale, int(self._max_steps or 0))
        if getattr(self, "_view", None) is None:
            self._view = EpisodeView(self.state, su.data, su.params, 0, su.answer_tables)
        self._pos0, self._glob0 = self._pos[0], self._glob[0]

    # -- public accessors --------------------------------------------------------------------------
    @property
    def episode(self) -> EpisodeView:
        """Live read-only :class:`~tts_gym.envs.view.EpisodeView` of the current episode (raw state for code
        controllers: revealed answer ids, depths, flags, ledger, cost; never the gold)."""
        return self._view

    def raw_state(self) -> EpisodeView:
        """Same as :attr:`episode`."""
        return self._view

    @property
    def question(self) -> int:
        """Packed index of the current question (-1 before the first reset)."""
        return self._question

    @property
    def shuffle_seed(self) -> int:
        """Reference shuffle seed of the current episode (-1 for a random or explicit order)."""
        return self._shuffle_seed

    @property
    def cost_weight(self) -> float:
        """The current episode's ``gamma``."""
        return self._gamma

    @property
    def step_limit(self) -> int | None:
        """Steps after which an episode is truncated (``None``: no limit): the one given at
        construction or a Gymnasium ``TimeLimit``'s around the env, whichever is smaller."""
        return self._max_steps or None

    def action_masks(self) -> np.ndarray:
        """Admissible actions of the current state (sb3-contrib's ``MaskablePPO`` convention)."""
        return self._mask.copy()

    # -- gymnasium API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        limit = _time_limit_around(self)
        if limit is not None and limit != self._wrapper_limit:
            self._adopt_wrapper_limit(limit)
        if seed is not None:
            self._episode_counter = 0
        su = self.setup
        opts = dict(options or {})
        unknown = set(opts) - {"question", "shuffle_seed", "permutation", "cost_weight"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; expected question, shuffle_seed, "
                             "permutation, cost_weight")
        q, seeds, perms, g = su.draw(self.np_random, 1, self._episode_counter,
                                     questions=opts.get("question"),
                                     shuffle_seeds=opts.get("shuffle_seed"),
                                     permutations=opts.get("permutation"),
                                     cost_weights=opts.get("cost_weight"))
        self._episode_counter += 1
        question, gamma = int(q[0]), float(g[0])
        self._reset_fn(self._core, question, perms[0], gamma)
        self._question, self._shuffle_seed, self._gamma = question, int(seeds[0]), gamma
        self._table = su.answer_tables[question]
        self._has_reset = True
        self._ended = False
        store_name, store_q = su.store_question(question)
        info = {"action_mask": self._mask.copy(), "question": question, "store": store_name,
                "store_question": store_q, "shuffle_seed": self._shuffle_seed, "cost_weight": gamma,
                "cost": 0, "cursor": 0}
        return {"positions": self._pos0.copy(), "globals": self._glob0.copy()}, info

    def step(self, action):
        a = action if action.__class__ is int else action_id(action, self._n_actions)
        if not 0 <= a < self._n_actions:
            return self._invalid(a, ERR_BAD_ACTION, False, 0.0, False)
        (stepped, code, charge, p, rid, fin, done, truncated, correct, reward, ans, cost,
         cursor) = self._step_fn(self._core, a, *self._step_args)
        if code:
            return self._invalid(a, code, stepped, reward, truncated)
        table = self._table
        info = {"action_mask": self._mask.copy(), "position": p, "revealed_id": rid,
                "revealed": table[rid] if rid >= 0 else None, "finished": fin, "charge": charge,
                "cost": cost, "cursor": cursor, "cost_weight": self._gamma, "invalid_action": False}
        if done:
            self._ended = True
            info["correct"] = correct
            info["answer_id"] = ans
            info["answer"] = table[ans] if ans >= 0 else None
            info["tokens"] = cost
        elif truncated:
            self._ended = True
            self._truncation_info(info, cost)
        return ({"positions": self._pos0.copy(), "globals": self._glob0.copy()}, reward, done,
                truncated, info)

    # -- helpers -----------------------------------------------------------------------------------
    def _adopt_wrapper_limit(self, limit: int) -> None:
        """Truncate where the enclosing ``TimeLimit`` does (the smaller of it and the env's own)."""
        self._wrapper_limit = int(limit)
        steps = min(n for n in (self._own_limit, self._wrapper_limit) if n > 0)
        if steps != self._max_steps:
            self.setup.set_step_limit(steps)   # the step feature is normalised by the limit
            self._max_steps = steps
            self._build_core()

    def _truncation_info(self, info: dict, cost: int) -> None:
        info["correct"] = False
        info["answer_id"] = -1
        info["answer"] = None
        info["tokens"] = cost

    def error_message(self, action: int, code: int) -> str:
        """The message of an inadmissible ``action`` (``code`` from :data:`tts_gym.core.kernels.ERROR_MESSAGES`)."""
        if code == ERR_BAD_ACTION:
            return (f"action {action} is outside the action space Discrete({self._n_actions}): "
                    f"valid ids are 0..{self._n_actions - 1}")
        return (f"inadmissible action {action} = {describe(action, self.max_branches)}: "
                f"{ERROR_MESSAGES.get(code, f'error code {code}')}")

    def _invalid(self, a: int, code: int, stepped: bool, reward: float, truncated: bool):
        """An action that was not applied: raised (out of the space, after the end, or ``"raise"``
        mode), else the kernel's penalized no-op (reward ``-invalid_action_penalty``, plus the
        truncation reward on the last step)."""
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        msg = self.error_message(a, code)
        if not stepped:
            raise ValueError(msg)
        cost = int(self.state.cost[0])
        info = {"action_mask": self._mask.copy(), "position": -1, "revealed_id": -1, "revealed": None,
                "finished": False, "charge": 0, "cost": cost, "cursor": int(self.state.cursor[0]),
                "cost_weight": self._gamma, "invalid_action": True, "error": msg}
        if truncated:
            self._ended = True
            self._truncation_info(info, cost)
        obs = {"positions": self._pos0.copy(), "globals": self._glob0.copy()}
        return obs, reward, False, truncated, info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        from tts_gym.envs.render import render_state
        return render_state(self.state, self.setup, 0, mode=self.render_mode, ended=self._ended,
                            question=self._question, shuffle_seed=self._shuffle_seed,
                            cost_weight=self._gamma)

    def close(self):
        pass

# cache entries also keyed on the compiled layer's sources (see tts_gym.core.numba_cache)
from tts_gym.core.numba_cache import bind_module_cache  # noqa: E402

bind_module_cache(globals())
