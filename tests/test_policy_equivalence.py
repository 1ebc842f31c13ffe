"""Three implementations of each baseline give IDENTICAL per-episode results on every shared store:

* the Python :class:`~tts_gym.policies.base.Policy` (``make_policy``) played through the env,
* the compiled fast path (:func:`tts_gym.evaluation.protocol.evaluate_compiled`),
* an AutoTTS-style controller (``tests/autotts_style_controllers.py``, written in the reference's
  style over question objects and answer strings) run unchanged through the adapter.

Compared per episode: committed answer id, tokens charged, correctness (and, Python vs compiled,
the number of env steps). Sizes: all 12 stores x 6 configurations, one shuffle seed per store
(a different one for each store, 12 seeds in all) x all 30 questions, so the Python paths stay
within about a minute on two cores; the worker-thread adapter policy runs on one store.
"""
from __future__ import annotations

import numpy as np
import pytest

from autotts_style_controllers import make_controller
from conftest import BENCHMARKS, MODELS, shared_store
from tts_gym.policies import AutoTTSPolicy, make_policy
from tts_gym.evaluation.protocol import evaluate_compiled
from tts_gym.evaluation.rollout import evaluate_reference_python, make_reference_env

STORES = [(m, b) for m in MODELS for b in BENCHMARKS]
CONFIGS = [
    ("asc", {"max_samples": 16, "threshold": 0.95}),
    ("esc", {"max_samples": 16, "window_size": 8}),
    ("parallel_probe", {"num_chains": 16}),
    ("cmc", {"beta": 0.0}),
    ("cmc", {"beta": 0.7}),
    ("cmc", {"beta": 1.0}),
]


def seeds_for(i: int) -> tuple[int, ...]:
    return ((5 + 17 * i) % 100,)


_ENVS: dict = {}


def env_for(model: str, benchmark: str):
    key = (model, benchmark)
    if key not in _ENVS:
        _ENVS[key] = make_reference_env(shared_store(model, benchmark))
    return _ENVS[key]


def _cfg_id(name, params):
    return name + "-" + "-".join(f"{k}{v}" for k, v in params.items())


@pytest.mark.parametrize("name,params", CONFIGS, ids=[_cfg_id(*c) for c in CONFIGS])
@pytest.mark.parametrize("si", range(len(STORES)), ids=[f"{m}-{b}" for m, b in STORES])
def test_python_compiled_adapter_identical(si, name, params):
    model, bench = STORES[si]
    store = shared_store(model, bench)
    env = env_for(model, bench)
    seeds = seeds_for(si)
    comp = evaluate_compiled(store, name, params, seeds=seeds, workers=1)
    py = evaluate_reference_python(store, make_policy(name, **params), seeds, env=env)
    ad = evaluate_reference_python(store, make_controller(name, **params), seeds, env=env)
    for other, label in ((comp, "compiled"), (ad, "adapter")):
        np.testing.assert_array_equal(py.answers, other.answers, err_msg=f"answers python/{label}")
        np.testing.assert_array_equal(py.costs, other.costs, err_msg=f"costs python/{label}")
        np.testing.assert_array_equal(py.correct, other.correct, err_msg=f"correct python/{label}")
    # the Python policy emits the same actions as the compiled kernel (prunes included)
    np.testing.assert_array_equal(py.steps, comp.steps)
    assert (py.sumC, py.sumTT) == (comp.sumC, comp.sumTT) == (ad.sumC, ad.sumTT)


@pytest.mark.parametrize("name,params", CONFIGS, ids=[_cfg_id(*c) for c in CONFIGS])
def test_threaded_adapter_policy_identical(name, params):
    """The controller as a Policy (worker thread) equals the direct adapter run and the compiled
    path (Qwen3-4B / aime25, questions 0..29 of one seed)."""
    model, bench = "Qwen3-4B", "aime25"
    store = shared_store(model, bench)
    env = env_for(model, bench)
    seeds = (42,)
    comp = evaluate_compiled(store, name, params, seeds=seeds, workers=1)
    pol = AutoTTSPolicy(make_controller(name, **params))
    th = evaluate_reference_python(store, pol, seeds, env=env)
    np.testing.assert_array_equal(th.answers, comp.answers)
    np.testing.assert_array_equal(th.costs, comp.costs)
    np.testing.assert_array_equal(th.correct, comp.correct)
