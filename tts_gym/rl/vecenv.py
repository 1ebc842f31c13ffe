"""stable-baselines3 ``VecEnv`` over the natively batched :class:`tts_gym.vector.TTSReplayVectorEnv`.

SB3 has no adapter from ``gymnasium.vector.VectorEnv`` (SB3 issue #1745); this one steps all ``E``
episodes in one compiled call and never loops over sub-environments in Python on the hot path:

* ``step_wait`` = one ``TTSReplayVectorEnv.step`` (autoreset disabled) plus, when some episodes
  ended, one batched ``reset(options={"reset_mask": done, "cost_weight": ...})`` that redraws them.
  Only the ended episodes get an info dict entry (``terminal_observation``, ``TimeLimit.truncated``,
  ``episode`` = ``{"r", "l", "t", "correct", "tokens", "gamma"}`` as SB3's ``Monitor`` would write);
  the others share nothing (fresh empty dicts).
* ``env_method("action_masks")`` returns the batched ``bool[E, A]`` mask array from one compiled call
  (sb3-contrib's ``get_action_masks`` stacks it into the same array).
* **gamma-conditioning**: every new episode draws its cost weight ``gamma`` from
  :class:`GammaSampler` (log-uniform over a range by default) and passes it as the env's per-episode
  ``cost_weight`` reset option, so it is both in the reward and in ``obs["globals"][13]``.
* Seeding: ``VecEnv.seed(s)`` (SB3 calls it with ``model.seed``) seeds the env's generator and the
  gamma sampler at the next ``reset()``; a run is then reproducible.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

__all__ = ["GammaSampler", "ReplayVecEnv", "make_replay_vec_env"]


class GammaSampler:
    """Per-episode cost weights: a constant, or ``dist`` (``"log-uniform"`` / ``"uniform"``) over
    ``(low, high)``."""

    def __init__(self, gamma=(1e-3, 0.3), dist: str = "log-uniform", seed: int | None = None):
        if np.ndim(gamma) == 0:
            gamma = (float(gamma), float(gamma))
        self.low, self.high = float(gamma[0]), float(gamma[1])
        if not (0 <= self.low <= self.high) or (dist == "log-uniform" and self.low <= 0):
            raise ValueError(f"bad gamma range {gamma!r} for {dist}")
        if dist not in ("log-uniform", "uniform"):
            raise ValueError(f"dist must be 'log-uniform' or 'uniform', got {dist!r}")
        self.dist = dist
        self.rng = np.random.default_rng(seed)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, n: int) -> np.ndarray:
        if self.low == self.high:
            return np.full(n, self.low)
        u = self.rng.random(n)
        if self.dist == "uniform":
            return self.low + u * (self.high - self.low)
        return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))


class ReplayVecEnv(VecEnv):
    """SB3 ``VecEnv`` view of a :class:`~tts_gym.vector.TTSReplayVectorEnv` (see the module docstring).

    ``venv`` must use ``autoreset_mode=DISABLED`` (this adapter resets ended episodes itself, with a
    freshly drawn gamma) and a ``cost_weight`` range covering ``gamma`` (the observation bound)."""

    def __init__(self, venv, gamma: GammaSampler | Sequence[float] | float = (1e-3, 0.3)):
        if venv.autoreset_mode is not AutoresetMode.DISABLED:
            raise ValueError("ReplayVecEnv needs a TTSReplayVectorEnv with autoreset_mode=DISABLED")
        self.venv = venv
        self.gamma = gamma if isinstance(gamma, GammaSampler) else GammaSampler(gamma)
        self.render_mode = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        E = venv.num_envs
        self._actions = np.zeros(E, np.int64)
        self._ep_return = np.zeros(E, np.float64)
        self._ep_len = np.zeros(E, np.int64)
        self._t0 = time.perf_counter()
        self._has_reset = False
        # time spent inside the env (step_async/step_wait/action_masks), for benchmarks
        self.env_time = 0.0
        self.env_steps = 0

    # -- VecEnv API -------------------------------------------------------------------------------------
    def reset(self):
        t = time.perf_counter()
        seed = self._seeds[0]
        if seed is not None:
            self.gamma.seed(seed + 7919)
        opts = dict(self._options[0] or {})
        opts["cost_weight"] = self.gamma(self.num_envs)
        obs, _ = self.venv.reset(seed=seed, options=opts)
        self._reset_seeds()
        self._reset_options()
        self._ep_return[:] = 0.0
        self._ep_len[:] = 0
        self._has_reset = True
        self.env_time += time.perf_counter() - t
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)

    def step_wait(self):
        t = time.perf_counter()
        v = self.venv
        obs, rew, term, trunc, info = v.step(self._actions)
        self._ep_return += rew
        self._ep_len += 1
        done = term | trunc
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done.any():
            ids = np.flatnonzero(done)
            pos, glob = obs["positions"], obs["globals"]
            tokens, correct, gam = info["tokens"], info["correct"], info["cost_weight"]
            now = round(time.perf_counter() - self._t0, 6)
            for e in ids.tolist():   # only the ended episodes (SB3 wants one dict per env)
                infos[e] = {
                    "terminal_observation": {"positions": pos[e], "globals": glob[e]},
                    "TimeLimit.truncated": bool(trunc[e] and not term[e]),
                    "episode": {"r": float(self._ep_return[e]), "l": int(self._ep_len[e]), "t": now,
                                "correct": bool(correct[e]), "tokens": int(tokens[e]),
                                "gamma": float(gam[e])},
                }
            self._ep_return[ids] = 0.0
            self._ep_len[ids] = 0
            obs, _ = v.reset(options={"reset_mask": done, "cost_weight": self.gamma(self.num_envs)})
        self.env_time += time.perf_counter() - t
        self.env_steps += self.num_envs
        return obs, rew.astype(np.float32), done, infos

    def action_masks(self) -> np.ndarray:
        t = time.perf_counter()
        m = self.venv.action_masks()
        self.env_time += time.perf_counter() - t
        return m

    def close(self) -> None:
        self.venv.close()

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if attr_name == "render_mode":
            return [None] * len(self._indices(indices))
        value = getattr(self, attr_name) if attr_name in ("action_masks",) else getattr(self.venv, attr_name)
        return [value] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        """``action_masks`` -> the batched ``bool[E, A]`` array (rows of ``indices``); any other method
        is called once on the vector env and its result returned for each index."""
        idx = self._indices(indices)
        if method_name == "action_masks":
            m = self.action_masks()
            return m if indices is None else m[idx]
        out = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [out] * len(idx)

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def get_images(self):
        raise NotImplementedError("rendering is not supported through ReplayVecEnv")


def make_replay_vec_env(stores, num_envs: int = 64, *, gamma=(1e-3, 0.3), gamma_dist: str = "log-uniform",
                        max_branches: int = 64, fused: bool = True, dense_reward: bool = True,
                        invalid_action: str = "raise", invalid_action_penalty: float = 0.1,
                        permutation: str = "random", token_scale: float = 100_000,
                        max_episode_steps: int | None = None, **env_kwargs) -> ReplayVecEnv:
    """The training env: ``num_envs`` episodes over ``stores`` (questions drawn uniformly across all
    of them), branch orders ``permutation``, gamma drawn per episode."""
    from tts_gym.vector import TTSReplayVectorEnv

    sampler = gamma if isinstance(gamma, GammaSampler) else GammaSampler(gamma, gamma_dist)
    venv = TTSReplayVectorEnv(num_envs, stores, autoreset_mode=AutoresetMode.DISABLED,
                              max_branches=max_branches, fused=fused, dense_reward=dense_reward,
                              cost_weight=(0.0, max(sampler.high, 1e-9)), token_scale=token_scale,
                              invalid_action=invalid_action,
                              invalid_action_penalty=invalid_action_penalty,
                              question_sampling="uniform", permutation=permutation,
                              max_episode_steps=max_episode_steps, **env_kwargs)
    return ReplayVecEnv(venv, sampler)
