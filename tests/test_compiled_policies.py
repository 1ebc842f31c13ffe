"""The compiled baselines beyond the parity data: branch exhaustion (the reference's ``None``
paths, never reached on the 128-branch stores), questions with different branch counts, a position
cap below what a policy wants, degenerate parameters, and argument checking. The compiled results
are compared episode for episode with the Python policies played through the env."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ragged_store
from tts_gym.core.kernels import pack_stores
from tts_gym.core.orders import reference_permutations
from tts_gym.policies import make_policy
from tts_gym.policies.compiled import policy_param_rows, positions_needed, run_compiled
from tts_gym.evaluation.protocol import ProtocolBatch, evaluate_compiled
from tts_gym.evaluation.rollout import evaluate_reference_python, make_reference_env
from tts_gym.data.synthetic import synthesize

CONFIGS = [
    ("sc", {"n": 16}),
    ("asc", {"max_samples": 16, "threshold": 0.8}),
    ("esc", {"max_samples": 16, "window_size": 4}),
    ("esc", {"max_samples": 16, "window_size": 5}),
    ("parallel_probe", {"num_chains": 16, "T": 4, "prune_patience": 2, "warm_up": 2}),
    ("parallel_probe", {"num_chains": 8, "probe_burst": 2, "max_steps": 7}),
    ("cmc", {"beta": 0.0}),
    ("cmc", {"beta": 0.6}),
    ("cmc", {"beta": 1.0}),
]
IDS = [f"{n}-{'-'.join(f'{k}{v}' for k, v in p.items())}" for n, p in CONFIGS]


@pytest.mark.parametrize("name,params", CONFIGS, ids=IDS)
def test_exhaustion_matches_python(name, params):
    store = ragged_store()
    seeds = (0, 1, 7)
    comp = evaluate_compiled(store, name, params, seeds=seeds, workers=2)
    py = evaluate_reference_python(store, make_policy(name, **params), seeds)
    for f in ("answers", "costs", "correct", "steps"):
        np.testing.assert_array_equal(getattr(py, f), getattr(comp, f), err_msg=f)


@pytest.mark.parametrize("name,params", CONFIGS, ids=IDS)
def test_position_cap_matches_python(name, params):
    """``max_branches`` below what the policy would open (the subsample protocol's cap)."""
    store = synthesize(num_questions=6, num_branches=32, seed=5, max_probes=10)
    seeds = (2, 3)
    M = 6
    qs = np.tile(np.arange(store.num_questions, dtype=np.int32), len(seeds))
    perms = np.repeat(reference_permutations(seeds, store.max_branches), store.num_questions, axis=0)
    out = run_compiled(pack_stores([store]), name, [params], qs, perms, max_branches=M, workers=1)
    env = make_reference_env(store, max_branches=M)
    py = evaluate_reference_python(store, make_policy(name, **params), seeds, env=env)
    np.testing.assert_array_equal(py.answers.ravel(), out["answer"][0])
    np.testing.assert_array_equal(py.costs.ravel(), out["cost"][0])
    np.testing.assert_array_equal(py.steps.ravel(), out["steps"][0])


def test_degenerate_parameters():
    """Parameters outside their declared ranges are refused (naming parameter, value and range);
    the kernels stay safe on degenerate rows given directly: no window, no chain, no round ->
    no answer at zero cost."""
    store = ragged_store()
    b = ProtocolBatch(store, (0, 1))
    for policy, params, fragment in (
            ("esc", {"max_samples": 3, "window_size": 8}, r"'window_size' must be an integer in \[1, max_samples=3\], got 8"),
            ("sc", {"n": 0}, r"'n' must be an integer in \[1, 2147483647\], got 0"),
            ("parallel_probe", {"num_chains": 0}, "'num_chains'.*got 0"),
            ("parallel_probe", {"max_steps": 0}, "'max_steps'.*got 0")):
        with pytest.raises(ValueError, match=fragment):
            evaluate_compiled(b, policy, params)
    # ASC@1: one full read, its answer
    r = evaluate_compiled(b, "asc", {"max_samples": 1, "threshold": 0.95})
    assert (r.steps == 2).all()
    for kernel, row in (("esc", [3, 8]), ("asc", [0, 1.01]), ("parallel_probe", [0, 40, 7, 15, 1, 100]),
                        ("parallel_probe", [64, 40, 7, 15, 1, 0])):
        out = run_compiled(b.data, kernel, [], b.questions, b.perms, max_branches=b.max_branches,
                           policy_params=np.array([row], np.float64))
        assert (out["answer"] == -1).all(), (kernel, row)
        if kernel == "esc":
            assert (out["cost"] == 0).all() and (out["steps"] == 1).all()


def test_grid_rows_are_independent():
    """A grid call equals the single-configuration calls row by row."""
    store = ragged_store()
    grid = [{"beta": b} for b in (0.0, 0.3, 0.9)]
    from tts_gym.evaluation.protocol import evaluate_grid_compiled
    together = evaluate_grid_compiled(store, "cmc", grid, seeds=(4, 5))
    for params, res in zip(grid, together):
        alone = evaluate_compiled(store, "cmc", params, seeds=(4, 5))
        np.testing.assert_array_equal(res.answers, alone.answers)
        np.testing.assert_array_equal(res.costs, alone.costs)


def test_policy_param_rows_and_checks():
    kernel, rows = policy_param_rows("sc", [{"n": 8}, {"max_samples": 4}])
    assert kernel == "asc" and rows.tolist() == [[8, 1.01], [4, 1.01]]
    kernel, rows = policy_param_rows("cmc", [{"beta": 0.5}])
    assert kernel == "cmc" and rows.shape == (1, 12) and rows[0, 0] == 5
    assert positions_needed("esc", np.array([[16, 5]], float)) == 15
    assert positions_needed("cmc", rows) == 34
    with pytest.raises(ValueError):
        policy_param_rows("asc", [{"beta": 1}])
    data = pack_stores([ragged_store()])
    qs = np.zeros(2, np.int32)
    with pytest.raises(ValueError):
        run_compiled(data, "nope", [{}], qs, np.zeros((2, 14), np.int32))
    with pytest.raises(ValueError):
        run_compiled(data, "asc", [{}], qs, np.zeros((3, 14), np.int32))
    with pytest.raises(ValueError):
        run_compiled(data, "asc", [], qs, np.zeros((2, 14), np.int32),
                     policy_params=np.zeros((1, 3)))
    for bad in (np.array([0, 2], np.int32), np.array([1, 1], np.int32), np.array([0, 1], np.int64)):
        with pytest.raises(ValueError, match="permutation"):
            run_compiled(data, "asc", [{}], qs, np.zeros((2, 14), np.int32), tasks=bad)


def test_compiled_cache_keyed_on_inlined_sources():
    """numba stamps a cache with its own file only; ours also depends on the kernels each cached
    function calls or inlines: every cached kernel of the modules that use them carries the digest
    of the compiled layer's sources."""
    from tts_gym.core import kernels, observation
    from tts_gym.envs import env, vector
    from tts_gym.core.numba_cache import sources_digest
    from tts_gym.policies import compiled as C
    digest = sources_digest()
    from tts_gym.evaluation import traces
    checked = [*C.ROLLOUTS.values(), *traces.TRACED_ROLLOUTS.values(), kernels.step_episode,
               kernels.reset_batch,
               vector._vec_core_step, env._core_step, observation.observe_episode]
    for disp in checked:
        stamp = disp._cache._cache_file._source_stamp
        assert isinstance(stamp, tuple) and stamp[-1] == digest, disp


def test_atomic_fetch_add_hands_out_every_chunk_once():
    """The work-sharing counter of run_compiled: threads claiming indices with fetch_add get every
    index exactly once between them (and the counter ends past the end, once per thread)."""
    import threading

    import numba as nb

    from tts_gym.core.atomics import fetch_add

    @nb.njit(nogil=True)
    def claim(counter, claimed, n):
        mine = 0
        while True:
            i = fetch_add(counter, 0, np.int64(1))
            if i >= n:
                return mine
            claimed[i] += 1
            mine += 1

    n, threads = 300_000, 4
    counter = np.zeros(1, np.int64)
    claimed = np.zeros(n, np.int64)
    claim(counter, claimed, 0)   # compile
    counter[0] = 0
    got = []
    ts = [threading.Thread(target=lambda: got.append(claim(counter, claimed, n)))
          for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sum(got) == n
    assert (claimed == 1).all()
    assert counter[0] == n + threads
