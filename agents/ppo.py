"""Plain PPO on tts_gym/Replay-v0 (no action masks), for comparison with agents/maskable_ppo.py.

    python agents/ppo.py --timesteps 1000000 --seed 0

Same env, gamma-conditioning and network as the MaskablePPO agent, but the policy samples from all
actions of its action kinds; an inadmissible one is the env's configured option
invalid_action="penalize": a no-op rewarded -0.1 (--invalid-penalty). Episodes are capped at
--max-episode-steps so a policy stuck on inadmissible actions is truncated.
"""
import argparse
from pathlib import Path

from stable_baselines3 import PPO

from tts_gym.rl import (ReplayActorCriticPolicy, add_common_args, agent_config, make_replay_vec_env,
                        save_agent, set_torch_threads, standard_callbacks, training_stores)


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    g = p.add_argument_group("PPO")
    g.add_argument("--n-steps", type=int, default=128)
    g.add_argument("--batch-size", type=int, default=1024)
    g.add_argument("--epochs", type=int, default=2)
    g.add_argument("--ent-coef", type=float, default=0.01)
    g.add_argument("--invalid-penalty", type=float, default=0.1)
    p.set_defaults(max_episode_steps=1500)
    args = p.parse_args(argv)
    args.name = args.name or f"ppo_{args.benchmark}_s{args.seed}"
    set_torch_threads(args.threads)

    stores = training_stores(args.data, args.models, args.benchmark)
    env = make_replay_vec_env(stores, args.num_envs, gamma=args.gamma_range, max_branches=args.max_branches,
                              invalid_action="penalize", invalid_action_penalty=args.invalid_penalty,
                              max_episode_steps=args.max_episode_steps)
    model = PPO(ReplayActorCriticPolicy, env, learning_rate=args.lr, n_steps=args.n_steps,
                batch_size=args.batch_size, n_epochs=args.epochs, gamma=1.0, ent_coef=args.ent_coef,
                seed=args.seed, verbose=args.verbose, tensorboard_log=args.logdir,
                policy_kwargs={"hidden": args.hidden, "gamma_range": args.gamma_range,
                       "action_kinds": args.action_kinds})
    config = agent_config(model, env, args, "PPO")
    run_dir = Path(args.logdir) / args.name
    callbacks, held_in = standard_callbacks(args, stores, env, config, run_dir)
    model.learn(args.timesteps, callback=callbacks, tb_log_name=args.name, progress_bar=not args.no_progress)

    final = held_in.evaluate_now() if held_in else None
    config = agent_config(model, env, args, "PPO", {"heldin_eval": final})
    for path in [run_dir / "final"] + ([Path(args.save_agent)] if args.save_agent else []):
        z, _ = save_agent(model, path, config)
        print(f"saved {z} ({z.stat().st_size / 1e6:.2f} MB)")
    return model


if __name__ == "__main__":
    main()
