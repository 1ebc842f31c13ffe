"""Trained RL agents as :class:`tts_gym.policies.Policy` objects, and where they are stored.

An agent is two files: ``<name>.zip`` (the stable-baselines3 / sb3-contrib model) and ``<name>.json``
(its exact configuration: algorithm, ``max_branches``, the observation normalisers of its training env,
the cost-weight range, the training arguments, and the one command that reproduces it). Configs and
zips written before the cost weight had its own name (``gamma_range``, ``default_gamma``) load too.

:class:`AgentPolicy` plays an agent at a fixed cost weight (its operating point; the RL analogue of
CMC's beta) through **any** reference-semantics env: at every step it rebuilds the
observation the agent was trained on from the episode's :class:`~tts_gym.envs.view.EpisodeView` with the
env's own observation kernel (:meth:`~tts_gym.envs.view.EpisodeView.write_observation`), but with the
agent's ``max_branches``, its training normalisers and its cost weight -- so the env's ``max_branches``
(128 under ``tts_gym.evaluate``'s reference protocol), its ``cost_weight`` and the evaluation stores
do not change what the agent sees. Actions are mapped back
from the agent's layout (``4 + 4 * M_agent``) to the env's. The gold answer is never read.

::

    from tts_gym.rl import load_agent_policy
    pol = load_agent_policy("maskable_ppo_aime24", cost_weight=0.02)
    tts_gym.evaluate(pol, stores="Qwen3-8B/aime25", seeds=range(10))
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from tts_gym.core import actions as A
from tts_gym.core.kernels import EnvParams
from tts_gym.core.observation import ObsParams, make_buffers
from tts_gym.policies.base import Policy, PolicyError

__all__ = ["AgentPolicy", "load_agent_policy", "load_agent", "save_agent", "agent_dirs",
           "resolve_agent", "obs_params_dict", "evaluate_agent_reference", "AGENTS_ENV"]

AGENTS_ENV = "TTS_GYM_AGENTS"


SHIPPED_AGENTS = Path(__file__).resolve().parents[1] / "assets" / "agents"
"""The agents shipped with the package (package data: found from an installed wheel too)."""


def agent_dirs() -> list[Path]:
    """Where agents are looked up by name: ``$TTS_GYM_AGENTS`` (``os.pathsep``-separated), then the
    shipped agents (:data:`SHIPPED_AGENTS`), then ``./agents/trained``."""
    out = [Path(p).expanduser() for p in os.environ.get(AGENTS_ENV, "").split(os.pathsep) if p]
    out.append(SHIPPED_AGENTS)
    out.append(Path.cwd() / "agents" / "trained")
    return list(dict.fromkeys(out))


def resolve_agent(name_or_path) -> tuple[Path, Path]:
    """``(zip, json)`` of an agent given by name (see :func:`agent_dirs`) or path (with or without
    ``.zip``)."""
    p = Path(os.fspath(name_or_path)).expanduser()
    cands = [p] if p.suffix in (".zip", ".json") or p.parent != Path(".") or p.exists() else []
    cands += [d / p.name for d in agent_dirs()]
    for c in cands:
        base = c.with_suffix("") if c.suffix in (".zip", ".json") else c
        z, j = base.with_name(base.name + ".zip"), base.with_name(base.name + ".json")
        if z.is_file():
            return z, j
    raise FileNotFoundError(f"no agent {str(name_or_path)!r} (looked in {[str(d) for d in agent_dirs()]})")


def obs_params_dict(oparams: ObsParams) -> dict:
    return {k: float(v) for k, v in oparams._asdict().items()}


def save_agent(model, path, config: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``<path>.zip`` and ``<path>.json``; ``config`` must hold ``algo``, ``max_branches`` and
    ``obs_params`` (see :func:`tts_gym.rl.train.agent_config`)."""
    base = Path(os.fspath(path))
    if base.suffix == ".zip":
        base = base.with_suffix("")
    import io

    from tts_gym.files import atomic_write
    base.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()            # SB3 writes a file object as is (a path would get ".zip" appended)
    model.save(buf)
    atomic_write(str(base) + ".zip", buf.getvalue())
    atomic_write(str(base) + ".json", json.dumps(dict(config), indent=2, sort_keys=False, default=str) + "\n")
    return Path(str(base) + ".zip"), Path(str(base) + ".json")


def _algo_class(name: str):
    name = str(name)
    if name == "MaskablePPO":
        from sb3_contrib import MaskablePPO
        return MaskablePPO
    import stable_baselines3 as sb3
    if hasattr(sb3, name):
        return getattr(sb3, name)
    import sb3_contrib
    return getattr(sb3_contrib, name)


_RENAMED = {"gamma_range": "cost_weight_range", "default_gamma": "default_cost_weight",
            "gamma_dist": "cost_weight_dist"}
"""Keys of agent configs (and of the network's ``policy_kwargs``) before the cost weight was called
``cost_weight`` everywhere; read as their new names."""


def _renamed(d: Mapping[str, Any]) -> dict:
    return {_RENAMED.get(k, k): v for k, v in d.items()}


def _saved_policy_kwargs(zip_path: Path) -> dict:
    """The ``policy_kwargs`` stored in an SB3 zip (a plain JSON entry of its ``data`` file)."""
    import zipfile
    with zipfile.ZipFile(zip_path) as zf:
        data = json.loads(zf.read("data"))
    kwargs = data.get("policy_kwargs")
    return kwargs if isinstance(kwargs, dict) and ":serialized:" not in kwargs else {}


def load_agent(name_or_path) -> tuple[Any, dict]:
    """``(model, config)`` of a stored agent (CPU), with the config's keys under their current names."""
    z, j = resolve_agent(name_or_path)
    config = _renamed(json.loads(j.read_text())) if j.is_file() else {}
    if "policy_kwargs" in config:
        config["policy_kwargs"] = _renamed(config["policy_kwargs"])
    algo = _algo_class(config.get("algo", "MaskablePPO"))
    saved = _saved_policy_kwargs(z)
    custom = {"policy_kwargs": _renamed(saved)} if set(saved) & set(_RENAMED) else None
    model = algo.load(str(z), device="cpu", custom_objects=custom)
    return model, config


class AgentPolicy(Policy):
    """A trained agent at a fixed ``cost_weight`` (see the module docstring).

    ``model``: an SB3 model; ``config``: its json config (``max_branches``, ``obs_params``,
    ``default_cost_weight``). ``deterministic``: argmax of the masked logits (default) or sampling from
    them (Gumbel-max, generator seeded by ``seed``: reproducible for a fixed episode order). :meth:`act` needs the view (every evaluator passes it);
    :meth:`predict` (SB3 signature) works on observations of an env with the agent's own
    ``max_branches`` and overrides their cost-weight entry."""

    requires_view = False

    def __init__(self, model, config: Mapping[str, Any] | None = None, cost_weight: float | None = None,
                 deterministic: bool = True, name: str | None = None, seed: int | None = 0):
        config = _renamed(config or {})
        M = int(config.get("max_branches", model.observation_space["positions"].shape[0]))
        if cost_weight is None:
            cost_weight = float(config.get("default_cost_weight", 0.01))
        self.agent_name = name or config.get("name", "agent")
        super().__init__(agent=self.agent_name, cost_weight=float(cost_weight))
        self.name = "rl"
        self.model = model
        self.config = config
        self.cost_weight = float(cost_weight)
        self.deterministic = bool(deterministic)
        self.M = M
        op = config.get("obs_params")
        if op is None:
            raise ValueError("agent config lacks 'obs_params' (the training env's observation normalisers)")
        self.oparams = ObsParams(**{k: float(op[k]) for k in ObsParams._fields})
        self.params_agent = EnvParams(max_branches=M, fused=True, probe_cost=0, token_budget=0)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        pos, glob = make_buffers(1, M)
        self._pos, self._glob = pos[0], glob[0]
        self._mask = np.zeros(A.num_actions(M), np.bool_)
        import torch as th
        self._th = th
        self._policy = model.policy
        self._policy.set_training_mode(False)
        # the equivariant actor also runs in numpy (batch-of-one calls); a snapshot of the weights,
        # so policies built during training (held-in evaluation) are rebuilt at each evaluation
        from tts_gym.rl.networks import EquivariantNet
        ext = getattr(self._policy, "mlp_extractor", None)
        self._numpy_actor = ext.numpy_actor() if isinstance(ext, EquivariantNet) else None

    # -- episode protocol ----------------------------------------------------------------------------
    def reset(self, view) -> None:
        if view is not None:
            self._check_view(view)

    @staticmethod
    def _check_view(view) -> None:
        if not view.fused:
            raise PolicyError("RL agents are trained in fused mode (advancing reveals the answer)")

    def observe(self, view):
        """The agent's observation and its action mask (agent layout) for the episode of ``view``:
        ``(positions [M, F], globals [G], mask [4 + 4M])``, this policy's buffers (overwritten by the
        next call)."""
        self._check_view(view)
        view.write_observation(self.oparams, self.cost_weight, self._pos, self._glob, params=self.params_agent)
        view.action_mask(self._mask, params=self.params_agent)
        return self._pos, self._glob, self._mask

    def _logits(self, positions: np.ndarray, globals_: np.ndarray) -> np.ndarray:
        if self._numpy_actor is not None and positions.ndim == 2:   # batch of one: numpy path
            feats = np.concatenate([globals_.reshape(1, -1), positions.reshape(1, -1)], axis=1)
            return self._numpy_actor(feats)
        return self.torch_logits(positions, globals_)

    def torch_logits(self, positions: np.ndarray, globals_: np.ndarray) -> np.ndarray:
        """Logits (or Q-values) of the SB3 policy for a batch of observations."""
        th = self._th
        with th.no_grad():
            obs = {"positions": th.as_tensor(positions, dtype=th.float32).reshape(-1, self.M, positions.shape[-1]),
                   "globals": th.as_tensor(globals_, dtype=th.float32).reshape(-1, globals_.shape[-1])}
            pol = self._policy
            if hasattr(pol, "mlp_extractor"):            # actor-critic: the actor's logits
                feats = pol.extract_features(obs, pol.pi_features_extractor)
                return pol.action_net(pol.mlp_extractor.forward_actor(feats)).numpy()
            if hasattr(pol, "q_net"):                    # DQN: Q-values
                return pol.q_net(obs).numpy()
            raise TypeError(f"unsupported SB3 policy {type(pol).__name__}")

    def _choose(self, logits: np.ndarray, mask: np.ndarray, deterministic: bool) -> np.ndarray:
        z = np.where(mask, logits.astype(np.float64), -np.inf)
        if not deterministic:   # sample from softmax(z) by the Gumbel-max trick (vectorised)
            z = z - np.log(-np.log(self.rng.random(z.shape)))
        return z.argmax(axis=-1)

    def to_env_action(self, a: int, env_max_branches: int) -> int:
        """Agent action id -> the same action in an env with ``env_max_branches`` positions."""
        a = int(a)
        if a < A.NUM_GLOBAL_ACTIONS:
            return a
        kind, i = divmod(a - A.NUM_GLOBAL_ACTIONS, self.M)
        return A.NUM_GLOBAL_ACTIONS + kind * int(env_max_branches) + i

    def act(self, observation, view) -> int:
        if view is None:
            return self.predict_one(observation, None, self.deterministic)
        pos, glob, mask = self.observe(view)
        a = int(self._choose(self._logits(pos, glob), mask, self.deterministic)[0])
        return self.to_env_action(a, view.max_branches)

    def predict_one(self, observation, mask, deterministic: bool) -> int:
        a, _ = self.predict(observation, action_masks=mask, deterministic=deterministic)
        return int(np.asarray(a).reshape(-1)[0])

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True,
                action_masks=None):
        """SB3 ``predict`` on observations of an env with the agent's ``max_branches``; the
        observation's cost-weight entry is replaced by this policy's ``cost_weight``."""
        from tts_gym.core.observation import G_COST_WEIGHT
        pos = np.asarray(observation["positions"], np.float32)
        glob = np.array(observation["globals"], np.float32)
        if pos.shape[-2] != self.M:
            raise PolicyError(f"agent has max_branches={self.M}, observation has {pos.shape[-2]} positions; "
                              f"use act(obs, view) (the evaluators do) for other envs")
        single = glob.ndim == 1
        glob = glob.reshape(-1, glob.shape[-1])
        glob[:, G_COST_WEIGHT] = self.cost_weight
        logits = self._logits(pos, glob)
        mask = np.ones_like(logits, dtype=bool) if action_masks is None else \
            np.asarray(action_masks, bool).reshape(logits.shape)
        acts = self._choose(logits, mask, deterministic)
        return (acts[0] if single else acts), state

    def with_cost_weight(self, cost_weight: float) -> "AgentPolicy":
        """The same agent at another operating point (shares the model)."""
        return AgentPolicy(self.model, self.config, cost_weight=cost_weight, deterministic=self.deterministic,
                           name=self.agent_name, seed=self.seed)

    def __repr__(self) -> str:
        return f"AgentPolicy({self.agent_name!r}, cost_weight={self.cost_weight:g})"


def load_agent_policy(name_or_path, cost_weight: float | None = None, deterministic: bool | None = None,
                      seed: int | None = 0) -> AgentPolicy:
    """A stored agent (by name, e.g. ``"maskable_ppo_aime24"``, or path) as a :class:`Policy` at
    ``cost_weight`` (default: the config's ``default_cost_weight``). ``deterministic``: greedy actions, or
    sampling from the trained (stochastic) policy with a generator seeded by ``seed``; default: the
    config's ``deterministic`` entry, else sampling."""
    model, config = load_agent(name_or_path)
    name = config.get("name") or Path(os.fspath(name_or_path)).stem
    if deterministic is None:
        deterministic = bool(config.get("deterministic", False))
    return AgentPolicy(model, config, cost_weight=cost_weight, deterministic=deterministic, name=name, seed=seed)


def evaluate_agent_reference(store, name_or_path, params: Mapping[str, Any] | None = None, seeds=range(100),
                             progress: bool | None = False):
    """The reference protocol (``docs/replay-semantics.md``, "Reference protocol") for a stored
    agent through the Python env loop (:func:`tts_gym.evaluation.rollout.evaluate_reference_python`):
    the hook of ``tts-gym eval --agent NAME``.
    ``params``: ``cost_weight`` (default: the agent's ``default_cost_weight``), ``greedy`` (bool,
    default: the config's ``deterministic`` entry, else sampling the trained policy, seeded), ``seed``
    (0). ``progress``: a progress bar on stderr (``None``: when stderr is a terminal)."""
    from tts_gym.evaluation.rollout import evaluate_reference_python
    p = dict(params or {})
    unknown = sorted(set(p) - {"cost_weight", "greedy", "seed"})
    if unknown:
        raise ValueError(f"an agent takes --param cost_weight=W / greedy=true / seed=S, got {unknown}")
    import math
    w, greedy, seed = p.get("cost_weight"), p.get("greedy"), p.get("seed", 0)
    if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0):
        raise ValueError(f"agent: parameter 'cost_weight' must be a number in [0, inf), got {w!r}")
    if greedy is not None and not isinstance(greedy, bool):
        raise ValueError(f"agent: parameter 'greedy' must be true or false, got {greedy!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"agent: parameter 'seed' must be an integer in [0, 2**63-1], got {seed!r}")
    pol = load_agent_policy(name_or_path, cost_weight=None if w is None else float(w), deterministic=greedy,
                            seed=seed)
    shown = {"cost_weight": pol.cost_weight, "greedy": pol.deterministic}
    return evaluate_reference_python(store, pol, seeds, name=f"agent:{pol.agent_name}", params=shown,
                                     progress=progress)
