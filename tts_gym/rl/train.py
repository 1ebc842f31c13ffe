"""Shared pieces of the agent programs under ``agents/``: stores, env construction, callbacks,
a fast batched evaluator (for held-in monitoring) and the stored-agent config.

The agent programs (``agents/maskable_ppo.py``, ``agents/ppo.py``, ``agents/dqn.py``) stay short:
parse arguments -> :func:`training_stores` -> :func:`make_replay_vec_env` (a
:class:`tts_gym.envs.sb3.SB3VecEnv` with the training defaults) -> algorithm ->
``learn(callback=standard_callbacks(...))`` -> :func:`tts_gym.rl.agent.save_agent`.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback

__all__ = ["MODELS", "training_stores", "make_replay_vec_env", "add_common_args", "agent_config", "evaluate_batched",
           "HeldInEvalCallback", "EpisodeStatsCallback", "standard_callbacks", "set_torch_threads",
           "reproduce_command"]

MODELS = ("Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B")


def default_data_dir() -> str | None:
    """``$TTS_GYM_DATA``, else ``../shared/autotts-replay`` beside the checkout if present."""
    env = os.environ.get("TTS_GYM_DATA")
    if env:
        return env
    p = Path(__file__).resolve().parents[2].parent / "shared" / "autotts-replay"
    return str(p) if p.is_dir() else None


def training_stores(data: str | None, models: Sequence[str] = MODELS, benchmark: str = "aime24"):
    """The replay stores an agent trains on: ``benchmark`` of every model in ``models``, or the
    synthetic store when ``data == "synthetic"`` (or no data is found)."""
    from tts_gym.data.resolve import resolve_store
    if data is None:
        data = default_data_dir()
    if data is None or data == "synthetic":
        return [resolve_store("synthetic")]
    return [resolve_store(data, m, benchmark) for m in models]


def make_replay_vec_env(stores, num_envs: int = 64, *, gamma=(1e-3, 0.3), gamma_dist: str = "log-uniform",
                        max_branches: int = 64, fused: bool = True, dense_reward: bool = True,
                        invalid_action: str = "raise", invalid_action_penalty: float = 0.1,
                        permutation: str = "random", token_scale: float = 100_000,
                        max_episode_steps: int | None = None, **env_kwargs):
    """The training env: a :class:`tts_gym.envs.sb3.SB3VecEnv` of ``num_envs`` episodes over ``stores``
    (questions drawn uniformly across all of them), branch orders ``permutation``, dense rewards, gamma
    drawn per episode (``gamma``/``gamma_dist``, see :class:`tts_gym.envs.sb3.GammaSampler`)."""
    from tts_gym.envs.sb3 import make_sb3_vec_env
    env_kwargs.setdefault("question_sampling", "uniform")
    return make_sb3_vec_env(num_envs, store=stores, gamma=gamma, gamma_dist=gamma_dist,
                            max_branches=max_branches, fused=fused, dense_reward=dense_reward,
                            token_scale=token_scale, invalid_action=invalid_action,
                            invalid_action_penalty=invalid_action_penalty, permutation=permutation,
                            max_episode_steps=max_episode_steps, **env_kwargs)


def set_torch_threads(n: int = 1) -> None:
    import torch
    torch.set_num_threads(int(n))


def add_common_args(p: argparse.ArgumentParser, *, timesteps: int = 1_000_000) -> argparse.ArgumentParser:
    g = p.add_argument_group("data and env")
    g.add_argument("--data", default=None, help="AutoTTS replay dir / HDF5 / 'synthetic' "
                   "(default: $TTS_GYM_DATA or ../shared/autotts-replay)")
    g.add_argument("--models", nargs="+", default=list(MODELS))
    g.add_argument("--benchmark", default="aime24", help="training (search) benchmark")
    g.add_argument("--max-branches", type=int, default=32, help="positions per episode (M)")
    g.add_argument("--num-envs", type=int, default=64)
    g.add_argument("--gamma-range", type=float, nargs=2, default=(1e-3, 0.3), metavar=("LOW", "HIGH"),
                   help="cost weight drawn log-uniformly per episode (reward = correct - gamma * tokens / 1e5)")
    g.add_argument("--max-episode-steps", type=int, default=None)
    g = p.add_argument_group("training")
    g.add_argument("--timesteps", type=int, default=timesteps)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--hidden", type=int, default=32)
    g.add_argument("--action-kinds", nargs="+", default=["branch", "sample", "answer", "continue", "prune"],
                   help="actions the agent may choose (tts_gym.rl.networks.ACTION_KINDS)")
    g.add_argument("--lr", type=float, default=3e-4)
    g.add_argument("--threads", type=int, default=1, help="torch threads")
    g = p.add_argument_group("logging")
    g.add_argument("--name", default=None, help="run name (default: <algo>_<benchmark>_s<seed>)")
    g.add_argument("--logdir", default="runs", help="TensorBoard logs and checkpoints (gitignored)")
    g.add_argument("--eval-freq", type=int, default=100_000, help="held-in evaluation every N env steps (0: off)")
    g.add_argument("--eval-seeds", type=int, default=2, help="reference shuffle seeds of the held-in evaluation")
    g.add_argument("--eval-gammas", type=float, nargs="+", default=(0.003, 0.03, 0.3))
    g.add_argument("--checkpoint-freq", type=int, default=250_000, help="checkpoint every N env steps (0: off)")
    g.add_argument("--save-agent", default=None, help="write the final agent to PATH.zip + PATH.json")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--verbose", type=int, default=0)
    return p


def reproduce_command(argv: Sequence[str] | None = None) -> str:
    argv = list(sys.argv if argv is None else argv)
    return "python " + " ".join(shlex.quote(a) for a in argv)


def agent_config(model, env, args: argparse.Namespace, algo: str, extra: dict | None = None) -> dict:
    """The json config stored next to an agent's zip."""
    from tts_gym.rl.agent import obs_params_dict
    su = env.venv.setup
    cfg: dict[str, Any] = {
        "name": args.name, "algo": algo, "max_branches": int(su.M), "fused": True,
        "obs_params": obs_params_dict(su.oparams), "token_scale": float(su.token_scale),
        "gamma_range": [float(x) for x in args.gamma_range], "gamma_dist": "log-uniform",
        "default_gamma": float(np.sqrt(args.gamma_range[0] * args.gamma_range[1])),
        "stores": list(su.store_names), "policy_kwargs": dict(getattr(model, "policy_kwargs", {}) or {}),
        "args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
        "timesteps_done": int(model.num_timesteps),
        "command": reproduce_command(),
    }
    cfg.update(extra or {})
    return cfg


# ---------------------------------------------------------------------------------------------------
# batched evaluation (monitoring; the official evaluation goes through tts_gym.evaluate)
# ---------------------------------------------------------------------------------------------------

def evaluate_batched(policy, stores, gammas: Sequence[float], seeds: Sequence[int] = (0, 1), *,
                     max_branches: int | None = None, deterministic: bool | None = None) -> list[dict]:
    """Every question of ``stores`` x reference shuffle ``seeds`` x ``gammas``, all episodes stepped
    together in one :class:`~tts_gym.envs.vector.TTSReplayVectorEnv` (``deterministic``: default the
    policy's own setting). ``policy``:
    an :class:`~tts_gym.rl.agent.AgentPolicy`. Returns per gamma ``{"gamma", "accuracy" (%),
    "tokens" (mean per question), "steps"}``."""
    from gymnasium.vector import AutoresetMode
    from tts_gym.envs.vector import TTSReplayVectorEnv

    M = int(max_branches or policy.M)
    det = policy.deterministic if deterministic is None else bool(deterministic)
    gammas = [float(g) for g in gammas]
    Q = sum(int(s.num_questions) for s in stores)
    qs = np.tile(np.arange(Q), len(seeds) * len(gammas))
    ss = np.tile(np.repeat(np.asarray(seeds), Q), len(gammas))
    gs = np.repeat(np.asarray(gammas), Q * len(seeds))
    n = qs.size
    venv = TTSReplayVectorEnv(n, stores, autoreset_mode=AutoresetMode.NEXT_STEP, max_branches=M,
                              cost_weight=(0.0, max(max(gammas), 1e-9)), copy=False)
    obs, _ = venv.reset(seed=0, options={"question": qs, "shuffle_seed": ss, "cost_weight": gs})
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
    for g in gammas:
        sel = gs == g
        out.append({"gamma": g, "accuracy": 100.0 * correct[sel].mean(), "tokens": float(tokens[sel].mean()),
                    "steps": float(steps[sel].mean())})
    venv.close()
    return out


# ---------------------------------------------------------------------------------------------------
# callbacks
# ---------------------------------------------------------------------------------------------------

class EpisodeStatsCallback(BaseCallback):
    """Logs accuracy and tokens of the training episodes (from the adapter's ``episode`` infos) to
    TensorBoard at every rollout end: ``episodes/accuracy``, ``episodes/tokens``, ``episodes/gamma``,
    ``env/steps_per_s``, ``env/time_share``."""

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
            self.logger.record("episodes/gamma_median", float(np.median([e.get("gamma", 0) for e in buf])))
        env = self.training_env
        dt = time.perf_counter() - self._t0
        if dt > 0 and hasattr(env, "env_time"):
            self.logger.record("env/steps_per_s", (self.num_timesteps - self._n0) / dt)
            self.logger.record("env/time_share", env.env_time / dt)


class HeldInEvalCallback(BaseCallback):
    """Every ``eval_freq`` env steps: :func:`evaluate_batched` on the training stores (held-in
    questions, reference shuffles ``seeds``) at ``gammas``; logs ``heldin/acc_g<gamma>`` and
    ``heldin/tokens_g<gamma>`` and prints one line."""

    def __init__(self, stores, config: dict, gammas=(0.003, 0.03, 0.3), seeds=(0, 1),
                 eval_freq: int = 100_000, verbose: int = 1):
        super().__init__(verbose)
        self.stores, self.config, self.gammas, self.seeds = stores, config, list(gammas), list(seeds)
        self.eval_freq = int(eval_freq)
        self._next = self.eval_freq
        self.history: list[tuple[int, list[dict]]] = []

    def evaluate_now(self) -> dict[str, list[dict]]:
        from tts_gym.rl.agent import AgentPolicy
        pol = AgentPolicy(self.model, self.config, seed=0)
        out = {}
        for mode, det in (("greedy", True), ("sampled", False)):
            res = out[mode] = evaluate_batched(pol, self.stores, self.gammas, self.seeds, deterministic=det)
            for r in res:
                tag = f"g{r['gamma']:g}"
                self.logger.record(f"heldin_{mode}/acc_{tag}", r["accuracy"])
                self.logger.record(f"heldin_{mode}/tokens_{tag}", r["tokens"])
            if self.verbose:
                line = "  ".join(f"γ={r['gamma']:g}: {r['accuracy']:.1f}% {r['tokens'] / 1000:.0f}k" for r in res)
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


def standard_callbacks(args: argparse.Namespace, stores, env, model_config: dict, run_dir: Path):
    """Episode stats + held-in evaluation + checkpoints, as configured by :func:`add_common_args`."""
    cbs: list[BaseCallback] = [EpisodeStatsCallback()]
    held = None
    if args.eval_freq:
        held = HeldInEvalCallback(stores, model_config, args.eval_gammas, range(args.eval_seeds),
                                  args.eval_freq)
        cbs.append(held)
    if args.checkpoint_freq:
        cbs.append(AtomicCheckpointCallback(max(1, args.checkpoint_freq // env.num_envs),
                                            str(run_dir / "checkpoints"), name_prefix=args.name))
    return CallbackList(cbs), held
