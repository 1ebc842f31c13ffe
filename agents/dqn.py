"""DQN on tts_gym/Replay-v0 (no action masks; flat MLP Q-network), for comparison.

    python agents/dqn.py --timesteps 500000 --seed 0

Inadmissible actions are the env's penalized no-ops (invalid_action="penalize"). The Q-network is
SB3's MultiInputPolicy (a flat MLP over positions and globals): DQN has no hook for the per-position
logits of tts_gym.rl.networks, so it must learn CONTINUE(i) for each i separately -- expect it to
trail the PPO agents. Evaluation plays the greedy action among the admissible ones (AgentPolicy
masks the Q-values). The cost weight w of the reward 1{correct} - w * tokens / token_scale is drawn
per episode; it is not --gamma, SB3's discount.
"""
from dataclasses import dataclass

from stable_baselines3 import DQN

from tts_gym.cli.dataclass_args import parse_dataclass
from tts_gym.rl import (TrainingArgs, learn_and_save, make_training_env,
                        set_torch_threads)


@dataclass
class Args(TrainingArgs):
    """The data, env and run settings every agent program has (tts_gym.rl.TrainingArgs), and DQN's."""
    # -- data and env
    num_envs: int = 16
    """episodes stepped together"""
    invalid_penalty: float = 0.1
    """the reward of an inadmissible action (a no-op)"""
    max_episode_steps: int = 400
    """truncate episodes after this many actions, inadmissible ones included"""
    # -- algorithm (stable-baselines3 DQN)
    timesteps: int = 500_000
    """environment steps to train for"""
    name: str | None = None
    """run name (default: dqn_<benchmark>_s<seed>)"""
    learning_rate: float = 3e-4
    """Adam step size"""
    buffer_size: int = 200_000
    """replay buffer transitions"""
    learning_starts: int = 10_000
    """env steps collected before the first update"""
    batch_size: int = 256
    """minibatch size"""
    gamma: float = 0.99
    """SB3's discount factor"""
    train_freq: int = 4
    """a gradient step every N vector steps"""
    target_update_interval: int = 5_000
    """env steps between target-network updates"""
    exploration_fraction: float = 0.2
    """share of training over which epsilon falls to its final value"""
    exploration_final_eps: float = 0.05
    """final epsilon of the epsilon-greedy exploration"""
    net_arch: tuple[int, ...] = (128, 128)
    """hidden layers of the Q-network MLP"""


def main(argv=None):
    args = parse_dataclass(Args, argv, __doc__)
    args.name = args.name or f"dqn_{args.benchmark}_s{args.seed}"
    set_torch_threads(args.threads)

    stores, env = make_training_env(args, invalid_action="penalize", invalid_action_penalty=args.invalid_penalty,
                                    max_episode_steps=args.max_episode_steps)
    model = DQN("MultiInputPolicy", env, learning_rate=args.learning_rate, buffer_size=args.buffer_size,
                learning_starts=args.learning_starts, batch_size=args.batch_size, gamma=args.gamma,
                train_freq=args.train_freq, target_update_interval=args.target_update_interval,
                exploration_fraction=args.exploration_fraction,
                exploration_final_eps=args.exploration_final_eps, seed=args.seed, verbose=args.verbose,
                tensorboard_log=args.logdir, policy_kwargs={"net_arch": list(args.net_arch)})
    return learn_and_save(model, env, stores, args, "DQN")


if __name__ == "__main__":
    main()
