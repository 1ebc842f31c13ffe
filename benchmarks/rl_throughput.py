"""RL throughput: env steps/s inside SB3 training and the share of training time spent in the env.

    python benchmarks/rl_throughput.py [--data synthetic] [--timesteps 65536] [--num-envs 64]

Three measurements on the AIME24 stores of the four models (or the synthetic store):

1. env only: SB3VecEnv.step (tts_gym.envs.sb3) with uniformly random admissible actions (batched masks;
   no policy);
2. MaskablePPO.learn (tts_gym.rl.networks policy): total env steps/s, and the time inside the env
   (SB3VecEnv.step_async/step_wait + the batched action_masks call) as a share of learn();
3. the same for plain PPO (penalized no-ops, no masks).
"""
import argparse
import time

import numpy as np

from tts_gym.data.catalog import MODELS, SEARCH_BENCHMARKS
from tts_gym.data.resolve import resolve_stores
from tts_gym.rl import MaskableReplayPolicy, ReplayActorCriticPolicy, make_replay_vec_env, set_torch_threads


def env_only(stores, num_envs, max_branches, steps):
    env = make_replay_vec_env(stores, num_envs, max_branches=max_branches)
    env.seed(0)
    env.reset()
    rng = np.random.default_rng(0)
    n = 0
    t = time.perf_counter()
    while n < steps:
        m = env.env_method("action_masks")
        # one random admissible action per row, vectorised (Gumbel-max over the mask)
        a = np.argmax(np.where(m, rng.random(m.shape), -1.0), axis=1)
        env.step(a)
        n += num_envs
    return n / (time.perf_counter() - t)


def in_training(algo, policy, stores, args, invalid):
    env = make_replay_vec_env(stores, args.num_envs, max_branches=args.max_branches, invalid_action=invalid,
                              max_episode_steps=1500 if invalid == "penalize" else None)
    model = algo(policy, env, n_steps=args.n_steps, batch_size=1024, n_epochs=2, seed=0, verbose=0)
    model.learn(args.n_steps * args.num_envs)          # warm-up (compilation, allocation)
    env.env_time, env.env_steps = 0.0, 0
    t = time.perf_counter()
    model.learn(args.timesteps, reset_num_timesteps=False)
    total = time.perf_counter() - t
    return env.env_steps / total, env.env_time / total, env.env_steps / max(env.env_time, 1e-9)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="replay data, or 'synthetic' (default: $TTS_GYM_DATA)")
    p.add_argument("--timesteps", type=int, default=65_536)
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--n-steps", type=int, default=128)
    p.add_argument("--max-branches", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-ppo", action="store_true")
    args = p.parse_args()
    set_torch_threads(args.threads)
    stores = (resolve_stores("synthetic") if args.data == "synthetic"
              else resolve_stores(args.data, MODELS, SEARCH_BENCHMARKS))
    print(f"stores: {', '.join(s.name for s in stores)}; {args.num_envs} envs, M={args.max_branches}, "
          f"torch threads={args.threads}")
    sps = env_only(stores, args.num_envs, args.max_branches, 200_000)
    print(f"env only (random admissible actions, batched masks): {sps:,.0f} env steps/s")
    from sb3_contrib import MaskablePPO
    rows = [("MaskablePPO", MaskablePPO, MaskableReplayPolicy, "raise")]
    if not args.skip_ppo:
        from stable_baselines3 import PPO
        rows.append(("PPO", PPO, ReplayActorCriticPolicy, "penalize"))
    for name, algo, pol, inv in rows:
        total, share, inside = in_training(algo, pol, stores, args, inv)
        print(f"{name:12s} learn(): {total:,.0f} env steps/s overall; env time share {100 * share:.1f}% "
              f"(step_async/step_wait/action_masks); {inside:,.0f} env steps/s while in the env")


if __name__ == "__main__":
    main()
