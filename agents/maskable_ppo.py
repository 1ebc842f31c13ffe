"""PPO on tts_gym/Replay-v0: one cost-weight-conditioned agent for the AIME24 stores of all four models.

    python agents/maskable_ppo.py --timesteps 2000000 --seed 0 --save-agent tts_gym/assets/agents/maskable_ppo_aime24
    python agents/maskable_ppo.py --no-masks --timesteps 1000000      # plain PPO, for comparison
    tensorboard --logdir runs

* Rollouts: all episodes stepped together in the compiled vector env (tts_gym.envs.sb3.SB3VecEnv);
  questions are drawn uniformly across the stores, branch orders are random permutations.
* Cost-weight conditioning: every episode draws its cost weight w log-uniformly from
  --cost-weight-range; reward = 1{correct} - w * tokens / token_scale (per-step cost, terminal
  correctness); w is in the observation, so sweeping it at evaluation traces an accuracy-cost curve
  (agents/evaluate_agent.py). It is not --gamma, SB3's discount (1: the return is the episode's).
* Masks: sb3-contrib's MaskablePPO samples only admissible actions (env_method("action_masks")
  returns the env's batched mask array). With --no-masks, stable-baselines3's PPO samples from all
  actions of its action kinds and an inadmissible one is the env's penalized no-op
  (invalid_action="penalize"); --max-episode-steps then truncates a policy stuck on them.
* The network (tts_gym.rl.networks) scores every position with shared weights.
"""
from dataclasses import dataclass

from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO

from tts_gym.cli.dataclass_args import parse_dataclass
from tts_gym.rl import (MaskableReplayPolicy, ReplayActorCriticPolicy, TrainingArgs, learn_and_save,
                        make_training_env, set_torch_threads)


@dataclass
class Args(TrainingArgs):
    """The data, env and run settings every agent program has (tts_gym.rl.TrainingArgs), and PPO's."""
    # -- data and env
    dense_reward: bool = True
    """charge the cost at every step (the same return as charging it at the end)"""
    permutation: str = "random"
    """branch orders of the training episodes: random, or reference (the 100 evaluation shuffles)"""
    max_episode_steps: int | None = 1500
    """truncate episodes after this many actions, inadmissible ones included (with masks every
    episode ends by itself)"""
    # -- algorithm (sb3-contrib MaskablePPO, or stable-baselines3 PPO with --no-masks)
    name: str | None = None
    """run name (default: maskable_ppo_<benchmark>_s<seed>, or ppo_... without masks)"""
    masks: bool = True
    """sample only admissible actions (MaskablePPO); --no-masks: PPO, inadmissible actions are no-ops"""
    invalid_penalty: float = 0.1
    """without masks: the reward of an inadmissible action"""
    learning_rate: float = 3e-4
    """Adam step size"""
    n_steps: int = 128
    """rollout length per env between updates"""
    batch_size: int = 1024
    """minibatch size"""
    n_epochs: int = 2
    """passes over each rollout"""
    gamma: float = 1.0
    """SB3's discount factor (1: the return is the undiscounted episode reward)"""
    gae_lambda: float = 0.95
    """GAE bias-variance trade-off"""
    clip_range: float = 0.2
    """PPO's clipping of the probability ratio"""
    ent_coef: float = 0.01
    """entropy bonus"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    max_grad_norm: float = 0.5
    """gradient clipping"""
    # -- network (tts_gym.rl.networks)
    hidden: int = 32
    """width of the shared position / context layers"""
    action_kinds: tuple[str, ...] = ("branch", "sample", "answer", "continue", "prune")
    """actions the agent may ever choose (tts_gym.rl.networks.ACTION_KINDS)"""


def main(argv=None):
    args = parse_dataclass(Args, argv, __doc__)
    algo, policy = (MaskablePPO, MaskableReplayPolicy) if args.masks else (PPO, ReplayActorCriticPolicy)
    args.name = args.name or f"{'maskable_ppo' if args.masks else 'ppo'}_{args.benchmark}_s{args.seed}"
    set_torch_threads(args.threads)

    stores, env = make_training_env(args, dense_reward=args.dense_reward, permutation=args.permutation,
                                    invalid_action="raise" if args.masks else "penalize",
                                    invalid_action_penalty=args.invalid_penalty,
                                    max_episode_steps=args.max_episode_steps)
    model = algo(
        policy, env, learning_rate=args.learning_rate, n_steps=args.n_steps,
        batch_size=args.batch_size, n_epochs=args.n_epochs, gamma=args.gamma, gae_lambda=args.gae_lambda,
        clip_range=args.clip_range, ent_coef=args.ent_coef, vf_coef=args.vf_coef,
        max_grad_norm=args.max_grad_norm, seed=args.seed, verbose=args.verbose, tensorboard_log=args.logdir,
        policy_kwargs={"hidden": args.hidden, "cost_weight_range": args.cost_weight_range,
                       "action_kinds": list(args.action_kinds)})
    return learn_and_save(model, env, stores, args, algo.__name__)


if __name__ == "__main__":
    main()
