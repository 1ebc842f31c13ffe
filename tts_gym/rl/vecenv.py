"""Compatibility names for :mod:`tts_gym.envs.sb3` (``ReplayVecEnv`` is :class:`tts_gym.envs.sb3.SB3VecEnv`); new code imports from there."""
from tts_gym.rl.train import make_replay_vec_env
from tts_gym.envs.sb3 import GammaSampler, SB3VecEnv

ReplayVecEnv = SB3VecEnv

__all__ = ["GammaSampler", "ReplayVecEnv", "SB3VecEnv", "make_replay_vec_env"]
