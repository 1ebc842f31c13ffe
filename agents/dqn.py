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
from tts_gym.data.catalog import MODELS, SEARCH_BENCHMARKS
from tts_gym.data.resolve import resolve_stores
from tts_gym.rl import learn_and_save, make_replay_vec_env, set_torch_threads


@dataclass
class Args:
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
    num_envs: int = 16
    """episodes stepped together"""
    cost_weight_range: tuple[float, float] = (1e-3, 0.3)
    """range the per-episode cost weight w is drawn from"""
    cost_weight_dist: str = "log-uniform"
    """how w is drawn from its range: log-uniform or uniform"""
    token_scale: float = 100_000
    """tokens per unit of reward"""
    invalid_penalty: float = 0.1
    """the reward of an inadmissible action (a no-op)"""
    max_episode_steps: int = 400
    """truncate episodes after this many actions, inadmissible ones included"""
    # -- algorithm (stable-baselines3 DQN)
    timesteps: int = 500_000
    """environment steps to train for"""
    seed: int = 0
    """seed of the env's episode draws, the cost-weight sampler and the network"""
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
    # -- run
    threads: int = 1
    """torch threads"""
    name: str | None = None
    """run name (default: dqn_<benchmark>_s<seed>)"""
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


def main(argv=None):
    args = parse_dataclass(Args, argv, __doc__)
    args.name = args.name or f"dqn_{args.benchmark}_s{args.seed}"
    set_torch_threads(args.threads)

    stores = (resolve_stores("synthetic") if args.data == "synthetic"
              else resolve_stores(args.data, args.models, args.benchmark))
    env = make_replay_vec_env(stores, args.num_envs, cost_weight_range=args.cost_weight_range,
                              cost_weight_dist=args.cost_weight_dist, max_branches=args.max_branches,
                              token_scale=args.token_scale, invalid_action="penalize",
                              invalid_action_penalty=args.invalid_penalty,
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
