"""The Policy interface: scripted (generator) controllers, the random masked policy, the SB3
wrapper and SB3-compatible ``predict``, the registry, and the AutoTTS adapter's documented quirks."""
from __future__ import annotations


import numpy as np
import pytest

from conftest import shared_store
from tts_gym.core import actions as A
from tts_gym.policies import (AutoTTSPolicy, Policy, PolicyError, RandomMaskedPolicy, SB3Policy,
                              ScriptedPolicy, action_mask, answer_action, as_policy, make_policy,
                              run_autotts_controller)
from tts_gym.policies.baselines import (AdaptiveConsistency, ConfidenceMomentum, ParallelProbe,
                                        SelfConsistency)
from tts_gym.evaluation.rollout import run_episodes, make_reference_env

MODEL, BENCH = "Qwen3-1.7B", "aime24"


@pytest.fixture(scope="module")
def store():
    return shared_store(MODEL, BENCH)


@pytest.fixture(scope="module")
def env(store):
    return make_reference_env(store)


def _reset(env, q=0, s=0):
    obs, _ = env.reset(options={"question": q, "shuffle_seed": s})
    return obs, env.unwrapped.episode


# ---------------------------------------------------------------------------------------------
# ScriptedPolicy
# ---------------------------------------------------------------------------------------------

class OpenAdvanceRead(ScriptedPolicy):
    """open one branch, advance it once, full-read one branch, answer the full read's final."""
    name = "open_advance_read"

    def script(self, view):
        self.trace = []
        r = yield from self.open(view)
        self.trace.append(("open", r, view.cost))
        x = yield from self.advance(view, r[1])
        self.trace.append(("advance", x, view.cost))
        self.trace.append(("advance-unopened", (yield from self.advance(view, 5))))
        a = yield from self.full_read(view)
        self.trace.append(("read", a, view.cost))
        return a


def test_scripted_policy_reads_view_between_yields(env, store):
    pol = OpenAdvanceRead()
    res = run_episodes(env, pol, [(0, 0), (0, 0)])
    # the same policy object replays the same episode identically (no state leaks)
    assert res.answers[0] == res.answers[1] and res.costs[0] == res.costs[1]
    (_, (a0, p0, f0), c0), (_, (a1, f1), c1), (_, none), (_, a2, c2) = pol.trace
    assert p0 == 0 and not f0 and c0 == 500 and c1 == 1000 and none is None
    perm = env.unwrapped.episode._state.order[0]
    assert a0 == store.probe_ids[0, perm[0], 0] and a1 == store.probe_ids[0, perm[0], 1]
    assert a2 == store.final_ids[0, perm[1]]
    assert c2 == 1000 + store.branch_tokens[0, perm[1]]
    assert res.answers[0] == a2 and res.costs[0] == c2 and res.steps[0] == 4


def test_scripted_policy_errors(env):
    pol = OpenAdvanceRead()
    obs, view = _reset(env)
    with pytest.raises(PolicyError):
        pol.act(obs, view)          # before reset
    with pytest.raises(TypeError):
        pol.predict(obs)            # needs the raw state


def test_answer_action(env):
    obs, view = _reset(env)
    assert answer_action(view, None) == A.ABSTAIN
    env.step(A.BRANCH)
    env.step(A.BRANCH)
    a = int(view.latest[1])
    hits = [p for p in range(2) if int(view.latest[p]) == a]
    assert answer_action(view, a) == A.answer_with_action(hits[0], view.max_branches)
    with pytest.raises(PolicyError):
        answer_action(view, 10_000)


def test_terminal_yield_and_script_without_answer(env):
    class YieldsAbstain(ScriptedPolicy):
        def script(self, view):
            yield A.BRANCH
            yield A.ABSTAIN

    res = run_episodes(env, YieldsAbstain(), [(1, 3)])
    assert res.answers[0] == -1 and not res.correct[0] and res.steps[0] == 2


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------

def test_make_policy_registry():
    assert isinstance(make_policy("sc", max_samples=8), SelfConsistency)
    assert isinstance(make_policy("sc", n=8), SelfConsistency)
    asc = make_policy("asc", max_samples=16, threshold=0.95)
    assert isinstance(asc, AdaptiveConsistency) and asc.params == {"max_samples": 16, "threshold": 0.95}
    pp = make_policy("parallel_probe", num_chains=64, K=5, T=40, eps_inter=5.0, eps_intra=5.0,
                     prune_patience=7, warm_up=15, probe_burst=1, max_steps=100)
    assert isinstance(pp, ParallelProbe) and pp.params["T"] == 40
    assert isinstance(make_policy("pp"), ParallelProbe)
    cmc = make_policy("cmc", beta=0.5)
    assert isinstance(cmc, ConfidenceMomentum) and cmc.schedule["n_init"] == 5
    assert make_policy("cmc", beta=0.5, emit_prune=False).emit_prune is False
    with pytest.raises(ValueError):
        make_policy("nope")
    with pytest.raises(ValueError):
        make_policy("asc", window_size=8)


def test_emit_prune_changes_steps_not_results(env):
    eps = [(q, 5) for q in range(4)]
    a = run_episodes(env, make_policy("cmc", beta=1.0), eps)
    b = run_episodes(env, make_policy("cmc", beta=1.0, emit_prune=False), eps)
    np.testing.assert_array_equal(a.answers, b.answers)
    np.testing.assert_array_equal(a.costs, b.costs)
    assert (a.steps >= b.steps).all()


# ---------------------------------------------------------------------------------------------
# random masked policy, predict
# ---------------------------------------------------------------------------------------------

def test_random_masked_policy_respects_masks(env):
    pol = RandomMaskedPolicy(seed=3, answer_prob=0.02)
    steps = 0
    for q in range(6):
        obs, view = _reset(env, q, q)
        pol.reset(view)
        done = False
        while not done:
            a = pol.act(obs, view)
            mask = action_mask(view)
            assert mask[a]
            if hasattr(env.unwrapped, "action_masks"):
                np.testing.assert_array_equal(np.asarray(env.unwrapped.action_masks()), mask)
            obs, _, term, trunc, _ = env.step(a)   # the env raises on an invalid action
            done = term or trunc
            steps += 1
    assert steps > 6                               # not all one-step episodes


def test_random_masked_policy_is_seeded(env):
    eps = [(q, 0) for q in range(3)]
    r1 = run_episodes(env, RandomMaskedPolicy(seed=7, answer_prob=0.05), eps)
    r2 = run_episodes(env, RandomMaskedPolicy(seed=7, answer_prob=0.05), eps)
    np.testing.assert_array_equal(r1.steps, r2.steps)
    np.testing.assert_array_equal(r1.costs, r2.costs)


def test_predict_sb3_signature(env):
    pol = RandomMaskedPolicy(seed=0)
    obs, view = _reset(env)
    m = action_mask(view)
    a, state = pol.predict(obs, action_masks=m)
    assert np.ndim(a) == 0 and m[int(a)] and state is None
    masks = np.zeros((3, m.size), bool)
    masks[:, A.ABSTAIN] = True
    masks[1, A.BRANCH] = True
    batch = {k: np.stack([v] * 3) for k, v in obs.items()} if isinstance(obs, dict) \
        else np.stack([obs] * 3)
    acts, _ = pol.predict(batch, state=None, episode_start=np.ones(3, bool), deterministic=True,
                          action_masks=masks)
    assert acts.shape == (3,) and all(masks[j, acts[j]] for j in range(3))
    with pytest.raises(PolicyError):
        pol.predict(batch)          # no masks anywhere


def test_as_policy():
    p = make_policy("esc")
    assert as_policy(p) is p

    class Ctrl:
        def solve(self, question):
            return None

    c = Ctrl()
    assert isinstance(as_policy(c), AutoTTSPolicy)
    assert as_policy(c, keep_controllers=True) is c
    with pytest.raises(TypeError):
        as_policy(object())


# ---------------------------------------------------------------------------------------------
# SB3
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def maskable_model(env):
    from sb3_contrib import MaskablePPO

    return MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=32, seed=0, device="cpu",
                       policy_kwargs={"net_arch": [16]})


def test_sb3_policy_wraps_maskable_ppo(env, maskable_model):
    pol = SB3Policy(maskable_model)
    assert pol.use_masks and not pol.requires_view and pol.name == "sb3_maskableppo"
    res = run_episodes(env, pol, [(0, 0), (1, 1), (2, 2)])   # invalid actions would raise
    assert len(res) == 3 and (res.steps >= 1).all()
    # the same object as an SB3 predictor, with masks (as sb3-contrib's evaluate_policy calls it)
    obs, view = _reset(env)
    a, _ = pol.predict(obs, action_masks=action_mask(view), deterministic=True)
    assert action_mask(view)[int(np.asarray(a).reshape(-1)[0])]


def test_sb3_contrib_evaluate_policy_accepts_our_policies(env, maskable_model):
    from sb3_contrib.common.maskable.evaluation import evaluate_policy

    for pol in (SB3Policy(maskable_model), RandomMaskedPolicy(seed=1, answer_prob=0.1)):
        mean, std = evaluate_policy(pol, env, n_eval_episodes=3, warn=False)
        assert np.isfinite(mean) and np.isfinite(std)


def test_sb3_policy_plain_ppo_has_no_masks(env):
    from stable_baselines3 import PPO

    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=32, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16]})
    pol = SB3Policy(model)
    assert not pol.use_masks
    obs, view = _reset(env)
    pol.reset(view)
    a = pol.act(obs, view)
    assert 0 <= a < A.num_actions(view.max_branches)


# ---------------------------------------------------------------------------------------------
# AutoTTS adapter
# ---------------------------------------------------------------------------------------------

class Scripted:
    """A controller running a caller-given function on the question object."""
    NAME = "scripted"

    def __init__(self, fn):
        self.fn = fn
        self.config = {}

    def solve(self, question):
        return self.fn(question)


def _finish_branch(question):
    ans, pos, fin = question.probe_new()
    while not fin:
        ans, fin = question.probe_more(pos)
    return ans, pos


def test_adapter_operations_and_quirks(env, store):
    seen = {}

    def fn(q):
        seen["tokens0"] = q.get_seq_and_total_tokens()
        ans, pos = _finish_branch(q)
        cost = q.get_seq_and_total_tokens()[1]
        seen["repeat"] = q.probe_more(pos)                 # finished: final again, no charge
        seen["repeat_cost"] = q.get_seq_and_total_tokens()[1] - cost
        seen["unopened"] = q.probe_more(1)                 # i == cursor: None (reference: advances)
        seen["negative"] = q.probe_more(-1)                # reference: a branch from the end
        seen["final"] = q.get_new_branch_final_answer()
        seen["pf"] = q.probe_freq
        return ans

    out = run_autotts_controller(env, Scripted(fn), question=0, shuffle_seed=0)
    view = env.unwrapped.episode
    perm = view._state.order[0]
    b = int(perm[0])
    final = store.answer(0, int(store.final_ids[0, b]))
    assert seen["tokens0"] == (0, 0)
    assert seen["repeat"] == (final, True) and seen["repeat_cost"] == 0
    assert seen["unopened"] is None and seen["negative"] is None
    assert seen["final"] == store.answer(0, int(store.final_ids[0, perm[1]]))
    assert seen["pf"] == 500
    fully = max(int(store.branch_tokens[0, b]), int(store.num_probes[0, b]) * 500)
    assert out.cost == fully + int(store.branch_tokens[0, perm[1]])
    assert out.answer == final and out.answer_id == int(store.final_ids[0, b])
    assert out.free_repeats == 1 and not out.unmapped
    assert out.correct == (store.gold_answers[0] == final)


def test_adapter_strict_mode(env):
    def fn(q):
        _, pos = _finish_branch(q)
        q.probe_more(pos)

    with pytest.raises(ValueError, match="finished"):
        run_autotts_controller(env, Scripted(fn), question=0, shuffle_seed=0, strict=True)
    with pytest.raises(ValueError, match="not opened"):
        run_autotts_controller(env, Scripted(lambda q: q.probe_more(0)), question=0,
                               shuffle_seed=0, strict=True)


def test_adapter_exhaustion(env):
    def fn(q):
        n = 0
        while q.get_new_branch_final_answer() is not None:
            n += 1
        assert q.probe_new() is None and n == q._view.branch_limit
        return None

    out = run_autotts_controller(env, Scripted(fn), question=2, shuffle_seed=1)
    assert out.answer_id == -1 and not out.unmapped and out.correct is not True

    def raw(q):
        while True:
            q.get_new_branch_final_answer()

    with pytest.raises(IndexError):
        run_autotts_controller(env, Scripted(raw), question=2, shuffle_seed=1,
                               raise_on_exhaustion=True)


def test_adapter_unmapped_answer_abstains(env):
    out = run_autotts_controller(env, Scripted(lambda q: (q.probe_new(), "no such answer")[1]),
                                 question=0, shuffle_seed=0)
    assert out.unmapped and out.answer_id == -1 and not out.correct


def test_adapter_policy_lifecycle(env):
    """The controller as a Policy: solve() runs at the first act (no thread); an abandoned episode
    leaves nothing behind; the next reset starts afresh; the env's charges are checked."""
    calls = []

    def slow(q):
        calls.append(1)
        for _ in range(50):
            q.probe_new()
        return None

    pol = AutoTTSPolicy(Scripted(slow))
    obs, view = _reset(env)
    pol.reset(view)
    for _ in range(3):                      # abandon the episode after three actions
        obs, *_ = env.step(pol.act(obs, view))
    assert calls == [1]
    obs, view = _reset(env, 1, 1)
    pol.reset(view)
    n = 0
    while True:
        obs, _, term, trunc, _ = env.step(pol.act(obs, view))
        n += 1
        if term or trunc:
            break
    assert calls == [1, 1] and n == 51 and view.cursor == 50
    with pytest.raises(PolicyError, match="after the episode ended"):
        pol.act(obs, view)

    def boom(q):
        q.probe_new()
        raise RuntimeError("controller bug")

    pol = AutoTTSPolicy(Scripted(boom))
    obs, view = _reset(env)
    pol.reset(view)
    with pytest.raises(RuntimeError, match="controller bug"):
        pol.act(obs, view)


def test_adapter_policy_detects_replay_mismatch(env):
    """The env's cost before the answer must equal the question object's."""
    pol = AutoTTSPolicy(Scripted(lambda q: (q.probe_new(), q.probe_new(), None)[2]))
    obs, view = _reset(env)
    pol.reset(view)
    obs, *_ = env.step(pol.act(obs, view))
    obs, *_ = env.step(pol.act(obs, view))
    pol._cost += 1                          # as if the question object had charged differently
    with pytest.raises(PolicyError, match="replay mismatch"):
        pol.act(obs, view)


def test_run_episodes_through_gymnasium_wrappers(store):
    """A wrapped env (``env.unwrapped.episode`` is used) with the default 64 positions gives the
    compiled path's results for an algorithm that opens at most 64 branches."""
    import gymnasium as gym

    from tts_gym.envs.env import TTSReplayEnv
    from tts_gym.evaluation.protocol import evaluate_compiled

    env = gym.wrappers.RecordEpisodeStatistics(gym.wrappers.OrderEnforcing(
        TTSReplayEnv(store, max_branches=64)))
    params = {"num_chains": 8}
    res = run_episodes(env, make_policy("parallel_probe", **params), [(q, 3) for q in range(5)])
    comp = evaluate_compiled(store, "parallel_probe", params, seeds=(3,), workers=1)
    np.testing.assert_array_equal(res.answers, comp.answers[0, :5])
    np.testing.assert_array_equal(res.costs, comp.costs[0, :5])
    np.testing.assert_array_equal(res.correct, comp.correct[0, :5])
    np.testing.assert_array_equal(res.returns, comp.correct[0, :5].astype(float))  # gamma = 0
