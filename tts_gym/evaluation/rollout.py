"""The pure-Python episode loop: any :class:`~tts_gym.policies.base.Policy` through the env.

This is the project's reference Python path (the compiled fast path is
:func:`tts_gym.evaluation.protocol.evaluate_compiled`). Each episode is the textbook loop::

    obs, info = env.reset(options={"question": q, "shuffle_seed": s})
    view = env.unwrapped.episode
    policy.reset(view)
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs, view))

* :func:`run_episodes` plays a list of ``(question, shuffle_seed)`` episodes and returns the
  per-episode committed answer ids, costs, correctness and step counts (:class:`RolloutResult`);
* :func:`evaluate_reference_python` plays the reference protocol (``docs/replay-semantics.md``,
  "Reference protocol": seeds x questions in store order) and returns the same
  :class:`tts_gym.evaluation.protocol.ProtocolResult` as the compiled path (``backend="python"``),
  so ``sumC`` / ``sumTT`` / ``accuracy`` / ``avg_tokens`` are computed by one piece of code for both.

``policy`` may be a :class:`Policy`, an AutoTTS-style controller (an object with
``solve(question)``; played with :func:`tts_gym.policies.autotts_adapter.run_autotts_controller`)
or a stable-baselines3 model (wrapped in :class:`~tts_gym.policies.base.SB3Policy`); see
:func:`tts_gym.policies.coerce.as_policy`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from tts_gym.core import kernels as K
from tts_gym.policies.base import PolicyError
from tts_gym.policies.coerce import as_policy

__all__ = ["RolloutResult", "run_episode", "run_episodes", "evaluate_reference_python",
           "make_reference_env"]


@dataclass(eq=False)
class RolloutResult:
    """Per-episode outcomes of :func:`run_episodes` (arrays aligned with ``episodes``)."""
    episodes: list                      # [(question, shuffle_seed), ...]
    answers: np.ndarray                 # int32: committed answer id (-1: abstained / none)
    costs: np.ndarray                   # int64: tokens charged
    correct: np.ndarray                 # bool
    steps: np.ndarray                   # int32: env steps, the answering one included
    returns: np.ndarray = field(default=None)  # float64: summed env rewards

    @property
    def sum_correct(self) -> int:
        return int(self.correct.sum())

    @property
    def sum_cost(self) -> int:
        return int(self.costs.sum(dtype=np.int64))

    def __len__(self) -> int:
        return len(self.episodes)


def _outcome(env):
    """Committed answer id and correctness of the env's current episode. The gold answer is read
    here, by the evaluator, from the env's own store tensors: the policy's view has no gold ids."""
    u = env.unwrapped
    return int(u.state.answer[0]), bool(K.is_correct(u.state, u.data, 0))


def run_episode(env, policy, question: int, shuffle_seed: int, *, max_steps: int | None = None,
                reset_options: dict | None = None):
    """Play one reference episode; returns ``(answer_id, cost, correct, steps, return)``.

    ``policy`` must already be a Policy or an AutoTTS controller (see :func:`run_episodes`)."""
    options = dict(reset_options or {})
    options.update(question=int(question), shuffle_seed=int(shuffle_seed))
    if not hasattr(policy, "act") and hasattr(policy, "solve"):
        from tts_gym.policies.autotts_adapter import run_autotts_controller
        out = run_autotts_controller(env, policy, int(question), int(shuffle_seed),
                                     reset_options=reset_options)
        view = env.unwrapped.episode
        a, ok = _outcome(env)
        return a, view.cost, ok, view.steps, out.total_reward
    obs, _ = env.reset(options=options)
    view = env.unwrapped.episode
    policy.reset(view)
    total = 0.0
    n = 0
    step = env.step
    act = policy.act
    while True:
        obs, reward, terminated, truncated, info = step(act(obs, view))
        if info.get("invalid_action"):
            # an env in "penalize" mode would hide a policy's bug behind a reward; stop instead
            raise PolicyError(f"{getattr(policy, 'name', policy)!r}: {info.get('error')} (question "
                              f"{question}, seed {shuffle_seed})")
        total += float(reward)
        n += 1
        if terminated or truncated:
            break
        if max_steps is not None and n >= max_steps:
            raise PolicyError(f"{getattr(policy, 'name', policy)!r} did not answer within "
                              f"{max_steps} steps (question {question}, seed {shuffle_seed})")
    a, ok = _outcome(env)
    return a, view.cost, ok, view.steps, total


def run_episodes(env, policy, episodes: Iterable[tuple[int, int]], *,
                 max_steps: int | None = None, reset_options: dict | None = None,
                 progress: bool | None = False) -> RolloutResult:
    """Play ``episodes`` = ``[(question, shuffle_seed), ...]`` in order with ``policy``.

    ``env`` is a :class:`tts_gym.envs.env.TTSReplayEnv` (or a ``gymnasium.make``-wrapped one: its
    ``unwrapped.episode`` is used). ``policy``: a :class:`~tts_gym.policies.base.Policy`, an AutoTTS
    controller (``solve``) or an SB3 model. ``max_steps`` guards against a policy that never
    answers (the action space is finite per episode, so this only matters for budget-less custom
    envs). ``reset_options`` are merged into every ``env.reset(options=...)``. ``progress``: a
    progress bar on stderr (``None``: when stderr is a terminal).
    """
    policy = as_policy(policy, keep_controllers=True)
    episodes = [(int(q), int(s)) for q, s in episodes]
    n = len(episodes)
    answers = np.full(n, -1, np.int32)
    costs = np.zeros(n, np.int64)
    correct = np.zeros(n, np.bool_)
    steps = np.zeros(n, np.int32)
    returns = np.zeros(n, np.float64)
    from tts_gym.evaluation.progress import progress_bar
    name = getattr(policy, "name", None) or type(policy).__name__
    with progress_bar(n, f"evaluating {name}", progress) as bar:
        for j, (q, s) in enumerate(episodes):
            answers[j], costs[j], correct[j], steps[j], returns[j] = run_episode(
                env, policy, q, s, max_steps=max_steps, reset_options=reset_options)
            bar.update(1)
    return RolloutResult(episodes=episodes, answers=answers, costs=costs, correct=correct,
                         steps=steps, returns=returns)


def make_reference_env(store, **env_kwargs):
    """A single env over ``store`` with the reference semantics (fused reveals, free probes, no
    budget, every stored branch addressable), for :func:`evaluate_reference_python`."""
    from tts_gym.envs.env import TTSReplayEnv

    kw = dict(max_branches=store.max_branches, fused=True, probe_cost=0, token_budget=None,
              invalid_action="raise")
    kw.update(env_kwargs)
    return TTSReplayEnv(store, **kw)


def evaluate_reference_python(store, policy, seeds: Sequence[int] = range(100), *, env=None,
                              env_kwargs: dict | None = None, name: str | None = None,
                              params: dict | None = None, progress: bool | None = False):
    """The reference protocol (``docs/replay-semantics.md``, "Reference protocol") on ``store``
    through the Python env loop.

    Episodes: for each seed, every question in store order. Returns a
    :class:`tts_gym.evaluation.protocol.ProtocolResult` (``backend="python"``) with ``sumC``, ``sumTT``,
    ``accuracy`` (percent, 2 decimals, exact), ``avg_tokens``, ``tokens_int`` and per-episode
    ``[S, Q]`` arrays -- field for field comparable with
    :func:`tts_gym.evaluation.protocol.evaluate_compiled`. ``env`` (optional) must be an env over ``store``
    alone with the reference semantics; by default one is built with :func:`make_reference_env`.
    ``progress`` as in :func:`run_episodes`.
    """
    from tts_gym.evaluation.protocol import ProtocolResult

    seeds = tuple(int(s) for s in seeds)
    if env is None:
        env = make_reference_env(store, **dict(env_kwargs or {}))
    Q = store.num_questions
    res = run_episodes(env, policy, [(q, s) for s in seeds for q in range(Q)], progress=progress)
    S = len(seeds)
    shape = (S, Q)
    pname = name or getattr(policy, "name", None) or getattr(policy, "NAME", None) \
        or type(policy).__name__
    pparams = params if params is not None else dict(
        getattr(policy, "params", None) or getattr(policy, "config", None) or {})
    return ProtocolResult(
        store=store.name, policy=str(pname), params=dict(pparams), seeds=seeds,
        sumC=res.sum_correct, sumTT=res.sum_cost, answers=res.answers.reshape(shape),
        costs=res.costs.reshape(shape), correct=res.correct.reshape(shape),
        steps=res.steps.reshape(shape), backend="python")
