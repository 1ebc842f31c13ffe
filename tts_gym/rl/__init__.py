"""Reinforcement learning on ``tts_gym/Replay-v0`` with stable-baselines3 / sb3-contrib.

* :class:`~tts_gym.envs.sb3.SB3VecEnv` (from :mod:`tts_gym.envs.sb3`; also exported as ``ReplayVecEnv``), the
  SB3 ``VecEnv`` over the natively batched vector env (no per-env Python loop on the hot path, batched
  ``action_masks``), and :class:`~tts_gym.envs.sb3.GammaSampler` (per-episode, log-uniform cost weight:
  gamma-conditioning); :func:`make_replay_vec_env` builds it with the training defaults;
* :mod:`tts_gym.rl.networks` -- a small permutation-equivariant actor-critic (``MaskableReplayPolicy``
  for MaskablePPO, ``ReplayActorCriticPolicy`` for PPO);
* :mod:`tts_gym.rl.agent` -- :class:`AgentPolicy` (a trained agent at a cost weight, as a
  :class:`tts_gym.policies.Policy` for every evaluator) and :func:`load_agent_policy`;
* :mod:`tts_gym.rl.train` -- what the agent programs under ``agents/`` share (stores, the training
  env, callbacks, batched held-in evaluation, the stored config).

Needs the ``rl`` extra (``pip install tts_gym[rl]``: torch, stable-baselines3, sb3-contrib, tensorboard).
"""
from tts_gym.rl.agent import (AgentPolicy, evaluate_agent_reference, load_agent, load_agent_policy, resolve_agent,
                             save_agent)
from tts_gym.rl.networks import (DEFAULT_ACTION_KINDS, EquivariantNet, MaskableReplayPolicy,
                                 ReplayActorCriticPolicy, ReplayFeatures, allowed_actions)
from tts_gym.rl.train import (EpisodeStatsCallback, HeldInEvalCallback, add_common_args, agent_config,
                              evaluate_batched, make_replay_vec_env, set_torch_threads, standard_callbacks,
                              training_stores)
from tts_gym.envs.sb3 import GammaSampler, SB3VecEnv

ReplayVecEnv = SB3VecEnv  # the older name (tts_gym.rl.vecenv)

__all__ = [
    "SB3VecEnv", "ReplayVecEnv", "GammaSampler", "make_replay_vec_env",
    "EquivariantNet", "ReplayFeatures", "MaskableReplayPolicy", "ReplayActorCriticPolicy",
    "allowed_actions", "DEFAULT_ACTION_KINDS",
    "AgentPolicy", "load_agent_policy", "evaluate_agent_reference", "load_agent", "save_agent", "resolve_agent",
    "training_stores", "add_common_args", "agent_config", "evaluate_batched", "EpisodeStatsCallback",
    "HeldInEvalCallback", "standard_callbacks", "set_torch_threads",
]
