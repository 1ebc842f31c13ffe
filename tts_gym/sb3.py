"""stable-baselines3 adapter for the natively batched :class:`tts_gym.vector.TTSReplayVectorEnv`.

stable-baselines3 (an optional extra: ``pip install tts_gym[rl]``) has its own ``VecEnv`` interface
and no adapter from ``gymnasium.vector.VectorEnv``. :class:`SB3VecEnv` is one, for our env only:

* it requires ``AutoresetMode.SAME_STEP`` (SB3 resets inside ``step`` and reports the final
  observation of an ended episode as ``infos[i]["terminal_observation"]``; ``TimeLimit.truncated``
  marks truncations);
* ``env_method("action_masks")`` -- how sb3-contrib's ``MaskablePPO`` collects masks -- is answered
  with the batched ``bool[E, A]`` array of one compiled call, not a per-env loop;
* per-env ``infos`` are a list of dicts (SB3's format): empty except for ended episodes, which carry
  ``terminal_observation``, ``TimeLimit.truncated``, ``correct``, ``answer``, ``tokens``.

Example::

    from sb3_contrib import MaskablePPO
    from tts_gym.sb3 import make_sb3_vec_env
    venv = make_sb3_vec_env(num_envs=64, max_branches=16, cost_weight=(0.0, 1.0))
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=64).learn(100_000)

Importing this module imports stable-baselines3; ``import tts_gym`` does not.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

try:
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    raise ImportError("tts_gym.sb3 needs stable-baselines3: pip install 'tts_gym[rl]'") from exc

from tts_gym.vector import TTSReplayVectorEnv

__all__ = ["SB3VecEnv", "make_sb3_vec_env"]


class SB3VecEnv(VecEnv):
    """A stable-baselines3 ``VecEnv`` over a :class:`TTSReplayVectorEnv` in ``SAME_STEP`` mode."""

    def __init__(self, venv: TTSReplayVectorEnv):
        venv = getattr(venv, "unwrapped", venv)
        if not isinstance(venv, TTSReplayVectorEnv):
            raise TypeError(f"SB3VecEnv wraps a TTSReplayVectorEnv, got {type(venv).__name__}")
        if venv.autoreset_mode is not AutoresetMode.SAME_STEP:
            raise ValueError("SB3VecEnv needs a TTSReplayVectorEnv built with "
                             "autoreset_mode=AutoresetMode.SAME_STEP (or use make_sb3_vec_env)")
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    # -- core VecEnv API ---------------------------------------------------------------------------
    def reset(self):
        seed = self._seeds[0]  # one generator for the whole batch: SB3's per-env seeds are seed + i
        options = self._options[0] if self._options and self._options[0] else None
        obs, infos = self.venv.reset(seed=seed, options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        dones = terminated | truncated
        E = self.num_envs
        out: list[dict[str, Any]] = [{} for _ in range(E)]
        if "final_obs" in infos:
            fo = infos["final_obs"]
            correct, answer, tokens = infos["correct"], infos["answer"], infos["tokens"]
            for i in np.flatnonzero(dones).tolist():  # ended episodes only
                out[i] = {"terminal_observation": {k: v[i] for k, v in fo.items()},
                          "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                          "correct": bool(correct[i]), "answer": answer[i], "tokens": int(tokens[i])}
        return obs, rewards.astype(np.float32), dones, out

    def close(self) -> None:
        self.venv.close()

    # -- attribute / method access -----------------------------------------------------------------
    def _n(self, indices) -> int:
        return len(list(self._get_indices(indices)))

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if attr_name == "render_mode":
            return [self.venv.render_mode] * self._n(indices)
        value = getattr(self.venv, attr_name)  # AttributeError propagates (has_attr relies on it)
        return [value] * self._n(indices)

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        if method_name == "action_masks":
            masks = self.venv.action_masks()  # one compiled call for the whole batch
            return masks if indices is None else masks[list(self._get_indices(indices))]
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result] * self._n(indices)

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * self._n(indices)

    def action_masks(self) -> np.ndarray:
        return self.venv.action_masks()

    def get_images(self):
        frames = self.venv.render() if self.venv.render_mode == "rgb_array" else None
        return [frames[0] if frames else None] + [None] * (self.num_envs - 1)


def make_sb3_vec_env(num_envs: int = 8, **env_kwargs) -> SB3VecEnv:
    """A :class:`SB3VecEnv` over a new ``TTSReplayVectorEnv(num_envs, autoreset_mode=SAME_STEP,
    **env_kwargs)``."""
    env_kwargs.pop("autoreset_mode", None)
    return SB3VecEnv(TTSReplayVectorEnv(num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs))
