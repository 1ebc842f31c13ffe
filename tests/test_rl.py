"""RL stack: the SB3 VecEnv adapter, cost-weight conditioning, the agent policy, the agent programs' argument
parsing, and a seeded learning test."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sb3_contrib")

import torch  # noqa: E402
from sb3_contrib import MaskablePPO  # noqa: E402
from sb3_contrib.common.maskable.utils import get_action_masks  # noqa: E402

from tts_gym.data.resolve import resolve_store  # noqa: E402
from tts_gym.envs.env import TTSReplayEnv  # noqa: E402
from tts_gym.core.observation import G_COST_WEIGHT  # noqa: E402
from tts_gym.policies import RandomMaskedPolicy  # noqa: E402
from tts_gym.rl import (AgentPolicy, CostWeightSampler, MaskableReplayPolicy, allowed_actions,  # noqa: E402
                        evaluate_batched, load_agent_policy, make_replay_vec_env, save_agent)
from tts_gym.rl.agent import obs_params_dict  # noqa: E402
from tts_gym.evaluation.rollout import run_episodes  # noqa: E402

M = 8
COST_WEIGHT = 0.02


@pytest.fixture(scope="module")
def store():
    return resolve_store("synthetic")


def _config(env, **extra):
    su = env.venv.setup
    cfg = {"name": "test", "algo": "MaskablePPO", "max_branches": su.M,
           "obs_params": obs_params_dict(su.oparams), "default_cost_weight": COST_WEIGHT}
    cfg.update(extra)
    return cfg


def test_vecenv_adapter_batched_masks_and_autoreset(store):
    env = make_replay_vec_env([store], 16, cost_weight_range=(1e-3, 0.1), max_branches=M)
    env.seed(3)
    obs = env.reset()
    assert obs["positions"].shape == (16, M, 15) and obs["globals"].shape == (16, 15)
    g = obs["globals"][:, G_COST_WEIGHT]
    assert np.all((g >= 1e-3 * 0.999) & (g <= 0.1 * 1.001)) and np.unique(g).size > 1
    masks = env.env_method("action_masks")
    assert isinstance(masks, np.ndarray) and masks.shape == (16, 4 + 4 * M)
    assert np.array_equal(get_action_masks(env), masks)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(60):
        m = get_action_masks(env)
        a = np.array([rng.choice(np.flatnonzero(row)) for row in m])
        obs, rew, done, infos = env.step(a)
        assert rew.shape == (16,) and done.shape == (16,) and len(infos) == 16
        for e in np.flatnonzero(done):
            ended += 1
            ep = infos[e]["episode"]
            assert set(ep) >= {"r", "l", "correct", "tokens", "cost_weight"}
            term = infos[e]["terminal_observation"]
            assert term["positions"].shape == (M, 15)
            # the episode's return = 1{correct} - w * tokens / 1e5 (dense costs + terminal reward)
            assert ep["r"] == pytest.approx(float(ep["correct"]) - ep["cost_weight"] * ep["tokens"] / 1e5, abs=1e-6)
            assert obs["globals"][e, 6] == 0  # a fresh episode: no votes yet
        for e in np.flatnonzero(~done):
            assert infos[e] == {}
    assert ended > 0


def test_cost_weight_sampler_log_uniform():
    s = CostWeightSampler((1e-3, 1e-1), seed=0)
    x = np.log10(s(20000))
    assert x.min() >= -3 and x.max() <= -1
    assert abs(np.mean(x) + 2) < 0.02 and abs(np.mean(x < -2) - 0.5) < 0.02
    assert np.all(CostWeightSampler(0.05)(5) == 0.05)


def test_allowed_actions_layout():
    a = allowed_actions(4, ("branch", "answer", "continue"))
    assert a[:4].tolist() == [True, False, True, False]
    assert a[4:8].all() and not a[8:].any()


def test_agent_policy_sees_the_training_observation(store):
    """AgentPolicy rebuilds the agent's observation from the view; in the training configuration it
    equals the env's own observation, and it maps actions to envs with more positions."""
    env = make_replay_vec_env([store], 4, cost_weight_range=COST_WEIGHT, max_branches=M)
    model = MaskablePPO(MaskableReplayPolicy, env, n_steps=8, batch_size=32, seed=0)
    pol = AgentPolicy(model, _config(env), cost_weight=COST_WEIGHT)
    single = TTSReplayEnv(store, max_branches=M, cost_weight=(0.0, 1.0))
    big = TTSReplayEnv(store, max_branches=32)
    rng = np.random.default_rng(1)
    for q in range(3):
        obs, _ = single.reset(options={"question": q, "shuffle_seed": 0, "cost_weight": COST_WEIGHT})
        big.reset(options={"question": q, "shuffle_seed": 0})
        pol.reset(single.unwrapped.episode)
        for _ in range(12):
            pos, glob, mask = pol.observe(single.unwrapped.episode)
            np.testing.assert_allclose(pos, obs["positions"], atol=1e-6)
            np.testing.assert_allclose(glob, obs["globals"], atol=1e-6)
            assert np.array_equal(mask, single.action_masks())
            feats = np.concatenate([glob[None], pos.reshape(1, -1)], axis=1)
            np.testing.assert_allclose(pol._numpy_actor(feats), pol.torch_logits(pos[None], glob[None]),
                                       rtol=1e-4, atol=1e-4)
            a_small = pol.act(obs, single.unwrapped.episode)
            a_big = pol.act(None, big.unwrapped.episode)
            assert a_big == pol.to_env_action(a_small, 32)
            valid = np.flatnonzero(single.action_masks() & allowed_actions(M, ("branch", "sample", "continue")))
            a = int(rng.choice(valid))
            obs, *_ = single.step(a)
            big.step(pol.to_env_action(a, 32))


def _returns(res, cost_weight=COST_WEIGHT):
    return res.correct.astype(float) - cost_weight * res.costs / 1e5


def test_agent_learns_beyond_random(store, tmp_path):
    """A tiny MaskablePPO agent (seeded, a few thousand steps on the synthetic store) beats a uniformly
    random masked policy by a margin far outside the random policy's seed-to-seed spread, on the same
    fixed episodes, played through the Python evaluation loop (tts_gym.evaluation.rollout.run_episodes)."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    env = make_replay_vec_env([store], 16, cost_weight_range=COST_WEIGHT, max_branches=M)
    model = MaskablePPO(MaskableReplayPolicy, env, n_steps=32, batch_size=256, n_epochs=4,
                        learning_rate=1e-3, gamma=1.0, ent_coef=0.01, seed=0,
                        policy_kwargs={"hidden": 32, "cost_weight_range": (0.005, 0.1)})
    model.learn(4096)
    train_s = time.perf_counter() - t0
    z, _ = save_agent(model, tmp_path / "tiny", _config(env, cost_weight_range=[0.005, 0.1]))
    agent = load_agent_policy(z, cost_weight=COST_WEIGHT)

    episodes = [(q, s) for s in range(100, 104) for q in range(store.num_questions)]
    play = TTSReplayEnv(store, max_branches=M)
    agent_ret = _returns(run_episodes(play, agent, episodes)).mean()
    rand = [_returns(run_episodes(play, RandomMaskedPolicy(seed=s), episodes)).mean() for s in range(6)]
    mu, sd = float(np.mean(rand)), float(np.std(rand, ddof=1))
    print(f"trained in {train_s:.1f}s; agent {agent_ret:.3f} vs random {mu:.3f} ± {sd:.3f}")
    assert agent_ret > mu + max(5 * sd, 0.1)
    # the batched monitor agrees with the Python loop on the reference episodes it plays (greedy)
    greedy = load_agent_policy(z, cost_weight=COST_WEIGHT, deterministic=True)
    res = evaluate_batched(greedy, [store], [COST_WEIGHT], seeds=[100, 101, 102, 103])[0]
    same = run_episodes(play, greedy, episodes)
    assert res["accuracy"] == pytest.approx(100 * same.correct.mean())
    assert res["tokens"] == pytest.approx(same.costs.mean())


def test_training_is_reproducible(store):
    torch.set_num_threads(1)

    def run():
        env = make_replay_vec_env([store], 8, cost_weight_range=(0.005, 0.1), max_branches=M)
        m = MaskablePPO(MaskableReplayPolicy, env, n_steps=16, batch_size=64, n_epochs=1, seed=7)
        m.learn(256)
        return torch.cat([p.detach().flatten() for p in m.policy.parameters()])

    assert torch.equal(run(), run())


def test_reference_hook_and_lookup_by_path(store, tmp_path):
    env = make_replay_vec_env([store], 4, cost_weight_range=COST_WEIGHT, max_branches=M)
    model = MaskablePPO(MaskableReplayPolicy, env, n_steps=8, batch_size=32, seed=0)
    z, j = save_agent(model, tmp_path / "a", _config(env))
    from tts_gym.rl import evaluate_agent_reference
    r = evaluate_agent_reference(store, str(tmp_path / "a"), {"cost_weight": 0.05}, seeds=[0])
    assert r.policy == "agent:test" and r.params["cost_weight"] == 0.05 and r.episodes == store.num_questions
    with pytest.raises(ValueError):
        evaluate_agent_reference(store, z, {"beta": 1}, seeds=[0])
    with pytest.raises(FileNotFoundError):
        load_agent_policy(tmp_path / "missing")


def test_shipped_agent_by_name_and_cli(capsys):
    """The agent kept in the repository loads by name, stays small, and runs through ``tts-gym eval``."""
    import json

    from tts_gym.cli import main
    from tts_gym.rl import resolve_agent
    z, j = resolve_agent("maskable_ppo_aime24")
    assert z.stat().st_size < 2_000_000
    cfg = json.loads(j.read_text())
    assert cfg["command"].startswith("python agents/maskable_ppo.py") and "--seed" in cfg["command"]
    pol = load_agent_policy("maskable_ppo_aime24", cost_weight=0.02)
    assert pol.cost_weight == 0.02 and pol.M == cfg["max_branches"]
    rc = main(["eval", "--agent", "maskable_ppo_aime24", "--param", "cost_weight=0.02", "--seeds", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "agent:maskable_ppo_aime24" and out["params"]["cost_weight"] == 0.02
    assert out["seeds"] == 1 and out["sumTT"] > 0


def _program(name: str):
    """An agent program of ``agents/`` as a module (it is a script, not part of the package)."""
    import importlib.util
    import sys

    from conftest import REPO_ROOT
    spec = importlib.util.spec_from_file_location(f"agents_{name}", REPO_ROOT / "agents" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # inspect finds the Args source through it
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["maskable_ppo", "dqn", "evaluate_agent", "discover"])
def test_agent_programs_declare_every_setting_with_its_help(name):
    import dataclasses

    from tts_gym.cli.dataclass_args import field_docs, parse_dataclass
    Args = _program(name).Args
    fields = [f.name for f in dataclasses.fields(Args)]
    docs = field_docs(Args)
    assert set(docs) == set(fields)
    assert parse_dataclass(Args, []) == Args()
    # "gamma" is only ever SB3's discount; the cost weight has its own name
    assert all("gamma" not in f or f == "gamma" for f in fields)
    if "gamma" in fields:
        assert "discount" in docs["gamma"]


def test_ppo_program_trains_saves_and_the_agent_loads(tmp_path):
    torch.set_num_threads(1)
    program = _program("maskable_ppo")
    argv = ["--data", "synthetic", "--timesteps", "64", "--num-envs", "4", "--n-steps", "16", "--batch-size", "32",
            "--max-branches", str(M), "--cost-weight-range", "0.005", "0.1", "--eval-freq", "0",
            "--checkpoint-freq", "0", "--no-progress", "--logdir", str(tmp_path), "--save-agent", str(tmp_path / "a")]
    model = program.main(argv)
    assert model.num_timesteps >= 64
    agent = load_agent_policy(tmp_path / "a")
    cfg = agent.config
    assert cfg["algo"] == "MaskablePPO" and cfg["cost_weight_range"] == [0.005, 0.1]
    assert agent.cost_weight == pytest.approx((0.005 * 0.1) ** 0.5)
    assert cfg["args"]["n_steps"] == 16 and cfg["command"].startswith("python ")
    plain = program.main(argv[:-2] + ["--no-masks", "--name", "plain"])
    assert type(plain).__name__ == "PPO"
