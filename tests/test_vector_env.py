"""TTSReplayVectorEnv: agreement with the single env, autoreset modes, masks, seeding, SB3 adapter."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import shared_store
from gymnasium.vector import AutoresetMode

from tts_gym.core import actions as A
from tts_gym.envs.env import TTSReplayEnv
from tts_gym.data.synthetic import synthesize
from tts_gym.envs.vector import TTSReplayVectorEnv

ENV_ID = "tts_gym/Replay-v0"


@pytest.fixture(scope="module")
def real():
    return shared_store("Qwen3-4B", "hmmt25")


@pytest.fixture(scope="module")
def synth():
    return synthesize(7, 20, seed=5, max_probes=9)


def _pick(mask_row, rng, p_stop=0.04, M=None):
    valid = np.flatnonzero(mask_row)
    nonterm = [a for a in valid if a not in (A.ANSWER, A.ABSTAIN) and (M is None or a < 4 + 3 * M)]
    if nonterm and rng.random() > p_stop:
        return int(rng.choice(nonterm))
    return int(rng.choice(valid))


def test_make_vec_and_spaces(synth):
    venv = gym.make_vec(ENV_ID, num_envs=5, vectorization_mode="vector_entry_point", store=synth,
                        max_branches=6)
    assert isinstance(venv.unwrapped, TTSReplayVectorEnv)
    assert venv.num_envs == 5
    assert venv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    single = TTSReplayEnv(synth, max_branches=6)
    assert venv.single_observation_space == single.observation_space
    assert venv.single_action_space == single.action_space
    assert venv.observation_space == gym.vector.utils.batch_space(single.observation_space, 5)
    assert venv.action_space == gym.vector.utils.batch_space(single.action_space, 5)
    obs, info = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)
    assert info["question"].shape == (5,) and info["_question"].all()
    masks = venv.unwrapped.action_masks()
    assert masks.shape == (5, 4 + 24) and masks.dtype == np.bool_
    venv.close()


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("kw", [dict(), dict(fused=False, probe_cost=11, dense_reward=True, cost_weight=0.5),
                                dict(token_budget=9000, cost_weight=(0.0, 2.0))])
def test_vector_matches_single_envs(real, mode, kw):
    """Every sub-env follows exactly the single env run on the same episode and actions."""
    E, M = 6, 8
    venv = TTSReplayVectorEnv(E, real, max_branches=M, autoreset_mode=mode, mask_in_info=True, **kw)
    singles = [TTSReplayEnv(real, max_branches=M, **kw) for _ in range(E)]
    obs, info = venv.reset(seed=3)
    sobs = [s.reset(options={"question": int(info["question"][e]), "shuffle_seed": int(info["shuffle_seed"][e]),
                             "cost_weight": float(info["cost_weight"][e])})[0] for e, s in enumerate(singles)]
    rng = np.random.default_rng(0)
    pending = np.zeros(E, bool)  # NEXT_STEP: sub-envs that reset on this step
    ended_episodes = 0
    for t in range(150):
        for e in range(E):
            for k in obs:
                np.testing.assert_array_equal(obs[k][e], sobs[e][k])
        masks = venv.action_masks()
        # infos carry the mask of the state each step returned; action_masks() also allows every
        # action of a sub-env awaiting its NEXT_STEP reset (the action is ignored)
        np.testing.assert_array_equal(masks[~pending], info["action_mask"][~pending])
        assert masks[pending].all()
        acts = np.array([_pick(masks[e], rng, M=M) for e in range(E)])
        obs, rew, term, trunc, info = venv.step(acts)
        for e, s in enumerate(singles):
            if pending[e]:  # the vector env reset this sub-env and ignored its action
                assert rew[e] == 0.0 and not term[e] and not trunc[e]
                sobs[e] = s.reset(options={"question": int(venv.questions[e]),
                                           "shuffle_seed": int(venv.shuffle_seeds[e]),
                                           "cost_weight": float(venv.cost_weights[e])})[0]
                continue
            so, sr, st, str_, si = s.step(int(acts[e]))
            assert rew[e] == sr and term[e] == st and trunc[e] == str_  # bit-identical rewards
            same_step_end = mode is AutoresetMode.SAME_STEP and st
            np.testing.assert_array_equal((info["final_info"] if same_step_end else info)["action_mask"][e],
                                          si["action_mask"])
            for key in ("position", "revealed_id", "finished", "charge", "cost", "cursor"):
                assert info[key][e] == si[key], key
            if st:
                ended_episodes += 1
                assert info["_correct"][e] and info["correct"][e] == si["correct"]
                assert info["answer"][e] == si["answer"] and info["tokens"][e] == si["tokens"]
            if mode is AutoresetMode.SAME_STEP and st:
                assert info["_final_obs"][e]
                for k in so:
                    np.testing.assert_array_equal(info["final_obs"][k][e], so[k])
                sobs[e] = s.reset(options={"question": int(venv.questions[e]),
                                           "shuffle_seed": int(venv.shuffle_seeds[e]),
                                           "cost_weight": float(venv.cost_weights[e])})[0]
            else:
                sobs[e] = so
        pending = (term | trunc) if mode is AutoresetMode.NEXT_STEP else np.zeros(E, bool)
        if mode is AutoresetMode.NEXT_STEP and pending.any():
            assert venv.action_masks()[pending].all()  # any action is accepted (and ignored)
    assert ended_episodes >= 3


def test_next_step_autoreset_semantics(synth):
    venv = TTSReplayVectorEnv(2, synth, max_branches=4)
    venv.reset(seed=0)
    obs, rew, term, trunc, info = venv.step(np.array([A.ABSTAIN, A.BRANCH]))
    assert term.tolist() == [True, False] and info["_correct"].tolist() == [True, False]
    assert info["correct"][0] == False and info["answer"][0] is None  # noqa: E712
    assert obs["globals"][0][0] == 0.0
    obs, rew, term, trunc, info = venv.step(np.array([A.continue_action(3, 4), A.BRANCH]))
    # sub-env 0 was reset: its (invalid) action was ignored, reward 0, a fresh episode
    assert rew[0] == 0.0 and not term[0] and venv.state.cursor[0] == 0 and venv.state.steps[0] == 0
    assert venv.state.cursor[1] == 2


def test_same_step_autoreset_semantics(synth):
    venv = TTSReplayVectorEnv(3, synth, max_branches=4, autoreset_mode="same_step")
    assert venv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    venv.reset(seed=0)
    venv.step(np.array([A.BRANCH] * 3))
    obs, rew, term, trunc, info = venv.step(np.array([A.BRANCH, A.ANSWER, A.BRANCH]))
    assert term.tolist() == [False, True, False]
    assert info["_final_obs"].tolist() == [False, True, False]
    assert info["final_obs"]["globals"][1][0] == 0.25  # width 1/4 at the end of the episode
    assert obs["globals"][1][0] == 0.0  # the new episode's first observation
    assert info["final_info"]["terminated"][1] and info["_final_info"][1]
    assert venv.state.cursor.tolist() == [2, 0, 2]


def test_disabled_autoreset_and_reset_mask(synth):
    venv = TTSReplayVectorEnv(3, synth, max_branches=4, autoreset_mode=AutoresetMode.DISABLED)
    venv.reset(seed=1)
    venv.step(np.array([A.ABSTAIN, A.BRANCH, A.BRANCH]))
    with pytest.raises(ValueError, match="sub-env 0.*already ended"):
        venv.step(np.array([A.BRANCH] * 3))
    q_before = venv.questions
    obs, info = venv.reset(options={"reset_mask": np.array([True, False, False]), "question": 2})
    assert info["_question"].tolist() == [True, False, False] and info["question"][0] == 2
    assert venv.questions[1:].tolist() == q_before[1:].tolist()
    assert venv.state.cursor.tolist() == [0, 1, 1]
    venv.step(np.array([A.BRANCH] * 3))


def test_raise_mode_steps_nothing(synth):
    venv = TTSReplayVectorEnv(4, synth, max_branches=4, invalid_action="raise")
    venv.reset(seed=2)
    venv.step(np.full(4, A.BRANCH))
    before = venv.state.cost.copy(), venv.state.steps.copy()
    with pytest.raises(ValueError) as exc:
        venv.step(np.array([A.BRANCH, A.BRANCH, A.continue_action(3, 4), A.BRANCH]))
    assert "sub-env 2" in str(exc.value) and "CONTINUE(3)" in str(exc.value)
    np.testing.assert_array_equal(venv.state.cost, before[0])
    np.testing.assert_array_equal(venv.state.steps, before[1])
    with pytest.raises(ValueError, match=r"sub-env 3: action 99 is outside the action space Discrete\(20\)"):
        venv.step(np.array([0, 0, 0, 99]))
    with pytest.raises(ValueError, match="sub-env 1: action 1180591620717411303424 is outside"):
        venv.step([0, 2 ** 70, 0, 0])  # never a numpy OverflowError
    with pytest.raises(TypeError, match="integer action ids"):
        venv.step(np.array([0.0, 2.7, 0.0, 0.0]))  # never rounded
    with pytest.raises(ValueError, match="expected 4 actions"):
        venv.step(np.zeros(3, np.int64))


def test_penalize_mode_vector(synth):
    venv = TTSReplayVectorEnv(3, synth, max_branches=4, invalid_action="penalize", invalid_action_penalty=0.5,
                              max_episode_steps=3)
    venv.reset(seed=2)
    obs, rew, term, trunc, info = venv.step(np.array([A.BRANCH, A.prune_action(2, 4), A.BRANCH]))
    assert rew.tolist() == [0.0, -0.5, 0.0] and info["invalid_action"].tolist() == [False, True, False]
    assert venv.state.cursor.tolist() == [1, 0, 1]
    venv.step(np.array([A.BRANCH] * 3))
    obs, rew, term, trunc, info = venv.step(np.array([A.BRANCH] * 3))
    assert trunc.tolist() == [True, True, True] and not term.any()


def test_seeded_draws_reproducible_and_vectorised(synth):
    a = TTSReplayVectorEnv(64, synth, max_branches=8, permutation="random", cost_weight=(0.0, 1.0))
    b = TTSReplayVectorEnv(64, synth, max_branches=8, permutation="random", cost_weight=(0.0, 1.0))
    ia, _ = a.reset(seed=9)
    ib, _ = b.reset(seed=9)
    np.testing.assert_array_equal(a.state.order, b.state.order)
    np.testing.assert_array_equal(a.questions, b.questions)
    np.testing.assert_array_equal(a.cost_weights, b.cost_weights)
    assert len(set(a.questions.tolist())) > 3 and (a.cost_weights > 0).all()
    for e in range(64):
        assert sorted(a.state.order[e, :8].tolist()) == sorted(set(a.state.order[e, :8].tolist()))
    seq = TTSReplayVectorEnv(10, synth, max_branches=8, question_sampling="sequential")
    _, info = seq.reset(seed=0)
    assert info["question"].tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]
    assert info["shuffle_seed"].tolist() == [0] * 7 + [1] * 3


def test_per_env_options(real):
    venv = TTSReplayVectorEnv(3, real, max_branches=64)
    venv.reset(options={"question": [0, 1, 2], "shuffle_seed": [0, 1, 99]})
    from tts_gym.core.orders import reference_permutation
    for e, s in enumerate([0, 1, 99]):
        np.testing.assert_array_equal(venv.state.order[e], reference_permutation(s, 128)[:64])
    # SC@64 on question 1 of seed 0, inside a batch
    for _ in range(64):
        venv.step(np.full(3, A.SAMPLE))
    _, rew, term, _, info = venv.step(np.full(3, A.ANSWER))
    assert term.all()


def test_copy_false_returns_buffers_and_render(synth):
    venv = TTSReplayVectorEnv(2, synth, max_branches=4, copy=False, render_mode="ansi")
    o1, _ = venv.reset(seed=0)
    o2, *_ = venv.step(np.array([A.BRANCH, A.BRANCH]))
    assert o1["positions"] is o2["positions"]
    frames = venv.render()
    assert isinstance(frames, tuple) and len(frames) == 1 and "opened 1/4" in frames[0]
    venv_copy = TTSReplayVectorEnv(2, synth, max_branches=4)
    o1, _ = venv_copy.reset(seed=0)
    o2, *_ = venv_copy.step(np.array([A.BRANCH, A.BRANCH]))
    assert o1["positions"] is not o2["positions"]


def test_gymnasium_vector_wrappers(synth):
    from gymnasium.wrappers.vector import RecordEpisodeStatistics
    venv = RecordEpisodeStatistics(TTSReplayVectorEnv(4, synth, max_branches=4))
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    seen = False
    for _ in range(60):
        m = venv.unwrapped.action_masks()
        _, _, term, trunc, info = venv.step(np.array([_pick(row, rng, p_stop=0.3) for row in m]))
        seen |= "episode" in info
    assert seen


# ---------------------------------------------------------------------------------------------
# stable-baselines3 adapter
# ---------------------------------------------------------------------------------------------

def test_sb3_adapter_masks_and_steps(synth):
    pytest.importorskip("stable_baselines3")
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    from tts_gym.envs.sb3 import SB3VecEnv, make_sb3_vec_env
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        with pytest.raises(ValueError, match="autoreset_mode=AutoresetMode.DISABLED"):
            SB3VecEnv(TTSReplayVectorEnv(2, synth, max_branches=4, autoreset_mode=mode))
    venv = make_sb3_vec_env(4, store=synth, max_branches=4)
    assert venv.cost_weights is None and venv.venv.autoreset_mode is AutoresetMode.DISABLED
    calls = []
    inner = venv.venv.action_masks
    venv.venv.action_masks = lambda: calls.append(1) or inner()
    assert is_masking_supported(venv)
    venv.seed(5)
    obs = venv.reset()
    assert obs["positions"].shape == (4, 4, 15)
    masks = get_action_masks(venv)
    assert masks.shape == (4, 20) and len(calls) == 1  # one batched call, not one per env
    rng = np.random.default_rng(0)
    terminal_seen = False
    for _ in range(40):
        m = get_action_masks(venv)
        obs, rew, dones, infos = venv.step(np.array([_pick(row, rng, p_stop=0.3) for row in m]))
        assert rew.dtype == np.float32 and dones.shape == (4,) and len(infos) == 4
        for i in np.flatnonzero(dones):
            terminal_seen = True
            assert set(infos[i]["terminal_observation"]) == {"positions", "globals"}
            assert infos[i]["terminal_observation"]["positions"].shape == (4, 15)
            assert "TimeLimit.truncated" in infos[i] and "correct" in infos[i]
            ep = infos[i]["episode"]  # Monitor-style; cost_weights=None: the env's own (0.0)
            assert ep["correct"] == infos[i]["correct"] and ep["tokens"] == infos[i]["tokens"]
            assert ep["cost_weight"] == 0.0 and ep["l"] >= 1
            assert obs["globals"][i, 6] == 0  # the returned observation is a fresh episode's
        for i in np.flatnonzero(~dones):
            assert infos[i] == {}
    assert terminal_seen
    assert venv.env_method("action_masks", indices=[1, 3]).shape == (2, 20)
    assert venv.get_attr("max_branches") == [4] * 4
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 4


def test_sb3_adapter_cost_weights_and_vec_wrappers(synth):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import VecCheckNan

    from tts_gym.envs.sb3 import CostWeightSampler, SB3VecEnv, make_sb3_vec_env
    venv = make_sb3_vec_env(8, store=synth, max_branches=4, cost_weights=(1e-3, 0.1), max_episode_steps=5)
    assert isinstance(venv.cost_weights, CostWeightSampler) and venv.venv.setup.gamma_high == pytest.approx(0.1)
    wrapped = VecCheckNan(venv, raise_exception=True)  # an SB3 VecEnvWrapper over the adapter
    wrapped.seed(1)
    obs = wrapped.reset()
    g = obs["globals"][:, 13]
    assert np.all((g >= 1e-3 * 0.999) & (g <= 0.1 * 1.001)) and np.unique(g).size > 1
    rng = np.random.default_rng(0)
    truncated = ended = 0
    for _ in range(30):
        m = wrapped.env_method("action_masks")
        obs, rew, dones, infos = wrapped.step(np.array([_pick(row, rng, p_stop=0.05) for row in m]))
        for i in np.flatnonzero(dones):
            ended += 1
            truncated += infos[i]["TimeLimit.truncated"]
            assert 1e-3 * 0.999 <= infos[i]["episode"]["cost_weight"] <= 0.1 * 1.001
    assert ended > 0 and truncated > 0
    # a constant cost weight, and a seeded run is reproducible
    runs = []
    for _ in range(2):
        v = SB3VecEnv(TTSReplayVectorEnv(4, synth, max_branches=4, cost_weight=(0.0, 1.0),
                                         autoreset_mode=AutoresetMode.DISABLED), cost_weights=0.25)
        v.seed(3)
        runs.append(v.reset())
        assert np.all(runs[-1]["globals"][:, 13] == pytest.approx(0.25))
    np.testing.assert_array_equal(runs[0]["positions"], runs[1]["positions"])


def test_maskable_ppo_learns_a_few_steps(synth):
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import MaskablePPO

    from tts_gym.envs.sb3 import make_sb3_vec_env
    venv = make_sb3_vec_env(4, store=synth, max_branches=4, cost_weight=(0.0, 1.0))
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0,
                        policy_kwargs={"net_arch": [16]}, device="cpu")
    model.learn(64)
    obs = venv.reset()
    action, _ = model.predict(obs, action_masks=venv.action_masks(), deterministic=True)
    assert venv.action_masks()[np.arange(4), action].all()


def _assert_same_tree(a, b, path="infos"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, sorted(a), sorted(b))
        for k in a:
            _assert_same_tree(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            _assert_same_tree(x, y, f"{path}[{k}]")
    else:
        np.testing.assert_array_equal(a, b, err_msg=path)
        assert np.asarray(a).dtype == np.asarray(b).dtype, path


@pytest.mark.parametrize("mode, invalid", [(AutoresetMode.NEXT_STEP, "raise"),
                                           (AutoresetMode.SAME_STEP, "penalize")])
def test_num_threads_matches_single_thread(synth, mode, invalid):
    E, M, steps = 256, 6, 300
    kw = dict(store=synth, max_branches=M, autoreset_mode=mode, invalid_action=invalid,
              cost_weight=(0.0, 1.0), max_episode_steps=40)
    envs = [TTSReplayVectorEnv(E, num_threads=t, **kw) for t in (1, 2)]
    assert envs[1].num_threads == 2 and envs[0].num_threads == 1
    outs = [env.reset(seed=11) for env in envs]
    _assert_same_tree(outs[0], outs[1], "reset")
    rng = np.random.default_rng(3)
    n_actions = 4 + 4 * M
    ended = invalid_seen = 0
    for t in range(steps):
        masks = [env.action_masks() for env in envs]
        np.testing.assert_array_equal(masks[0], masks[1])
        score = rng.random(masks[0].shape) * masks[0]
        score[:, [A.ANSWER, A.ABSTAIN]] *= 0.1  # longer episodes
        actions = score.argmax(axis=1)
        if invalid == "penalize":  # some in-space but possibly inadmissible actions
            wild = rng.random(E) < 0.05
            actions[wild] = rng.integers(0, n_actions, int(wild.sum()))
        outs = [env.step(actions.copy()) for env in envs]
        for k, name in enumerate(("obs", "rewards", "terminated", "truncated", "infos")):
            _assert_same_tree(outs[0][k], outs[1][k], f"step {t} {name}")
        ended += int(np.count_nonzero(outs[0][2] | outs[0][3]))
        invalid_seen += int(np.count_nonzero(outs[0][4]["invalid_action"]))
    assert ended > E  # autoresets happened in both halves of the batch
    assert (invalid_seen > 0) == (invalid == "penalize")
    for env in envs:
        env.close()


def test_num_threads_raise_checks_whole_batch_first(synth):
    E = 64
    env = TTSReplayVectorEnv(E, store=synth, max_branches=4, num_threads=2, invalid_action="raise")
    with pytest.raises(ValueError, match="num_threads"):
        TTSReplayVectorEnv(E, store=synth, max_branches=4, num_threads=0)
    obs, _ = env.reset(seed=0)
    pos, glob = obs["positions"].copy(), obs["globals"].copy()
    cursor = env.state.cursor.copy()
    actions = np.full(E, A.BRANCH, np.int64)
    actions[E - 1] = 4 + 3  # CONTINUE an unopened position, in the second thread's half
    with pytest.raises(ValueError, match=f"sub-env {E - 1}"):
        env.step(actions)
    np.testing.assert_array_equal(env.state.cursor, cursor)  # nothing stepped, first half included
    np.testing.assert_array_equal(env._pos, pos)
    np.testing.assert_array_equal(env._glob, glob)
    env.close()
    env.step(np.full(E, A.BRANCH, np.int64))  # after close(): single-threaded, still works
