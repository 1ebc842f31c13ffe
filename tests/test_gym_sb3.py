"""The env as Gymnasium and stable-baselines3 users use it: the default ``gym.make`` with unmasked
agents, one meaning of truncation, masks in every vector mode, SB3 interoperability both ways,
pickling and spawn-started subprocess vector envs."""
from __future__ import annotations

import copy
import pickle
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import TimeLimit

from tts_gym.core import actions as A
from tts_gym.data.synthetic import synthesize
from tts_gym.envs.env import TTSReplayEnv
from tts_gym.envs.vector import TTSReplayVectorEnv

ENV_ID = "tts_gym/Replay-v0"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth():
    return synthesize(6, 16, seed=3, max_probes=12)


def _steps(env, actions, options=None, seed=0):
    """(obs, reward, terminated, truncated, info) of each action after one reset."""
    env.reset(seed=seed, options=options)
    return [env.step(a) for a in actions]


def _assert_same(a, b, path="out"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, sorted(a), sorted(b))
        for k in a:
            _assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{k}]")
    else:
        np.testing.assert_array_equal(a, b, err_msg=path)


# ---------------------------------------------------------------------------------------------
# the default env takes any action of its space
# ---------------------------------------------------------------------------------------------

def test_gymnasium_check_env_on_the_default_make():
    from gymnasium.utils.env_checker import check_env
    env = gym.make(ENV_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # but the checker's remark that it was handed a wrapped env
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        check_env(env)


def test_sb3_check_env_on_the_default_make():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env
    for env in (gym.make(ENV_ID), gym.make(ENV_ID).unwrapped):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env, warn=True)
        # SB3's one remark: the (M, 15) positions box is 2-D (MultiInputPolicy flattens it)
        msgs = [str(w.message) for w in caught if "unconventional shape" not in str(w.message)]
        assert not [m for m in msgs if "observation" in m.lower() or "action" in m.lower()], msgs


def test_random_unmasked_agent_for_10k_steps():
    env = gym.make(ENV_ID, cost_weight=0.1)
    env.action_space.seed(0)
    obs, info = env.reset(seed=0)
    episodes = invalid = 0
    for _ in range(10_000):
        a = env.action_space.sample()
        mask = info["action_mask"]
        cost_before = info["cost"]
        obs, r, term, trunc, info = env.step(a)
        assert obs in env.observation_space
        assert info["invalid_action"] == (not mask[a])   # flagged exactly when the mask forbids it
        if info["invalid_action"]:
            invalid += 1
            assert r == pytest.approx(-0.1) and info["cost"] == cost_before and "error" in info
        if term or trunc:
            episodes += 1
            obs, info = env.reset()
    assert episodes > 100 and invalid > 1000


def test_gymnasium_benchmark_step_runs():
    from gymnasium.utils.performance import benchmark_step
    assert benchmark_step(gym.make(ENV_ID), target_duration=0.2) > 0


def test_non_integer_actions_are_refused():
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    for a in (2.7, 2.0, "2", True, np.float32(1.0), np.array([1, 2])):
        with pytest.raises(TypeError, match="must be an integer id in 0..259"):
            env.step(a)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(2 ** 70)
    assert env.unwrapped.episode.steps == 0  # nothing was applied
    env.step(np.array(A.BRANCH))   # 0-d and one-element integer arrays are integers
    env.step(np.array([A.BRANCH], np.int32))
    assert env.unwrapped.episode.cursor == 2


@pytest.mark.slow
def test_sb3_ppo_without_masks_learns_on_the_default_env():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    class CountInvalid(BaseCallback):
        invalid = 0

        def _on_step(self):
            CountInvalid.invalid += sum(bool(i["invalid_action"]) for i in self.locals["infos"])
            return True

    model = PPO("MultiInputPolicy", gym.make(ENV_ID), n_steps=512, batch_size=128, n_epochs=2,
                policy_kwargs={"net_arch": [32]}, seed=0, device="cpu")
    model.learn(2048, callback=CountInvalid())
    assert model.num_timesteps >= 2048 and len(model.ep_info_buffer) > 0
    assert CountInvalid.invalid > 0   # unmasked: it did take inadmissible actions, as no-ops


@pytest.mark.slow
def test_maskable_ppo_learns_on_the_default_env():
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback

    class CountInvalid(BaseCallback):
        invalid = 0

        def _on_step(self):
            CountInvalid.invalid += sum(bool(i["invalid_action"]) for i in self.locals["infos"])
            return True

    model = MaskablePPO("MultiInputPolicy", gym.make(ENV_ID), n_steps=512, batch_size=128,
                        n_epochs=2, policy_kwargs={"net_arch": [32]}, seed=0, device="cpu")
    model.learn(2048, callback=CountInvalid())
    assert model.num_timesteps >= 2048 and len(model.ep_info_buffer) > 0
    assert CountInvalid.invalid == 0  # masked: never an inadmissible action


# ---------------------------------------------------------------------------------------------
# one meaning of truncation
# ---------------------------------------------------------------------------------------------

N_LIMIT = 5
# BRANCH, an inadmissible PRUNE, CONTINUE(0) x3: truncated on the 5th step; the second sequence
# answers on the 5th step (terminated and truncated at once, as with gymnasium's TimeLimit)
SEQUENCES = ([A.BRANCH, 4 + 2 * 8 + 7, 4, 4, 4, A.BRANCH],
             [A.BRANCH, A.SAMPLE, 4, 4, A.ANSWER])
OPTIONS = {"question": 2, "shuffle_seed": 1}


def _single_envs(synth):
    kw = dict(store=synth, max_branches=8, cost_weight=0.5, token_scale=1000)
    return {
        "gym.make(max_episode_steps)": gym.make(ENV_ID, max_episode_steps=N_LIMIT, **kw),
        "gym.make(step_limit)": gym.make(ENV_ID, step_limit=N_LIMIT, **kw),
        "TTSReplayEnv(step_limit)": TTSReplayEnv(step_limit=N_LIMIT, **kw),
        "TTSReplayEnv(max_episode_steps)": TTSReplayEnv(max_episode_steps=N_LIMIT, **kw),
        "TimeLimit(TTSReplayEnv)": TimeLimit(TTSReplayEnv(**kw), N_LIMIT),
        "both limits": gym.make(ENV_ID, max_episode_steps=N_LIMIT, step_limit=50, **kw),
    }


@pytest.mark.parametrize("actions", SEQUENCES)
def test_three_ways_of_truncating_agree_single_env(synth, actions):
    runs = {name: _steps(env, actions[:N_LIMIT], OPTIONS) for name, env in _single_envs(synth).items()}
    ref = runs.pop("TTSReplayEnv(step_limit)")
    _, r, term, trunc, info = ref[-1]
    assert trunc and "tokens" in info
    if not term:
        assert r == pytest.approx(-0.5 * info["cost"] / 1000) and info["correct"] is False
    for name, run in runs.items():
        _assert_same(run, ref, name)


@pytest.mark.parametrize("actions", SEQUENCES)
def test_three_ways_of_truncating_agree_vector_modes(synth, actions):
    E = 3
    kw = dict(store=synth, max_branches=8, cost_weight=0.5, token_scale=1000, max_episode_steps=N_LIMIT)
    single = _steps(TTSReplayEnv(**kw), actions[:N_LIMIT], OPTIONS)
    keys = ("action_mask", "invalid_action", "position", "revealed_id", "finished", "charge", "cost",
            "cursor", "cost_weight")
    end_keys = ("correct", "answer_id", "answer", "tokens")
    results = {}
    for mode in ("sync", "async", "vector_entry_point"):
        venv = gym.make_vec(ENV_ID, num_envs=E, vectorization_mode=mode, **kw)
        venv.reset(seed=0, options=OPTIONS)
        out = []
        for k, a in enumerate(actions[:N_LIMIT]):
            obs, r, term, trunc, infos = venv.step(np.full(E, a))
            o, r1, term1, trunc1, info1 = single[k]
            for key in obs:
                np.testing.assert_array_equal(obs[key], np.stack([o[key]] * E), err_msg=f"{mode} {key}")
            np.testing.assert_allclose(r, r1, err_msg=mode)
            assert term.tolist() == [term1] * E and trunc.tolist() == [trunc1] * E, mode
            for key in keys:
                np.testing.assert_array_equal(infos[key], np.stack([info1[key]] * E), err_msg=f"{mode} {key}")
            if term1 or trunc1:
                for key in end_keys:
                    assert infos[f"_{key}"].all(), (mode, key)
                    assert list(infos[key]) == [info1[key]] * E, (mode, key)
            out.append((r, term, trunc))
        venv.close()
        results[mode] = out
    assert single[-1][3]  # the last step is truncated everywhere
    _assert_same(results["sync"], results["vector_entry_point"])
    _assert_same(results["async"], results["vector_entry_point"])


def test_action_mask_in_info_in_every_vector_mode(synth):
    E = 2
    actions = [A.BRANCH, A.BRANCH, 4 + 1, A.SAMPLE, A.ANSWER, A.BRANCH]
    single = TTSReplayEnv(synth, max_branches=8)
    _, info = single.reset(options=OPTIONS)
    expected = [info["action_mask"]] + [single.step(a)[4]["action_mask"] for a in actions[:-1]]
    for mode in ("sync", "async", "vector_entry_point"):
        venv = gym.make_vec(ENV_ID, num_envs=E, vectorization_mode=mode, store=synth, max_branches=8)
        _, infos = venv.reset(seed=0, options=OPTIONS)
        masks = [infos["action_mask"]] + [venv.step(np.full(E, a))[4]["action_mask"] for a in actions]
        for k, m in enumerate(expected):
            assert m.shape == (36,) and masks[k].dtype == bool
            np.testing.assert_array_equal(masks[k], np.stack([m] * E), err_msg=f"{mode} step {k}")
        # the step after the answer starts new episodes (NEXT_STEP): their reset masks
        assert masks[-1][:, A.BRANCH].all() and not masks[-1][:, 4:].any(), mode
        venv.close()


# ---------------------------------------------------------------------------------------------
# SB3 interoperability both ways
# ---------------------------------------------------------------------------------------------

BUILTIN = [("sc", {"n": 4}), ("asc", {"max_samples": 8}), ("esc", {"max_samples": 8}),
           ("parallel_probe", {"num_chains": 4}), ("cmc", {"beta": 0.5})]


def _builtin_policies():
    from tts_gym.discovery.sandbox import load_controller_policy
    from tts_gym.policies import make_policy
    out = [(name, lambda name=name, p=p: make_policy(name, **p)) for name, p in BUILTIN]
    out.append(("controller file", lambda: load_controller_policy(REPO / "agents" / "controllers" / "cmc.py",
                                                                  beta=0.5)))
    return out


@pytest.mark.parametrize("name, factory", _builtin_policies(), ids=[n for n, _ in _builtin_policies()])
def test_sb3_evaluate_policy_runs_each_builtin_policy(synth, name, factory):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.evaluation import evaluate_policy

    from tts_gym.evaluation.rollout import run_episodes
    kw = dict(store=synth, max_branches=16, cost_weight=0.2, question_sampling="sequential")
    with pytest.raises(TypeError, match="bind it to the env"):
        factory().predict(gym.make(ENV_ID, **kw).reset(seed=0)[0])
    env = gym.make(ENV_ID, **kw)
    rewards, lengths = evaluate_policy(factory().bind(env), env, n_eval_episodes=5,
                                       return_episode_rewards=True, warn=False)
    # the same episodes (sequential sampling: questions 0..4, shuffle seed 0) through the env loop
    ref = run_episodes(TTSReplayEnv(invalid_action="raise", **kw), factory(), [(q, 0) for q in range(5)])
    np.testing.assert_allclose(rewards, ref.returns, rtol=1e-6)  # SB3 sums float32 rewards
    assert lengths == ref.steps.tolist()
    if name in ("sc", "cmc"):
        # two sub-envs: each plays its own copy of the policy on its own episodes
        from stable_baselines3.common.vec_env import DummyVecEnv
        venv = DummyVecEnv([lambda: gym.make(ENV_ID, **kw) for _ in range(2)])
        rewards2, _ = evaluate_policy(factory().bind(venv), venv, n_eval_episodes=4,
                                      return_episode_rewards=True, warn=False)
        np.testing.assert_allclose(sorted(rewards2), sorted(list(ref.returns[:2]) * 2), rtol=1e-6)


def test_tts_gym_evaluate_scores_a_maskable_ppo_trained_with_16_branches(synth):
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import MaskablePPO

    import tts_gym
    from tts_gym.envs.sb3 import make_sb3_vec_env
    from tts_gym.evaluation.rollout import run_episodes
    from tts_gym.policies.base import SB3Policy
    venv = make_sb3_vec_env(4, store=synth, max_branches=16)
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0,
                        policy_kwargs={"net_arch": [16]}, device="cpu")
    model.learn(128)
    policy = SB3Policy(model)
    assert policy.max_branches == 16 and synth.max_branches == 16
    seeds = range(2)
    res = tts_gym.evaluate(policy, stores=synth, seeds=seeds, progress=False)
    o = res.outcome(res.configs[0])
    # the same reference episodes played by hand on a 16-position env
    ref = run_episodes(TTSReplayEnv(synth, max_branches=16, invalid_action="raise"), SB3Policy(model),
                       [(q, s) for s in seeds for q in range(synth.num_questions)])
    assert o.sum_correct == ref.sum_correct and o.sum_tokens == ref.sum_cost
    # a store wider than the model: still played on 16 positions
    wide = synthesize(4, 40, seed=1, max_probes=10)
    res = tts_gym.evaluate(policy, stores=wide, seeds=range(1), progress=False)
    ref = run_episodes(TTSReplayEnv(wide, max_branches=16, invalid_action="raise"), SB3Policy(model),
                       [(q, 0) for q in range(4)])
    assert res.outcome(res.configs[0]).sum_tokens == ref.sum_cost


def test_tts_gym_evaluate_scores_the_shipped_agent_as_an_sb3_model(synth):
    pytest.importorskip("sb3_contrib")
    import tts_gym
    from tts_gym.policies.base import SB3Policy
    from tts_gym.rl import load_agent
    model, config = load_agent("maskable_ppo_aime24")
    policy = SB3Policy(model)
    assert policy.max_branches == config["max_branches"] == 32
    res = tts_gym.evaluate(policy, stores=synth, seeds=range(1), progress=False)
    row = res.rows[0]
    assert 0 <= row["accuracy"] <= 100 and row["avg_tokens"] > 0 and row["episodes"] == 6


# ---------------------------------------------------------------------------------------------
# pickling and spawn
# ---------------------------------------------------------------------------------------------

def test_env_pickle_and_deepcopy_continue_the_episode(synth):
    env = gym.make(ENV_ID, store=synth, max_branches=8, cost_weight=0.3, max_episode_steps=9)
    env.reset(seed=4)
    env.step(A.BRANCH)
    env.step(A.BRANCH)
    copies = [copy.deepcopy(env), pickle.loads(pickle.dumps(env.unwrapped)), copy.deepcopy(env.unwrapped)]
    actions = [4, 4 + 1, 4 + 2 * 8 + 7, A.SAMPLE, 4, A.ANSWER]
    ref = [env.step(a) for a in actions]
    assert ref[-1][2]  # the episode ended on ANSWER
    for c in copies:
        _assert_same([c.step(a) for a in actions], ref)
        assert c.unwrapped.episode.cost == ref[-1][4]["cost"] > 0
    # the generator travels too: the next episodes are the same
    first = env.reset()
    for c in copies:
        _assert_same(c.reset(), first)


@pytest.mark.parametrize("num_threads", [1, 2])
def test_vector_env_pickle_round_trip(synth, num_threads):
    E = 6
    venv = TTSReplayVectorEnv(E, synth, max_branches=8, num_threads=num_threads, max_episode_steps=7)
    venv.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(3):
        venv.step(rng.integers(0, 36, E))
    twin = pickle.loads(pickle.dumps(venv))
    deep = copy.deepcopy(venv)
    for _ in range(12):
        a = rng.integers(0, 36, E)
        ref = venv.step(a)
        _assert_same(twin.step(a), ref)
        _assert_same(deep.step(a), ref)
    for v in (venv, twin, deep):
        v.close()


def test_make_vec_async_with_spawn(synth):
    kw = dict(store=synth, max_branches=8, cost_weight=0.5, max_episode_steps=N_LIMIT)
    venv = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="async",
                        vector_kwargs={"context": "spawn"}, **kw)
    sync = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", **kw)
    try:
        outs = []
        for v in (venv, sync):
            v.reset(seed=0, options=OPTIONS)
            outs.append([v.step(np.full(2, a)) for a in SEQUENCES[0][:N_LIMIT + 1]])
        _assert_same(outs[0], outs[1])
        assert outs[0][N_LIMIT - 1][3].all()  # truncated on the limit in the spawned children too
    finally:
        venv.close()
        sync.close()
