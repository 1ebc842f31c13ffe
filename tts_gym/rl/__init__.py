"""Reinforcement learning on ``tts_gym/Replay-v0`` with stable-baselines3 / sb3-contrib.

* :mod:`tts_gym.envs.sb3` -- :class:`~tts_gym.envs.sb3.SB3VecEnv`, the SB3 ``VecEnv`` over the natively
  batched vector env (no per-env Python loop on the hot path, batched ``action_masks``), and
  :class:`~tts_gym.envs.sb3.CostWeightSampler` (a cost weight drawn per episode: one agent learns
  every operating point);
* :mod:`tts_gym.rl.networks` -- a small permutation-equivariant actor-critic (``MaskableReplayPolicy``
  for MaskablePPO, ``ReplayActorCriticPolicy`` for PPO);
* :mod:`tts_gym.rl.agent` -- :class:`AgentPolicy` (a trained agent at a cost weight, as a
  :class:`tts_gym.policies.Policy` for every evaluator), stored agents and their configs;
* :mod:`tts_gym.rl.train` -- what the agent programs under ``agents/`` share (their common settings
  :class:`TrainingArgs`, the training env, held-in monitoring, the stored config, :func:`learn_and_save`).

Needs the ``rl`` extra (``pip install tts_gym[rl]``: torch, stable-baselines3, sb3-contrib, tensorboard).
"""
from tts_gym.envs.sb3 import CostWeightSampler, SB3VecEnv
from tts_gym.rl.agent import (AgentPolicy, evaluate_agent_reference, load_agent, load_agent_policy,
                              resolve_agent, save_agent)
from tts_gym.rl.networks import (DEFAULT_ACTION_KINDS, EquivariantNet, MaskableReplayPolicy,
                                 ReplayActorCriticPolicy, ReplayFeatures, allowed_actions)
from tts_gym.rl.train import (EpisodeStatsCallback, HeldInEvalCallback, TrainingArgs, agent_config,
                              evaluate_batched, learn_and_save, make_replay_vec_env, make_training_env,
                              set_torch_threads)

__all__ = [
    "SB3VecEnv", "CostWeightSampler", "make_replay_vec_env", "make_training_env", "TrainingArgs",
    "EquivariantNet", "ReplayFeatures", "MaskableReplayPolicy", "ReplayActorCriticPolicy",
    "allowed_actions", "DEFAULT_ACTION_KINDS",
    "AgentPolicy", "load_agent_policy", "evaluate_agent_reference", "load_agent", "save_agent", "resolve_agent",
    "agent_config", "evaluate_batched", "learn_and_save", "EpisodeStatsCallback", "HeldInEvalCallback",
    "set_torch_threads",
]
