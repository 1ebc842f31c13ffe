"""The training pieces the agent programs under ``agents/`` share: the settings every program has
(:class:`TrainingArgs`), the training env, held-in monitoring (a batched evaluator and callbacks),
the stored agent config, and :func:`learn_and_save`, the end of every program (learn with the
callbacks, evaluate once more, save the agent and its config).

A program reads like this (``agents/maskable_ppo.py``, shortened)::

    @dataclass
    class Args(TrainingArgs):                        # its own settings, each with its help
        learning_rate: float = 3e-4
        \"\"\"Adam step size\"\"\"

    args = parse_dataclass(Args)
    stores, env = make_training_env(args, dense_reward=args.dense_reward, ...)
    model = MaskablePPO(MaskableReplayPolicy, env, learning_rate=args.learning_rate, ...)
    learn_and_save(model, env, stores, args, "MaskablePPO")

The cost weight ``w`` of the reward ``1{correct} - w * tokens / token_scale`` is always called
``cost_weight`` here; ``gamma`` is only ever SB3's discount.
"""
from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback

from tts_gym.data.catalog import MODELS, SEARCH_BENCHMARKS

__all__ = ["TrainingArgs", "make_training_env", "make_replay_vec_env", "evaluate_batched",
           "EpisodeStatsCallback", "HeldInEvalCallback", "agent_config", "learn_and_save",
           "set_torch_threads"]


@dataclasses.dataclass
class TrainingArgs:
    """The settings of every agent program: the replay data and the training env
    (:func:`make_training_env`), and the run (:func:`learn_and_save`). A program's ``Args`` extends
    it with its env and algorithm settings (and may redeclare a field for its own default); read it
    with :func:`tts_gym.cli.dataclass_args.parse_dataclass`."""
    # -- data and env
    data: str | None = None
    """replay data: an HDF5 file, a directory of AutoTTS JSON, or 'synthetic' (default: $TTS_GYM_DATA
    or the cache of `tts-gym data fetch`)"""
    models: tuple[str, ...] = MODELS
    """models whose stores the agent trains on"""
    benchmark: str = SEARCH_BENCHMARKS[0]
    """the training (search) benchmark; the held-out ones are never loaded here"""
    max_branches: int = 32
    """positions per episode (M): the action space is Discrete(4 + 4M)"""
    num_envs: int = 64
    """episodes stepped together"""
    cost_weight_range: tuple[float, float] = (1e-3, 0.3)
    """range the per-episode cost weight w is drawn from"""
    cost_weight_dist: str = "log-uniform"
    """how w is drawn from its range: log-uniform or uniform"""
    token_scale: float = 100_000
    """tokens per unit of reward: reward = 1{correct} - w * tokens / token_scale"""
    # -- run
    timesteps: int = 1_000_000
    """environment steps to train for"""
    seed: int = 0
    """seed of the env's episode draws, the cost-weight sampler and the network"""
    threads: int = 1
    """torch threads"""
    name: str | None = None
    """run name (default: <algorithm>_<benchmark>_s<seed>)"""
    logdir: str = "runs"
    """TensorBoard logs and checkpoints"""
    eval_freq: int = 100_000
    """evaluate on the training stores every N env steps (0: never)"""
    eval_seeds: int = 2
    """reference shuffle seeds of that evaluation"""
    eval_cost_weights: tuple[float, ...] = (0.003, 0.03, 0.3)
    """cost weights the evaluation plays the agent at"""
    checkpoint_freq: int = 250_000
    """save a checkpoint every N env steps (0: never)"""
    save_agent: str | None = None
    """also write the final agent to PATH.zip + PATH.json"""
    progress: bool = True
    """show a progress bar"""
    verbose: int = 0
    """SB3's verbosity"""


def make_training_env(args: TrainingArgs, **env_kwargs):
    """``(stores, env)``: the training stores of ``args`` (``--data synthetic``: the built-in synthetic
    store) and :func:`make_replay_vec_env` over them with the env settings of ``args`` and
    ``env_kwargs``."""
    from tts_gym.data.resolve import resolve_stores
    stores = (resolve_stores("synthetic") if args.data == "synthetic"
              else resolve_stores(args.data, args.models, args.benchmark))
    env = make_replay_vec_env(stores, args.num_envs, cost_weight_range=args.cost_weight_range,
                              cost_weight_dist=args.cost_weight_dist, max_branches=args.max_branches,
                              token_scale=args.token_scale, **env_kwargs)
    return stores, env


def make_replay_vec_env(stores, num_envs: int = 64, *, cost_weight_range=(1e-3, 0.3),
                        cost_weight_dist: str = "log-uniform", max_branches: int = 64, fused: bool = True,
                        dense_reward: bool = True, invalid_action: str = "raise",
                        invalid_action_penalty: float = 0.1, permutation: str = "random",
                        token_scale: float = 100_000, max_episode_steps: int | None = None, **env_kwargs):
    """The training env: a :class:`tts_gym.envs.sb3.SB3VecEnv` of ``num_envs`` episodes over ``stores``
    (questions drawn uniformly across all of them), branch orders ``permutation``, dense rewards, and
    a cost weight drawn per episode from ``cost_weight_range`` (``cost_weight_dist``, see
    :class:`tts_gym.envs.sb3.CostWeightSampler`)."""
    from tts_gym.envs.sb3 import make_sb3_vec_env
    env_kwargs.setdefault("question_sampling", "uniform")
    return make_sb3_vec_env(num_envs, store=stores, cost_weights=cost_weight_range,
                            cost_weight_dist=cost_weight_dist, max_branches=max_branches, fused=fused,
                            dense_reward=dense_reward, token_scale=token_scale, invalid_action=invalid_action,
                            invalid_action_penalty=invalid_action_penalty, permutation=permutation,
                            max_episode_steps=max_episode_steps, **env_kwargs)


def set_torch_threads(n: int = 1) -> None:
    import torch
    torch.set_num_threads(int(n))


def agent_config(model, env, args, algo: str, extra: dict | None = None) -> dict:
    """The JSON config stored next to an agent's zip; ``args`` is the program's ``Args`` dataclass."""
    from tts_gym.rl.agent import obs_params_dict
    su = env.venv.setup
    low, high = (float(x) for x in args.cost_weight_range)
    cfg: dict[str, Any] = {
        "name": args.name, "algo": algo, "max_branches": int(su.M), "fused": bool(su.params.fused),
        "obs_params": obs_params_dict(su.oparams), "token_scale": float(su.token_scale),
        "cost_weight_range": [low, high], "cost_weight_dist": args.cost_weight_dist,
        "default_cost_weight": float(np.sqrt(low * high)),
        "stores": list(su.store_names), "policy_kwargs": dict(getattr(model, "policy_kwargs", {}) or {}),
        "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(args).items()},
        "timesteps_done": int(model.num_timesteps),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
    }
    cfg.update(extra or {})
    return cfg


def learn_and_save(model, env, stores, args, algo: str):
    """Train ``model`` for ``args.timesteps`` env steps and save it; returns the model.

    Logs episode statistics to TensorBoard (``args.logdir/args.name``), evaluates on the training
    stores every ``args.eval_freq`` steps (reference shuffles ``0 .. args.eval_seeds - 1``, cost
    weights ``args.eval_cost_weights``; 0: never), checkpoints every ``args.checkpoint_freq`` steps,
    evaluates once more at the end, and writes the agent (zip + JSON config) to ``<run>/final`` and,
    if set, to ``args.save_agent``."""
    from tts_gym.rl.agent import save_agent
    run_dir = Path(args.logdir) / args.name
    config = agent_config(model, env, args, algo)
    callbacks: list[BaseCallback] = [EpisodeStatsCallback()]
    held_in = None
    if args.eval_freq:
        held_in = HeldInEvalCallback(stores, config, args.eval_cost_weights, range(args.eval_seeds),
                                     args.eval_freq)
        callbacks.append(held_in)
    if args.checkpoint_freq:
        callbacks.append(AtomicCheckpointCallback(max(1, args.checkpoint_freq // env.num_envs),
                                                  str(run_dir / "checkpoints"), name_prefix=args.name))
    model.learn(args.timesteps, callback=CallbackList(callbacks), tb_log_name=args.name,
                progress_bar=args.progress)
    final = held_in.evaluate_now() if held_in else None
    config = agent_config(model, env, args, algo, {"heldin_eval": final})
    for path in [run_dir / "final"] + ([Path(args.save_agent)] if args.save_agent else []):
        zip_path, _ = save_agent(model, path, config)
        print(f"saved {zip_path} ({zip_path.stat().st_size / 1e6:.2f} MB)")
    return model


# ---------------------------------------------------------------------------------------------------
# batched evaluation (monitoring; the official evaluation goes through tts_gym.evaluate)
# ---------------------------------------------------------------------------------------------------

def evaluate_batched(policy, stores, cost_weights: Sequence[float], seeds: Sequence[int] = (0, 1), *,
                     max_branches: int | None = None, deterministic: bool | None = None) -> list[dict]:
    """Every question of ``stores`` x reference shuffle ``seeds`` x ``cost_weights``, all episodes
    stepped together in one :class:`~tts_gym.envs.vector.TTSReplayVectorEnv` (``deterministic``:
    default the policy's own setting). ``policy``: an :class:`~tts_gym.rl.agent.AgentPolicy`.
    Returns per cost weight ``{"cost_weight", "accuracy" (%), "tokens" (mean per question), "steps"}``."""
    from gymnasium.vector import AutoresetMode
    from tts_gym.envs.vector import TTSReplayVectorEnv

    M = int(max_branches or policy.M)
    det = policy.deterministic if deterministic is None else bool(deterministic)
    weights = [float(w) for w in cost_weights]
    Q = sum(int(s.num_questions) for s in stores)
    qs = np.tile(np.arange(Q), len(seeds) * len(weights))
    ss = np.tile(np.repeat(np.asarray(seeds), Q), len(weights))
    ws = np.repeat(np.asarray(weights), Q * len(seeds))
    n = qs.size
    venv = TTSReplayVectorEnv(n, stores, autoreset_mode=AutoresetMode.NEXT_STEP, max_branches=M,
                              cost_weight=(0.0, max(max(weights), 1e-9)), copy=False)
    obs, _ = venv.reset(seed=0, options={"question": qs, "shuffle_seed": ss, "cost_weight": ws})
    done = np.zeros(n, bool)
    tokens = np.zeros(n, np.int64)
    correct = np.zeros(n, bool)
    steps = np.zeros(n, np.int64)
    actions = np.full(n, 2, np.int64)          # ANSWER for rows already finished (ignored / ends at once)
    while not done.all():
        act = np.flatnonzero(~done)
        mask = venv.action_masks()[act]
        logits = policy._logits(obs["positions"][act], obs["globals"][act])
        actions[:] = 2
        actions[act] = policy._choose(logits, mask, det)
        obs, _, term, trunc, info = venv.step(actions)
        steps[act] += 1
        new = (term | trunc) & ~done
        if new.any():
            tokens[new] = info["tokens"][new]
            correct[new] = info["correct"][new]
            done |= new
    out = []
    for w in weights:
        sel = ws == w
        out.append({"cost_weight": w, "accuracy": 100.0 * correct[sel].mean(), "tokens": float(tokens[sel].mean()),
                    "steps": float(steps[sel].mean())})
    venv.close()
    return out


# ---------------------------------------------------------------------------------------------------
# callbacks
# ---------------------------------------------------------------------------------------------------

class EpisodeStatsCallback(BaseCallback):
    """Logs accuracy and tokens of the training episodes (from the adapter's ``episode`` infos) to
    TensorBoard at every rollout end: ``episodes/accuracy``, ``episodes/tokens``,
    ``episodes/cost_weight_median``, ``env/steps_per_s``, ``env/time_share``."""

    def __init__(self):
        super().__init__()
        self._t0 = time.perf_counter()
        self._n0 = 0

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buf = list(self.model.ep_info_buffer)
        if buf:
            self.logger.record("episodes/accuracy", 100.0 * float(np.mean([e.get("correct", 0) for e in buf])))
            self.logger.record("episodes/tokens", float(np.mean([e.get("tokens", 0) for e in buf])))
            self.logger.record("episodes/cost_weight_median",
                               float(np.median([e.get("cost_weight", 0) for e in buf])))
        env = self.training_env
        dt = time.perf_counter() - self._t0
        if dt > 0 and hasattr(env, "env_time"):
            self.logger.record("env/steps_per_s", (self.num_timesteps - self._n0) / dt)
            self.logger.record("env/time_share", env.env_time / dt)


class HeldInEvalCallback(BaseCallback):
    """Every ``eval_freq`` env steps: :func:`evaluate_batched` on the training stores (held-in
    questions, reference shuffles ``seeds``) at ``cost_weights``, greedy and sampled; logs
    ``heldin_<mode>/acc_w<w>`` and ``heldin_<mode>/tokens_w<w>`` and prints one line per mode."""

    def __init__(self, stores, config: dict, cost_weights=(0.003, 0.03, 0.3), seeds=(0, 1),
                 eval_freq: int = 100_000, verbose: int = 1):
        super().__init__(verbose)
        self.stores, self.config = stores, config
        self.cost_weights, self.seeds = list(cost_weights), list(seeds)
        self.eval_freq = int(eval_freq)
        self._next = self.eval_freq
        self.history: list[tuple[int, list[dict]]] = []

    def evaluate_now(self) -> dict[str, list[dict]]:
        from tts_gym.rl.agent import AgentPolicy
        pol = AgentPolicy(self.model, self.config, seed=0)
        out = {}
        for mode, det in (("greedy", True), ("sampled", False)):
            res = out[mode] = evaluate_batched(pol, self.stores, self.cost_weights, self.seeds,
                                               deterministic=det)
            for r in res:
                tag = f"w{r['cost_weight']:g}"
                self.logger.record(f"heldin_{mode}/acc_{tag}", r["accuracy"])
                self.logger.record(f"heldin_{mode}/tokens_{tag}", r["tokens"])
            if self.verbose:
                line = "  ".join(f"w={r['cost_weight']:g}: {r['accuracy']:.1f}% {r['tokens'] / 1000:.0f}k"
                                 for r in res)
                print(f"[held-in eval @ {self.num_timesteps:,} steps, {mode}] {line}", flush=True)
        self.model.policy.set_training_mode(False)
        self.history.append((self.num_timesteps, out))
        return out

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.num_timesteps >= self._next:
            self._next += self.eval_freq
            self.evaluate_now()
        return True


class AtomicCheckpointCallback(CheckpointCallback):
    """SB3's checkpoint callback, each checkpoint written atomically (a kill leaves the previous
    checkpoints whole)."""

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            import io

            from tts_gym.files import atomic_write
            buf = io.BytesIO()
            self.model.save(buf)
            atomic_write(self._checkpoint_path(extension="zip"), buf.getvalue())
        return True
