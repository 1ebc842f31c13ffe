"""stable-baselines3 adapter for the natively batched :class:`tts_gym.envs.vector.TTSReplayVectorEnv`.

stable-baselines3 (an optional extra: ``pip install tts_gym[rl]``) has its own ``VecEnv`` interface
and no adapter from ``gymnasium.vector.VectorEnv`` (SB3 issue #1745). :class:`SB3VecEnv` is one, for
our env only; it steps all ``E`` episodes in one compiled call and never loops over sub-environments
in Python on the hot path:

* it wraps a vector env built with ``autoreset_mode=AutoresetMode.DISABLED`` and resets ended
  episodes itself: ``step_wait`` = one ``TTSReplayVectorEnv.step`` plus, when some episodes ended,
  one batched ``reset(options={"reset_mask": done, ...})`` that redraws them (SB3 resets inside
  ``step``; the returned observation of an ended sub-env is the new episode's first one);
* per-env ``infos`` are a list of dicts (SB3's format): fresh empty dicts except for ended episodes,
  which carry ``terminal_observation``, ``TimeLimit.truncated`` (truncated and not terminated),
  ``correct``, ``answer``, ``tokens`` and ``episode`` = ``{"r", "l", "t", "correct", "tokens",
  "cost_weight"}`` as SB3's ``Monitor`` would write it (so ``model.ep_info_buffer`` fills without a Monitor);
* ``env_method("action_masks")`` -- how sb3-contrib's ``MaskablePPO`` collects masks -- is answered
  with the batched ``bool[E, A]`` array of one compiled call, not a per-env loop;
* **cost-weight conditioning** (optional): with ``cost_weights=`` (a :class:`CostWeightSampler`, a
  constant or a ``(low, high)`` range), every new episode draws its cost weight from the sampler and
  gets it as the env's per-episode ``cost_weight`` reset option, so it is both in the reward and in
  ``obs["globals"][13]``. ``cost_weights=None`` (default) keeps the env's own ``cost_weight`` (a
  constant, or a range the env draws from per episode). It is not SB3's ``gamma`` (the discount);
* seeding: ``VecEnv.seed(s)`` (SB3 calls it with ``model.seed``) seeds the env's generator and the
  cost-weight sampler (with ``s + 7919``) at the next ``reset()``; a run is then reproducible;
* ``env_time`` / ``env_steps`` count the seconds spent in the env (``reset``, ``step_wait``,
  ``action_masks``) and the sub-env steps taken, for benchmarks.

Example::

    from sb3_contrib import MaskablePPO
    from tts_gym.envs.sb3 import make_sb3_vec_env
    venv = make_sb3_vec_env(64, store=None, max_branches=16, cost_weights=(1e-3, 0.3))
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=64).learn(100_000)

Importing this module imports stable-baselines3; ``import tts_gym`` does not.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode

try:
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    raise ImportError("tts_gym.envs.sb3 needs stable-baselines3: pip install 'tts_gym[rl]'") from exc

from tts_gym.envs.vector import TTSReplayVectorEnv

__all__ = ["CostWeightSampler", "SB3VecEnv", "make_sb3_vec_env"]


class CostWeightSampler:
    """Per-episode cost weights: a constant, or ``dist`` (``"log-uniform"`` / ``"uniform"``) over
    ``(low, high)``."""

    def __init__(self, cost_weight=(1e-3, 0.3), dist: str = "log-uniform", seed: int | None = None):
        if np.ndim(cost_weight) == 0:
            cost_weight = (float(cost_weight), float(cost_weight))
        self.low, self.high = float(cost_weight[0]), float(cost_weight[1])
        if not (0 <= self.low <= self.high) or (dist == "log-uniform" and self.low <= 0):
            raise ValueError(f"bad cost weight range {cost_weight!r} for {dist}")
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

    def __repr__(self) -> str:
        return f"CostWeightSampler(({self.low:g}, {self.high:g}), dist={self.dist!r})"


def _sampler(cost_weights, dist: str) -> CostWeightSampler | None:
    if cost_weights is None or isinstance(cost_weights, CostWeightSampler):
        return cost_weights
    return CostWeightSampler(cost_weights, dist)


class SB3VecEnv(VecEnv):
    """A stable-baselines3 ``VecEnv`` over a :class:`TTSReplayVectorEnv` (see the module docstring).

    ``venv`` must use ``autoreset_mode=AutoresetMode.DISABLED`` (this adapter resets ended episodes
    itself; :func:`make_sb3_vec_env` builds one). ``cost_weights``: ``None`` (the env's own cost
    weight), a :class:`CostWeightSampler`, or a constant / ``(low, high)`` range drawn with
    ``cost_weight_dist`` per episode; the env's ``cost_weight`` range must cover it (the observation
    bound)."""

    def __init__(self, venv: TTSReplayVectorEnv,
                 cost_weights: CostWeightSampler | Sequence[float] | float | None = None,
                 cost_weight_dist: str = "log-uniform"):
        venv = getattr(venv, "unwrapped", venv)
        if not isinstance(venv, TTSReplayVectorEnv):
            raise TypeError(f"SB3VecEnv wraps a TTSReplayVectorEnv, got {type(venv).__name__}")
        if venv.autoreset_mode is not AutoresetMode.DISABLED:
            raise ValueError(f"SB3VecEnv needs a TTSReplayVectorEnv built with autoreset_mode="
                             f"AutoresetMode.DISABLED (it resets ended episodes itself), got "
                             f"{venv.autoreset_mode}; or use make_sb3_vec_env(num_envs, **env_kwargs)")
        self.venv = venv
        self.cost_weights = _sampler(cost_weights, cost_weight_dist)
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        E = venv.num_envs
        self._actions = np.zeros(E, np.int64)
        self._ep_return = np.zeros(E, np.float64)
        self._ep_len = np.zeros(E, np.int64)
        self._t0 = time.perf_counter()
        # time spent inside the env (reset/step_wait/action_masks) and sub-env steps, for benchmarks
        self.env_time = 0.0
        self.env_steps = 0

    # -- core VecEnv API ---------------------------------------------------------------------------
    def reset(self):
        t = time.perf_counter()
        seed = self._seeds[0]  # one generator for the whole batch: SB3's per-env seeds are seed + i
        opts = dict(self._options[0] or {})
        if self.cost_weights is not None:
            if seed is not None:
                self.cost_weights.seed(seed + 7919)
            opts.setdefault("cost_weight", self.cost_weights(self.num_envs))
        obs, _ = self.venv.reset(seed=seed, options=opts or None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._ep_return[:] = 0.0
        self._ep_len[:] = 0
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
            # rows of the ended episodes (copies: the reset below may reuse the obs buffers)
            pos, glob = obs["positions"][ids], obs["globals"][ids]
            tokens, correct, answer, weight = info["tokens"], info["correct"], info["answer"], info["cost_weight"]
            now = round(time.perf_counter() - self._t0, 6)
            for k, e in enumerate(ids.tolist()):  # only the ended episodes (SB3 wants one dict per env)
                infos[e] = {
                    "terminal_observation": {"positions": pos[k], "globals": glob[k]},
                    "TimeLimit.truncated": bool(trunc[e] and not term[e]),
                    "correct": bool(correct[e]), "answer": answer[e], "tokens": int(tokens[e]),
                    "episode": {"r": float(self._ep_return[e]), "l": int(self._ep_len[e]), "t": now,
                                "correct": bool(correct[e]), "tokens": int(tokens[e]),
                                "cost_weight": float(weight[e])},
                }
            self._ep_return[ids] = 0.0
            self._ep_len[ids] = 0
            opts: dict[str, Any] = {"reset_mask": done}
            if self.cost_weights is not None:
                opts["cost_weight"] = self.cost_weights(self.num_envs)
            obs, _ = v.reset(options=opts)
        self.env_time += time.perf_counter() - t
        self.env_steps += self.num_envs
        return obs, rew.astype(np.float32), done, infos

    def action_masks(self) -> np.ndarray:
        """``bool[E, A]`` admissible actions of every sub-env (one compiled call)."""
        t = time.perf_counter()
        m = self.venv.action_masks()
        self.env_time += time.perf_counter() - t
        return m

    def close(self) -> None:
        self.venv.close()

    # -- attribute / method access -----------------------------------------------------------------
    def _n(self, indices) -> int:
        return len(list(self._get_indices(indices)))

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if attr_name == "render_mode":
            value = self.venv.render_mode
        elif attr_name == "action_masks":
            value = self.action_masks
        else:
            value = getattr(self.venv, attr_name)  # AttributeError propagates (has_attr relies on it)
        return [value] * self._n(indices)

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        """``action_masks`` -> the batched ``bool[E, A]`` array (rows of ``indices``); any other method
        is called once on the vector env and its result returned for each index."""
        if method_name == "action_masks":
            masks = self.action_masks()  # one compiled call for the whole batch
            return masks if indices is None else masks[list(self._get_indices(indices))]
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result] * self._n(indices)

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * self._n(indices)

    def get_images(self):
        frames = self.venv.render() if self.venv.render_mode == "rgb_array" else None
        return [frames[0] if frames else None] + [None] * (self.num_envs - 1)


def make_sb3_vec_env(num_envs: int = 8, *,
                     cost_weights: CostWeightSampler | Sequence[float] | float | None = None,
                     cost_weight_dist: str = "log-uniform", **env_kwargs) -> SB3VecEnv:
    """A :class:`SB3VecEnv` over a new ``TTSReplayVectorEnv(num_envs, autoreset_mode=DISABLED,
    **env_kwargs)`` (``store=``, ``max_branches=``, ... as for the vector env; ``autoreset_mode`` is
    ignored). With ``cost_weights`` (drawn per episode, see :class:`SB3VecEnv`) and no ``cost_weight``
    given, the env's ``cost_weight`` range is ``(0, high)`` so that the observation covers every draw."""
    env_kwargs.pop("autoreset_mode", None)
    env_kwargs.setdefault("mask_in_info", False)  # MaskablePPO asks action_masks() itself
    sampler = _sampler(cost_weights, cost_weight_dist)
    if sampler is not None:
        env_kwargs.setdefault("cost_weight", (0.0, max(sampler.high, 1e-9)))
    venv = TTSReplayVectorEnv(num_envs, autoreset_mode=AutoresetMode.DISABLED, **env_kwargs)
    return SB3VecEnv(venv, sampler)
