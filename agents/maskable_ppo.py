"""MaskablePPO on tts_gym/Replay-v0: one gamma-conditioned agent for the AIME24 stores of all four models.

    python agents/maskable_ppo.py --timesteps 2000000 --seed 0 --save-agent tts_gym/assets/agents/maskable_ppo_aime24
    tensorboard --logdir runs

* Rollouts: all episodes stepped together in the compiled vector env (tts_gym.envs.sb3.SB3VecEnv);
  questions are drawn uniformly across the stores, branch orders are random permutations.
* gamma-conditioning: every episode draws its cost weight gamma log-uniformly from --gamma-range;
  reward = 1{correct} - gamma * tokens / 100k (per-step cost, terminal correctness); gamma is in the
  observation, so sweeping gamma at evaluation traces an accuracy-cost curve (agents/evaluate_agent.py).
* Masks: env_method("action_masks") returns the env's batched mask array; the network
  (tts_gym.rl.networks) scores every position with shared weights.
"""
import argparse
from pathlib import Path

from sb3_contrib import MaskablePPO

from tts_gym.rl import (MaskableReplayPolicy, add_common_args, agent_config, make_replay_vec_env,
                        save_agent, set_torch_threads, standard_callbacks, training_stores)


def main(argv=None):
    p = add_common_args(argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    g = p.add_argument_group("PPO")
    g.add_argument("--n-steps", type=int, default=128, help="rollout length per env")
    g.add_argument("--batch-size", type=int, default=1024)
    g.add_argument("--epochs", type=int, default=2)
    g.add_argument("--ent-coef", type=float, default=0.01)
    g.add_argument("--clip", type=float, default=0.2)
    g.add_argument("--gae-lambda", type=float, default=0.95)
    args = p.parse_args(argv)
    args.name = args.name or f"maskable_ppo_{args.benchmark}_s{args.seed}"
    set_torch_threads(args.threads)

    stores = training_stores(args.data, args.models, args.benchmark)
    env = make_replay_vec_env(stores, args.num_envs, gamma=args.gamma_range, max_branches=args.max_branches,
                              invalid_action="raise", max_episode_steps=args.max_episode_steps)
    model = MaskablePPO(
        MaskableReplayPolicy, env, learning_rate=args.lr, n_steps=args.n_steps, batch_size=args.batch_size,
        n_epochs=args.epochs, gamma=1.0, gae_lambda=args.gae_lambda, clip_range=args.clip,
        ent_coef=args.ent_coef, seed=args.seed, verbose=args.verbose, tensorboard_log=args.logdir,
        policy_kwargs={"hidden": args.hidden, "gamma_range": args.gamma_range,
                       "action_kinds": args.action_kinds})
    config = agent_config(model, env, args, "MaskablePPO")
    run_dir = Path(args.logdir) / args.name
    callbacks, held_in = standard_callbacks(args, stores, env, config, run_dir)
    model.learn(args.timesteps, callback=callbacks, tb_log_name=args.name, progress_bar=not args.no_progress)

    final = held_in.evaluate_now() if held_in else None
    config = agent_config(model, env, args, "MaskablePPO", {"heldin_eval": final})
    for path in [run_dir / "final"] + ([Path(args.save_agent)] if args.save_agent else []):
        z, _ = save_agent(model, path, config)
        print(f"saved {z} ({z.stat().st_size / 1e6:.2f} MB)")
    return model


if __name__ == "__main__":
    main()
