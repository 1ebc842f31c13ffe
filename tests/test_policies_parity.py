"""The Python policies, played action by action through the env, reproduce the reference's
debug fingerprints (``docs/replay-semantics.md``, "Parity targets": Qwen3-1.7B / aime24, seeds 0, 1, 99:
correct count and token total per seed, and the tokens of question 1 of seed 0)."""
from __future__ import annotations

import pytest

from conftest import shared_store
from tts_gym.policies import make_policy
from tts_gym.evaluation.rollout import evaluate_reference_python, make_reference_env

SEEDS = (0, 1, 99)

# (name, params, {seed: (correct, tokens)}, tokens of question 1 in seed 0 or None)
FINGERPRINTS = [
    ("sc", {"max_samples": 64},
     {0: (22, 30_430_288), 1: (22, 30_857_077), 99: (22, 30_655_774)}, 230_257),
    ("asc", {"max_samples": 64, "threshold": 0.95},
     {0: (22, 11_626_926), 1: (22, 14_405_328), 99: (22, 13_804_764)}, 24_920),
    ("esc", {"max_samples": 64, "window_size": 8},
     {0: (22, 26_056_715), 1: (22, 27_767_444), 99: (22, 26_885_961)}, 56_352),
    ("parallel_probe", {"num_chains": 64, "K": 5, "T": 40, "eps_inter": 5.0, "eps_intra": 5.0,
                        "prune_patience": 7, "warm_up": 15, "probe_burst": 1, "max_steps": 100},
     {0: (20, 22_167_644), 1: (20, 22_277_062), 99: (20, 22_217_974)}, 236_560),
    ("cmc", {"beta": 0.5},
     {0: (21, 7_900_547), 1: (22, 7_792_704), 99: (19, 8_368_378)}, 25_284),
    ("cmc", {"beta": 1.0},
     {0: (22, 13_764_893), 1: (21, 14_359_749), 99: (21, 15_037_428)}, 28_784),
    ("cmc", {"beta": 0.0},
     {0: (17, 1_636_147), 1: (18, 1_648_577), 99: (15, 1_744_162)}, None),
]


@pytest.fixture(scope="module")
def env():
    return make_reference_env(shared_store("Qwen3-1.7B", "aime24"))


def _fp_id(name, params):
    keys = ("max_samples", "threshold", "window_size", "num_chains", "beta")
    return name + "".join(f"-{k}{v}" for k, v in params.items() if k in keys)


@pytest.mark.parametrize("name,params,per_seed,q1_tokens", FINGERPRINTS,
                         ids=[_fp_id(n, p) for n, p, _, _ in FINGERPRINTS])
def test_debug_fingerprints(env, name, params, per_seed, q1_tokens):
    store = shared_store("Qwen3-1.7B", "aime24")
    policy = make_policy(name, **params)
    res = evaluate_reference_python(store, policy, SEEDS, env=env)
    correct, tokens = res.per_seed()
    got = {s: (int(c), int(t)) for s, c, t in zip(SEEDS, correct, tokens)}
    assert got == per_seed
    if q1_tokens is not None:
        assert int(res.costs[0, 0]) == q1_tokens
        assert bool(res.correct[0, 0])
    assert res.backend == "python"
    assert res.sumC == sum(c for c, _ in per_seed.values())
    assert res.sumTT == sum(t for _, t in per_seed.values())
