"""DQN on tts_gym/Replay-v0 (no action masks; flat MLP Q-network), for comparison.

    python agents/dqn.py --timesteps 500000 --seed 0

Inadmissible actions are the env's penalized no-ops (invalid_action="penalize"). The Q-network is
SB3's MultiInputPolicy (a flat MLP over positions and globals): DQN has no hook for the per-position
logits of tts_gym.rl.networks, so it must learn CONTINUE(i) for each i separately -- expect it to
trail the PPO agents. Evaluation plays the greedy action among the admissible ones (AgentPolicy
masks the Q-values).
"""
import argparse
from pathlib import Path

from stable_baselines3 import DQN

from tts_gym.rl import (add_common_args, agent_config, make_replay_vec_env, save_agent, set_torch_threads,
                        standard_callbacks, training_stores)


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter),
                        timesteps=500_000)
    g = p.add_argument_group("DQN")
    g.add_argument("--buffer-size", type=int, default=200_000)
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--exploration-fraction", type=float, default=0.2)
    g.add_argument("--train-freq", type=int, default=4, help="gradient step every N vector steps")
    g.add_argument("--invalid-penalty", type=float, default=0.1)
    p.set_defaults(max_episode_steps=400, num_envs=16)
    args = p.parse_args(argv)
    args.name = args.name or f"dqn_{args.benchmark}_s{args.seed}"
    set_torch_threads(args.threads)

    stores = training_stores(args.data, args.models, args.benchmark)
    env = make_replay_vec_env(stores, args.num_envs, gamma=args.gamma_range, max_branches=args.max_branches,
                              invalid_action="penalize", invalid_action_penalty=args.invalid_penalty,
                              max_episode_steps=args.max_episode_steps)
    model = DQN("MultiInputPolicy", env, learning_rate=args.lr, buffer_size=args.buffer_size,
                batch_size=args.batch_size, gamma=0.99, train_freq=args.train_freq, learning_starts=10_000,
                exploration_fraction=args.exploration_fraction, target_update_interval=5_000,
                seed=args.seed, verbose=args.verbose, tensorboard_log=args.logdir,
                policy_kwargs={"net_arch": [args.hidden * 4, args.hidden * 4]})
    config = agent_config(model, env, args, "DQN")
    run_dir = Path(args.logdir) / args.name
    callbacks, held_in = standard_callbacks(args, stores, env, config, run_dir)
    model.learn(args.timesteps, callback=callbacks, tb_log_name=args.name, progress_bar=not args.no_progress)

    final = held_in.evaluate_now() if held_in else None
    config = agent_config(model, env, args, "DQN", {"heldin_eval": final})
    for path in [run_dir / "final"] + ([Path(args.save_agent)] if args.save_agent else []):
        z, _ = save_agent(model, path, config)
        print(f"saved {z} ({z.stat().st_size / 1e6:.2f} MB)")
    return model


if __name__ == "__main__":
    main()
