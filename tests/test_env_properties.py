"""Property tests: the compiled env against the plain-Python specification (tts_gym.core.spec_model).

Hypothesis drives random action sequences -- mostly admissible, some not -- on real shared stores,
a synthetic store and the hand-written toy store, fused and unfused, with and without probe cost
and token budget. After every step the env and the Python model must agree on the charge, the
revealed answer, the finished flag, the cost, the mask, the raw state and the observation; every
inadmissible action must raise a ValueError naming the action and the same rule.
"""
from __future__ import annotations

from functools import lru_cache

import numba as nb
import numpy as np
import pytest
from conftest import shared_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tts_gym.core import actions as A
from tts_gym.core import kernels as K
from tts_gym.envs.env import TTSReplayEnv
from tts_gym.core.orders import reference_permutation
from tts_gym.core.spec_model import InadmissibleAction, PyEpisode, toy_store
from tts_gym.data.synthetic import synthesize

STORE_KEYS = ("toy", "synthetic", "Qwen3-1.7B/aime24", "Qwen3-0.6B/hmmt25", "Qwen3-8B/aime25")
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@lru_cache(maxsize=None)
def get_store(key: str):
    if key == "toy":
        return toy_store()
    if key == "synthetic":
        return synthesize(5, 24, seed=11, max_probes=10)
    model, bench = key.split("/")
    return shared_store(model, bench)


@lru_cache(maxsize=None)
def get_env(key: str, M: int, fused: bool, probe_cost: int, budget):
    return TTSReplayEnv(get_store(key), max_branches=M, fused=fused, probe_cost=probe_cost,
                        token_budget=budget, invalid_action="raise")


configs = st.fixed_dictionaries({
    "store": st.sampled_from(STORE_KEYS),
    "M": st.sampled_from([1, 2, 3, 5, 8, 64, 130]),
    "fused": st.booleans(),
    "probe_cost": st.sampled_from([0, 0, 3, 500]),
    "budget": st.sampled_from([None, None, None, 700, 6000, 40_000]),
})


def _check_state(env, py: PyEpisode, store, q):
    view = env.episode
    assert view.cursor == py.cursor and view.cost == py.cost and view.steps == py.steps
    tab = store.answer_tables[q]
    for p in range(py.cursor):
        pos = py.positions[p]
        assert view.depth[p] == pos.depth
        assert view.ledger[p] == pos.ledger
        lat = int(view.latest[p])
        assert (tab[lat] if lat >= 0 else None) == pos.latest
        assert view.is_finished(p) == pos.finished and view.is_pruned(p) == pos.pruned
        assert view.is_sampled(p) == pos.sampled
        assert view.stable[p] == pos.stable


def _check_obs(env, py: PyEpisode, obs):
    op = env.setup.oparams
    rows, glob = py.observe(depth_scale=op.depth_scale, cost_scale=op.cost_scale,
                            step_scale=op.step_scale, gamma=env.cost_weight,
                            stability_horizon=op.stability_horizon)
    np.testing.assert_allclose(obs["positions"], np.asarray(rows, np.float64), rtol=0, atol=1e-6)
    np.testing.assert_allclose(obs["globals"], np.asarray(glob, np.float64), rtol=0, atol=1e-6)


@SETTINGS
@given(cfg=configs, data=st.data())
def test_env_matches_python_spec(cfg, data):
    store = get_store(cfg["store"])
    env = get_env(cfg["store"], cfg["M"], cfg["fused"], cfg["probe_cost"], cfg["budget"])
    M = cfg["M"]
    q = data.draw(st.integers(0, store.num_questions - 1), label="question")
    seed = data.draw(st.integers(0, 150), label="shuffle seed")
    obs, info = env.reset(options={"question": q, "shuffle_seed": seed})
    py = PyEpisode.from_store(store, q, reference_permutation(seed, int(store.num_branches[q])), M,
                              fused=cfg["fused"], probe_cost=cfg["probe_cost"], token_budget=cfg["budget"])
    assert info["action_mask"].tolist() == py.mask()
    _check_obs(env, py, obs)
    n_actions = A.num_actions(M)
    for _ in range(data.draw(st.integers(1, 70), label="steps")):
        mask = py.mask()
        kind = data.draw(st.integers(0, 19), label="kind")
        if kind == 0:  # any id in the space (often inadmissible)
            a = data.draw(st.integers(0, n_actions - 1), label="any action")
        else:
            ok = [x for x in np.flatnonzero(mask).tolist()
                  if kind == 1 or not (x in (A.ANSWER, A.ABSTAIN) or x >= 4 + 3 * M)]
            if not ok:
                ok = np.flatnonzero(mask).tolist()
            a = data.draw(st.sampled_from(ok), label="admissible action")
        try:
            out = py.step(a)
        except InadmissibleAction as exc:
            before = (env.episode.cost, env.episode.cursor, env.episode.steps)
            with pytest.raises(ValueError) as err:
                env.step(a)
            msg = str(err.value)
            assert A.describe(a, M) in msg
            assert K.ERROR_MESSAGES[getattr(K, exc.reason)] in msg
            assert (env.episode.cost, env.episode.cursor, env.episode.steps) == before
            continue
        obs, reward, term, trunc, info = env.step(a)
        assert not trunc
        assert info["charge"] == out["charge"]
        assert info["revealed"] == out["revealed"]
        assert info["position"] == out["position"]
        assert info["finished"] == out["finished"]
        assert info["cost"] == py.cost and info["cursor"] == py.cursor
        assert info["action_mask"].tolist() == py.mask() == py.fast_mask()
        _check_state(env, py, store, q)
        _check_obs(env, py, obs)
        assert term == py.done
        if term:
            assert info["answer"] == py.answer
            assert info["correct"] == (py.answer is not None and py.answer == store.gold_answers[q])
            assert reward == (1.0 if info["correct"] else 0.0)
            assert info["tokens"] == py.cost
            break
        assert reward == 0.0 and "correct" not in info


@nb.njit(cache=False)
def _masks_by_check_action(state, data, params, out):
    for e in range(out.shape[0]):
        for a in range(out.shape[1]):
            out[e, a] = K.check_action(state, data, params, e, a) == K.OK


@pytest.mark.parametrize("fused,probe_cost,budget", [(True, 0, 0), (False, 0, 0), (False, 9, 4000),
                                                     (True, 3, 2500)])
def test_fast_mask_equals_check_action(fused, probe_cost, budget):
    """action_mask_episode (one pass over positions) equals check_action over every action id."""
    from tts_gym.envs.vector import TTSReplayVectorEnv
    E, M = 48, 6
    venv = TTSReplayVectorEnv(E, get_store("Qwen3-1.7B/aime24"), max_branches=M, fused=fused,
                              probe_cost=probe_cost, token_budget=budget or None,
                              autoreset_mode="disabled")
    venv.reset(seed=1)
    rng = np.random.default_rng(0)
    fast = np.zeros((E, A.num_actions(M)), np.bool_)
    slow = np.zeros_like(fast)
    for t in range(40):
        fast[:] = venv.action_masks()
        _masks_by_check_action(venv.state, venv.data, venv.params, slow)
        np.testing.assert_array_equal(fast, slow)
        if venv.state.done.all():
            break
        acts = np.array([rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in fast])
        # keep most episodes going: prefer non-terminal actions
        for e in range(E):
            nonterm = [x for x in np.flatnonzero(fast[e]) if x not in (A.ANSWER, A.ABSTAIN) and x < 4 + 3 * M]
            if nonterm and rng.random() < 0.95:
                acts[e] = rng.choice(nonterm)
        live = ~venv.state.done
        if not live.all():
            venv.reset(options={"reset_mask": ~live})
        venv.step(acts)


@given(cfg=configs, seed=st.integers(0, 10_000), n_actions=st.integers(0, 80))
@SETTINGS
def test_reset_after_any_episode_equals_fresh_state(cfg, seed, n_actions):
    """reset_episode clears only the positions the previous episode opened; whatever that episode
    did, the reset state equals a reset of a fresh make_state, field for field."""
    store = get_store(cfg["store"])
    M = cfg["M"]
    params = K.EnvParams(M, cfg["fused"], cfg["probe_cost"], cfg["budget"] or 0)
    data = K.pack_stores([store])
    rng = np.random.default_rng(seed)
    used = K.make_state(1, M)
    q = int(rng.integers(store.num_questions))
    perm = np.full(M, 0, np.int32)
    n = int(store.num_branches[q])
    perm[:min(M, n)] = rng.permutation(n)[:min(M, n)]
    K.reset_episode(used, 0, q, perm)
    mask = np.zeros(A.num_actions(M), np.bool_)
    for _ in range(n_actions):
        K.action_mask_episode(used, data, params, 0, mask)
        allowed = np.flatnonzero(mask)
        # mostly non-terminal actions, so episodes get long
        live = [a for a in allowed if a not in (A.ANSWER, A.ABSTAIN)
                and a < A.NUM_GLOBAL_ACTIONS + 3 * M]   # no ANSWER_WITH
        if not live:
            break
        assert K.step_episode(used, data, params, 0, int(rng.choice(live)))[0] == K.OK
    q2 = int(rng.integers(store.num_questions))
    perm2 = np.roll(perm, 1)
    K.reset_episode(used, 0, q2, perm2)
    fresh = K.make_state(1, M)
    K.reset_episode(fresh, 0, q2, perm2)
    for name in K.EnvState._fields:
        np.testing.assert_array_equal(getattr(used, name), getattr(fresh, name), err_msg=name)
