"""TTSReplayEnv: construction, gymnasium/SB3 API conformance, episodes, rewards, infos, no gold leak."""
from __future__ import annotations

import dataclasses
import warnings

import gymnasium as gym
import numpy as np
import pytest
from conftest import shared_store

import tts_gym
from tts_gym.core import actions as A
from tts_gym.envs.env import TTSReplayEnv
from tts_gym.core.kernels import ERROR_MESSAGES, ERR_FINISHED, ERR_NOT_OPENED
from tts_gym.core.observation import (G_COST_WEIGHT, GLOBAL_FEATURES, NUM_GLOBAL_FEATURES,
                                 NUM_POSITION_FEATURES, POSITION_FEATURES, confidence_table)
from tts_gym.core.orders import reference_permutation
from tts_gym.core.spec_model import toy_records, toy_store
from tts_gym.core.voting import conf_table
from tts_gym.data.store import ReplayStore
from tts_gym.data.synthetic import synthesize

ENV_ID = "tts_gym/Replay-v0"


@pytest.fixture(scope="module")
def toy():
    return toy_store()


@pytest.fixture(scope="module")
def synth():
    return synthesize(6, 16, seed=3, max_probes=12)


@pytest.fixture(scope="module")
def real():
    return shared_store("Qwen3-1.7B", "aime24")


def _info_without_mask(info):
    return {k: v for k, v in info.items() if k != "action_mask"}


# ---------------------------------------------------------------------------------------------
# construction and registration
# ---------------------------------------------------------------------------------------------

def test_registered_and_make(toy):
    assert ENV_ID in gym.registry
    spec = gym.spec(ENV_ID)
    assert spec.entry_point == "tts_gym.envs.env:TTSReplayEnv"
    assert spec.vector_entry_point == "tts_gym.envs.vector:TTSReplayVectorEnv"
    env = gym.make(ENV_ID, store=toy, max_branches=4)
    assert isinstance(env.unwrapped, TTSReplayEnv)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space == gym.spaces.Discrete(4 + 4 * 4)
    env.close()


def test_default_store_is_synthetic():
    env = TTSReplayEnv()
    assert env.setup.stores[0].model == "synthetic"
    obs, _ = env.reset(seed=0)
    assert obs["positions"].shape == (64, NUM_POSITION_FEATURES)
    assert obs["globals"].shape == (NUM_GLOBAL_FEATURES,)


def test_store_list_and_paths(tmp_path, toy, synth):
    env = TTSReplayEnv([toy, synth], max_branches=4)
    assert env.setup.Q == toy.num_questions + synth.num_questions
    _, info = env.reset(options={"question": toy.num_questions + 2, "shuffle_seed": 0})
    assert info["store"] == synth.name and info["store_question"] == 2
    from tts_gym.data.hdf5 import save_stores
    path = tmp_path / "two.h5"
    save_stores(path, [toy, synth])
    env_all = TTSReplayEnv(str(path), max_branches=4)
    assert env_all.setup.Q == toy.num_questions + synth.num_questions
    env_one = TTSReplayEnv(path, model="toy", benchmark="toy", max_branches=4)
    assert env_one.setup.Q == toy.num_questions
    with pytest.raises(TypeError):
        TTSReplayEnv(store=3.5)


@pytest.mark.parametrize("kwargs", [
    dict(max_branches=0), dict(invalid_action="ignore"), dict(question_sampling="random"),
    dict(permutation="sorted"), dict(probe_cost=-1), dict(token_budget=0), dict(token_scale=0),
    dict(cost_weight=-1.0), dict(cost_weight=(2.0, 1.0)), dict(cost_weight=(0.0, 1.0, 2.0)),
    dict(render_mode="human"), dict(max_episode_steps=0),
])
def test_bad_arguments(toy, kwargs):
    with pytest.raises(ValueError):
        TTSReplayEnv(toy, **kwargs)


# ---------------------------------------------------------------------------------------------
# API conformance
# ---------------------------------------------------------------------------------------------

def test_gymnasium_check_env(synth):
    from gymnasium.utils.env_checker import check_env
    # check_env steps with unmasked random actions: the default env takes them
    env = gym.make(ENV_ID, store=synth, max_branches=8, cost_weight=(0.0, 2.0), dense_reward=True,
                   render_mode="ansi")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no checker warning either
        check_env(env.unwrapped)
    check_env(gym.make(ENV_ID, store=synth, max_branches=8, fused=False, probe_cost=5).unwrapped,
              skip_render_check=True)


def test_sb3_check_env(synth):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env
    env = TTSReplayEnv(synth, max_branches=8, step_limit=50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, warn=True)
    # the only SB3 remark: the (M, F) positions box is 2-D (MultiInputPolicy flattens it)
    msgs = [str(w.message) for w in caught if "unconventional shape" not in str(w.message)]
    assert not [m for m in msgs if "observation" in m.lower() or "action" in m.lower()], msgs


def test_observation_space_layout(toy):
    env = TTSReplayEnv(toy, max_branches=7, cost_weight=(0.5, 3.0))
    space = env.observation_space
    assert isinstance(space, gym.spaces.Dict) and set(space.spaces) == {"positions", "globals"}
    assert space["positions"].shape == (7, len(POSITION_FEATURES)) and space["positions"].dtype == np.float32
    assert space["globals"].shape == (len(GLOBAL_FEATURES),) and space["globals"].dtype == np.float32
    assert space["globals"].high[G_COST_WEIGHT] == 3.0
    for _ in range(5):
        obs, info = env.reset()
        assert 0.5 <= info["cost_weight"] <= 3.0
        assert obs["globals"][G_COST_WEIGHT] == np.float32(info["cost_weight"])
        assert space.contains(obs)


def test_confidence_table_exact():
    t = confidence_table()
    assert t.shape == (129, 129) and t.dtype == np.float64
    assert t[0, 5] == 0.0
    assert t[1, 0] == 0.75            # P[Bin(2, 1/2) <= 1]
    assert t[2, 1] == 11 / 16         # P[Bin(4, 1/2) <= 2]
    assert t[3, 3] == 0.5             # symmetric split: exactly one half
    assert np.array_equal(t, conf_table()[:129, :129])   # the env's table is voting's


# ---------------------------------------------------------------------------------------------
# episodes: seeding, options, reference parity
# ---------------------------------------------------------------------------------------------

def test_reset_seed_reproducible(synth):
    env = TTSReplayEnv(synth, max_branches=8, permutation="random", cost_weight=(0.0, 1.0))
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=123)
        eps = [(info["question"], info["cost_weight"], tuple(env.state.order[0]))]
        for _ in range(4):
            _, info = env.reset()
            eps.append((info["question"], info["cost_weight"], tuple(env.state.order[0])))
        runs.append(eps)
    assert runs[0] == runs[1]
    assert len({e[0] for e in runs[0]}) > 1 or len({e[2] for e in runs[0]}) > 1


def test_reset_options_exact_episode(real):
    env = TTSReplayEnv(real, max_branches=64)
    _, info = env.reset(options={"question": 7, "shuffle_seed": 42})
    assert info["question"] == 7 and info["shuffle_seed"] == 42
    np.testing.assert_array_equal(env.state.order[0], reference_permutation(42, 128)[:64])
    # shuffle seeds beyond the precomputed table still follow the reference recipe
    env.reset(options={"question": 0, "shuffle_seed": 1000})
    np.testing.assert_array_equal(env.state.order[0], reference_permutation(1000, 128)[:64])
    env.reset(options={"question": 3, "permutation": np.arange(128)[::-1]})
    assert env.state.order[0, 0] == 127 and env.shuffle_seed == -1
    for bad in ({"question": 30}, {"question": -1}, {"shuffle_seed": -2}, {"oops": 1},
                {"permutation": [0, 0, 1]}, {"cost_weight": -1.0}, {"cost_weight": 5.0}):
        with pytest.raises(ValueError):
            env.reset(options=bad)


def test_sequential_sampling_walks_the_protocol(toy):
    env = TTSReplayEnv(toy, max_branches=4, question_sampling="sequential")
    seen = []
    env.reset(seed=0)
    seen.append((env.question, env.shuffle_seed))
    for _ in range(6):
        env.reset()
        seen.append((env.question, env.shuffle_seed))
    assert seen == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2)]
    env.reset(seed=5)  # a new seed restarts the walk
    assert (env.question, env.shuffle_seed) == (0, 0)


def test_random_permutation_is_a_permutation_prefix(toy):
    env = TTSReplayEnv(toy, max_branches=16, permutation="random")
    for _ in range(20):
        env.reset()
        n = int(toy.num_branches[env.question])
        order = env.state.order[0, :n]
        assert sorted(order.tolist()) == list(range(n))


def test_sc64_reference_fingerprint(real):
    """SC@64 = 64 SAMPLEs + ANSWER reproduces the seed-0 question-1 figure of
    docs/replay-semantics.md (230,257 tokens)."""
    env = gym.make(ENV_ID, store=real, max_branches=64)
    env.reset(options={"question": 0, "shuffle_seed": 0})
    for _ in range(64):
        _, reward, term, _, info = env.step(A.SAMPLE)
    _, reward, term, trunc, info = env.step(A.ANSWER)
    assert term and not trunc
    assert info["tokens"] == 230_257 and info["correct"] and info["answer"] == "204"
    assert reward == 1.0  # gamma = 0


def test_worked_example_costs(real):
    """Spec 2.3: question 1 / stored branch 0 (K = 8, T = 3963): probing it fully costs 4000, the
    finishing step 0; a full read costs 3963."""
    env = TTSReplayEnv(real, max_branches=4)
    env.reset(options={"question": 0, "permutation": np.arange(128)})
    charges, revealed = [], []
    _, _, _, _, info = env.step(A.BRANCH)
    charges.append(info["charge"]); revealed.append(info["revealed"])
    while not info["finished"]:
        _, _, _, _, info = env.step(A.continue_action(0, 4))
        charges.append(info["charge"]); revealed.append(info["revealed"])
    assert revealed == ["3.5", "3.6", "ERR", "204", "204", "204", "204", "204", "204"]
    assert charges == [500] * 8 + [0] and info["cost"] == 4000
    assert env.episode.depth[0] == 9
    _, _, _, _, info = env.step(A.SAMPLE)  # position 1 = stored branch 1
    assert info["charge"] == int(real.branch_tokens[0, 1]) and info["finished"]


def test_toy_costs_by_hand(toy):
    env = TTSReplayEnv(toy, max_branches=8, invalid_action="raise")
    env.reset(options={"question": 0, "permutation": [3, 0, 1, 2, 4]})
    _, _, _, _, info = env.step(A.BRANCH)   # branch 3: no probes -> finishing step = T
    assert (info["charge"], info["revealed"], info["finished"]) == (60, "42", True)
    _, _, _, _, info = env.step(A.BRANCH)   # branch 0: probe "7"
    assert (info["charge"], info["revealed"], info["finished"]) == (100, "7", False)
    for expect in ["42", "42"]:
        _, _, _, _, info = env.step(A.continue_action(1, 8))
        assert (info["charge"], info["revealed"]) == (100, expect)
    _, _, _, _, info = env.step(A.continue_action(1, 8))  # finishing: max(0, 280 - 300) = 0
    assert (info["charge"], info["revealed"], info["finished"]) == (0, "42", True)
    _, _, _, _, info = env.step(A.SAMPLE)   # branch 1 full read: 450
    assert (info["charge"], info["revealed"]) == (450, "13")
    assert info["cost"] == 60 + 300 + 450 and info["cursor"] == 3
    np.testing.assert_array_equal(env.episode.ledger[:3], [60, 300, 450])
    _, r, term, _, info = env.step(A.ANSWER)  # plurality of latest: 42 (x2) vs 13
    assert term and info["answer"] == "42" and info["correct"] and r == 1.0


# ---------------------------------------------------------------------------------------------
# invalid actions
# ---------------------------------------------------------------------------------------------

def test_invalid_action_raises_clear_error(toy):
    env = TTSReplayEnv(toy, max_branches=4, invalid_action="raise")
    env.reset(options={"question": 0, "shuffle_seed": 0})
    with pytest.raises(ValueError) as exc:
        env.step(A.continue_action(2, 4))
    msg = str(exc.value)
    assert "CONTINUE(2)" in msg and ERROR_MESSAGES[ERR_NOT_OPENED] in msg
    env.reset(options={"question": 0, "permutation": [3, 0, 1, 2, 4]})
    env.step(A.BRANCH)  # finished at once (no probes)
    with pytest.raises(ValueError, match=r"CONTINUE\(0\)") as exc:
        env.step(A.continue_action(0, 4))
    assert ERROR_MESSAGES[ERR_FINISHED] in str(exc.value)
    with pytest.raises(ValueError, match="PROBE"):
        env.step(A.probe_action(0, 4))  # fused mode: nothing to probe
    # the state is unchanged after a refused action
    assert env.episode.cursor == 1 and env.episode.cost == 60


def test_out_of_space_and_after_end_always_raise(toy):
    env = TTSReplayEnv(toy, max_branches=4, invalid_action="penalize")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"outside the action space Discrete\(20\): valid ids are 0..19"):
        env.step(4 + 4 * 4)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(-1)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(2 ** 70)  # never a numba OverflowError
    env.step(A.ABSTAIN)
    with pytest.raises(ValueError, match="already ended"):
        env.step(A.BRANCH)
    with pytest.raises(RuntimeError, match="reset"):
        TTSReplayEnv(toy, max_branches=4).step(A.BRANCH)


def test_penalize_mode_is_a_noop(toy):
    env = TTSReplayEnv(toy, max_branches=4, invalid_action_penalty=0.25,
                       max_episode_steps=5, cost_weight=1.0, token_scale=100)
    assert env.setup.invalid_action == "penalize"  # the default
    obs0, _ = env.reset(options={"question": 1, "shuffle_seed": 3})
    obs, r, term, trunc, info = env.step(A.prune_action(3, 4))
    assert r == -0.25 and not term and not trunc
    assert info["invalid_action"] and "PRUNE(3)" in info["error"]
    assert env.episode.steps == 0 and env.episode.cost == 0
    for k in obs:
        np.testing.assert_array_equal(obs[k], obs0[k])
    env.step(A.BRANCH)  # cost 50 -> 0.5 reward units at gamma 1, scale 100
    for _ in range(2):
        env.step(A.continue_action(3, 4))
    obs, r, term, trunc, info = env.step(A.continue_action(3, 4))  # 5th action: truncation
    assert trunc and not term
    assert r == pytest.approx(-0.25 - 0.5) and info["tokens"] == 50 and info["correct"] is False


# ---------------------------------------------------------------------------------------------
# rewards, infos, gold
# ---------------------------------------------------------------------------------------------

def _rollout(env, actions, options):
    env.reset(options=options)
    rewards, infos = [], []
    for a in actions:
        _, r, term, trunc, info = env.step(a)
        rewards.append(r)
        infos.append(info)
        if term or trunc:
            break
    return rewards, infos


def test_dense_and_sparse_rewards_same_return(real):
    M = 8
    acts = [A.BRANCH, A.BRANCH, A.continue_action(0, M), A.SAMPLE, A.continue_action(1, M),
            A.prune_action(1, M), A.ANSWER]
    opts = {"question": 0, "shuffle_seed": 0, "cost_weight": 0.7}
    kw = dict(max_branches=M, token_scale=10_000, cost_weight=(0.0, 1.0))
    sparse, infos = _rollout(TTSReplayEnv(real, **kw), acts, opts)
    dense, _ = _rollout(TTSReplayEnv(real, dense_reward=True, **kw), acts, opts)
    cost = infos[-1]["tokens"]
    correct = float(infos[-1]["correct"])
    assert sparse[:-1] == [0.0] * (len(acts) - 1)
    assert sparse[-1] == pytest.approx(correct - 0.7 * cost / 10_000)
    assert sum(dense) == pytest.approx(sum(sparse))
    assert dense[0] == pytest.approx(-0.7 * infos[0]["charge"] / 10_000)


def test_info_fields(real):
    env = TTSReplayEnv(real, max_branches=4)
    _, info = env.reset(options={"question": 0, "shuffle_seed": 0})
    assert {"action_mask", "question", "store", "store_question", "shuffle_seed", "cost_weight"} <= set(info)
    _, _, _, _, info = env.step(A.BRANCH)
    keys = {"action_mask", "position", "revealed_id", "revealed", "finished", "charge", "cost",
            "cursor", "cost_weight", "invalid_action"}
    assert set(info) == keys
    assert info["revealed"] == real.answer_tables[0][info["revealed_id"]]
    assert info["action_mask"].dtype == np.bool_ and info["action_mask"].shape == (4 + 16,)
    np.testing.assert_array_equal(info["action_mask"], env.action_masks())
    _, _, _, _, info = env.step(A.prune_action(0, 4))
    assert info["position"] == 0 and info["revealed_id"] == -1 and info["charge"] == 0
    _, _, term, _, info = env.step(A.ABSTAIN)
    assert term and info["correct"] is False and info["answer"] is None and info["answer_id"] == -1
    assert info["tokens"] == 500


def _relabel(store: ReplayStore, q: int, rng) -> ReplayStore:
    """The same replay with question ``q``'s answer ids permuted (and strings renamed)."""
    n = len(store.answer_tables[q])
    perm = rng.permutation(n).astype(np.int32)
    probe_ids = store.probe_ids.copy()
    final_ids = store.final_ids.copy()
    m = probe_ids[q] >= 0
    probe_ids[q][m] = perm[probe_ids[q][m]]
    m = final_ids[q] >= 0
    final_ids[q][m] = perm[final_ids[q][m]]
    table = [None] * n
    for old, new in enumerate(perm):
        table[new] = "renamed:" + store.answer_tables[q][old]
    tables = list(store.answer_tables)
    tables[q] = tuple(table)
    gold = list(store.gold_answers)
    gold_ids = store.gold_ids.copy()
    if gold_ids[q] >= 0:
        gold_ids[q] = perm[gold_ids[q]]
        gold[q] = table[gold_ids[q]]
    return dataclasses.replace(store, probe_ids=probe_ids, final_ids=final_ids, answer_tables=tuple(tables),
                               gold_answers=tuple(gold), gold_ids=gold_ids)


def _trajectory(env, q, seed, actions):
    obs, _ = env.reset(options={"question": q, "shuffle_seed": seed})
    out = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, term, {k: v for k, v in info.items()
                                   if k not in ("revealed", "revealed_id", "answer", "answer_id")}))
        if term:
            break
    return out


def _random_actions(env, rng, n, q, seed):
    env.reset(options={"question": q, "shuffle_seed": seed})
    acts = []
    for _ in range(n):
        mask = env.action_masks()
        mask[[A.ANSWER, A.ABSTAIN]] = False
        mask[4 + 3 * env.max_branches:] = False
        if not mask.any():
            break
        a = int(rng.choice(np.flatnonzero(mask)))
        env.step(a)
        acts.append(a)
    return acts + [A.ANSWER]


def test_observation_invariant_to_answer_relabeling(real):
    rng = np.random.default_rng(7)
    q = 4
    relabeled = _relabel(real, q, rng)
    env_a = TTSReplayEnv(real, max_branches=12)
    env_b = TTSReplayEnv(relabeled, max_branches=12)
    acts = _random_actions(env_a, rng, 60, q, 3)
    ta, tb = _trajectory(env_a, q, 3, acts), _trajectory(env_b, q, 3, acts)
    assert len(ta) == len(tb)
    for x, y in zip(ta, tb):
        gym.utils.env_checker.data_equivalence(x, y, exact=True) or pytest.fail("trajectories differ")


def test_gold_never_visible_before_the_end(real):
    """Changing only the gold answer changes nothing a policy sees before termination."""
    q = 0
    other = dataclasses.replace(real, gold_answers=tuple("not-the-gold" if i == q else g
                                                         for i, g in enumerate(real.gold_answers)),
                                gold_ids=np.where(np.arange(real.num_questions) == q, -1, real.gold_ids).astype(np.int32))
    rng = np.random.default_rng(1)
    env_a = TTSReplayEnv(real, max_branches=8)
    env_b = TTSReplayEnv(other, max_branches=8)
    acts = _random_actions(env_a, rng, 40, q, 0)
    ta, tb = _trajectory(env_a, q, 0, acts), _trajectory(env_b, q, 0, acts)
    for x, y in zip(ta[:-1], tb[:-1]):
        assert gym.utils.env_checker.data_equivalence(x, y, exact=True)
        if isinstance(x, tuple):
            assert "correct" not in x[3] and not any("gold" in k for k in x[3])
    # only the terminal step may differ: correctness
    assert ta[-1][2] and tb[-1][2]
    assert tb[-1][3]["correct"] is False


def test_episode_view(real):
    env = gym.make(ENV_ID, store=real, max_branches=8)
    env.reset(options={"question": 2, "shuffle_seed": 5})
    view = env.unwrapped.episode
    assert view is env.unwrapped.raw_state()
    env.step(A.BRANCH)
    env.step(A.BRANCH)
    env.step(A.continue_action(0, 8))
    assert view.cursor == 2 and view.cost == 1500 and view.steps == 3
    assert view.depth[0] == 2 and view.is_opened(1) and not view.is_finished(0)
    assert view.answer_string(int(view.latest[0])) in real.answer_tables[2]
    assert not hasattr(view, "gold") and not any("gold" in n for n in dir(view))


def test_token_budget_masks(real):
    env = TTSReplayEnv(real, max_branches=8, token_budget=1000, invalid_action="raise")
    env.reset(options={"question": 0, "shuffle_seed": 0})
    env.step(A.BRANCH)
    env.step(A.BRANCH)  # cost 1000 -> budget reached
    mask = env.action_masks()
    assert not mask[A.BRANCH] and not mask[A.SAMPLE] and not mask[4:4 + 8].any()
    assert mask[A.ANSWER] and mask[A.ABSTAIN] and mask[4 + 24] and mask[4 + 25]
    assert mask[4 + 16]  # PRUNE is free
    with pytest.raises(ValueError, match="budget"):
        env.step(A.continue_action(0, 8))


def test_unfused_probe(real):
    M = 4
    env = TTSReplayEnv(real, max_branches=M, fused=False, probe_cost=7)
    env.reset(options={"question": 0, "permutation": np.arange(128)})
    _, _, _, _, info = env.step(A.BRANCH)
    assert info["revealed"] is None and info["charge"] == 500
    assert not env.action_masks()[A.answer_with_action(0, M)]
    _, _, _, _, info = env.step(A.continue_action(0, M))
    _, _, _, _, info = env.step(A.probe_action(0, M))
    assert info["revealed"] == "3.6" and info["charge"] == 7 and info["cost"] == 1007
    assert not env.action_masks()[A.probe_action(0, M)]
    _, _, _, _, info = env.step(A.SAMPLE)  # a full read reveals its final (and pays the reveal)
    assert info["charge"] == int(real.branch_tokens[0, 1]) + 7


def test_truncation_sparse_reward(toy):
    env = TTSReplayEnv(toy, max_branches=4, max_episode_steps=2, cost_weight=2.0, token_scale=1000)
    env.reset(options={"question": 0, "permutation": [0, 1, 2, 3, 4]})
    _, r, term, trunc, _ = env.step(A.BRANCH)
    assert (r, term, trunc) == (0.0, False, False)
    _, r, term, trunc, info = env.step(A.BRANCH)
    assert trunc and not term and r == pytest.approx(-2.0 * 200 / 1000)
    assert info["answer"] is None and info["correct"] is False


def test_max_branches_above_store_width(toy):
    env = TTSReplayEnv(toy, max_branches=12, invalid_action="raise")
    obs, _ = env.reset(options={"question": 2, "shuffle_seed": 0})  # 3 branches only
    assert obs["positions"][:, POSITION_FEATURES.index("available")].tolist() == [1.0] * 3 + [0.0] * 9
    for _ in range(3):
        env.step(A.BRANCH)
    assert not env.action_masks()[A.BRANCH]
    with pytest.raises(ValueError, match="every allowed branch position"):
        env.step(A.BRANCH)


def test_toy_records_roundtrip():
    store = ReplayStore.from_records("toy", "toy", toy_records())
    assert store.num_questions == 3 and store.gold_ids[2] == -1
    assert tts_gym.TTSReplayEnv is TTSReplayEnv


def test_episode_view_carries_no_gold_and_exposes_the_mask():
    """Code controllers get the EpisodeView: it must not hold the gold ids (the env scores from its
    own tensors), and its public mask equals the env's."""
    env = TTSReplayEnv(shared_store("Qwen3-1.7B", "aime24"), max_branches=8)
    env.reset(options={"question": 0, "shuffle_seed": 0})
    view = env.episode
    assert (env.data.gold_ids >= 0).any()
    assert (view._data.gold_ids == -1).all()
    env.step(A.BRANCH)
    assert np.array_equal(view.action_mask(), env.action_masks())
    assert view.committed_answer == -1
    env.step(A.answer_with_action(0, 8))
    assert view.committed_answer == int(env.state.answer[0]) >= 0


@pytest.mark.parametrize("kw", [dict(cost_weight=(0.0, 1.0)),
                                dict(fused=False, probe_cost=11, token_budget=9000, cost_weight=0.5)])
def test_episode_view_write_observation_equals_env_observation(synth, kw):
    """EpisodeView.write_observation with the env's own normalisers and gamma reproduces the env's
    observation (single env, and every sub-env of a vector env), and its action_mask the env's."""
    from tts_gym.envs.vector import TTSReplayVectorEnv
    M = 8
    pos = np.zeros((M, NUM_POSITION_FEATURES), np.float32)
    glob = np.zeros(NUM_GLOBAL_FEATURES, np.float32)
    rng = np.random.default_rng(0)
    env = TTSReplayEnv(synth, max_branches=M, **kw)
    op = env.setup.oparams
    view = env.episode
    assert view.fused == env.params.fused
    for q in range(3):
        obs, _ = env.reset(options={"question": q, "shuffle_seed": q})
        done = False
        while not done:
            pos.fill(7.0)
            glob.fill(7.0)
            out = view.write_observation(op, env.cost_weight, pos, glob)
            assert out[0] is pos and out[1] is glob
            np.testing.assert_array_equal(pos, obs["positions"])
            np.testing.assert_array_equal(glob, obs["globals"])
            assert np.array_equal(view.action_mask(params=env.params), env.action_masks())
            obs, _, term, trunc, _ = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
            done = term or trunc
    venv = TTSReplayVectorEnv(4, synth, max_branches=M, **kw)
    obs, _ = venv.reset(seed=1)
    for _ in range(40):
        views = [venv.episode(e) for e in range(4)]
        gammas = venv.cost_weights
        for e, v in enumerate(views):
            v.write_observation(venv.setup.oparams, gammas[e], pos, glob)
            np.testing.assert_array_equal(pos, obs["positions"][e])
            np.testing.assert_array_equal(glob, obs["globals"][e])
        masks = venv.action_masks()
        obs, *_ = venv.step(np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
    with pytest.raises(ValueError, match="float32"):
        view.write_observation(op, 0.0, np.zeros((M + 1, NUM_POSITION_FEATURES), np.float32), glob)
