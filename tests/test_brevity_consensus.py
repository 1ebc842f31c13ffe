"""The brevity-weighted consensus controller (``bwc``): the compiled kernel equals the Python policy
played through the env episode for episode (real and synthetic stores, branch exhaustion, position
caps, every rule switched on and off); the name works in ``tts_gym.evaluate``, ``make_policy`` and
``tts-gym eval``; parameters are checked; the shipped configuration file is complete; and the
search program improves its objective on the synthetic store."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import tts_gym
from tts_gym.data.synthetic import synthesize
from tts_gym.evaluation.protocol import evaluate_compiled
from tts_gym.evaluation.rollout import evaluate_reference_python
from tts_gym.policies import brevity_consensus as bwc
from tts_gym.policies import make_policy

from conftest import REPO_ROOT, ragged_store, shared_store

CONFIGS = [
    {},
    {"n_init": 3, "max_width": 16, "widen_burst": 2, "widen_after": 1, "widen_conf": 0.9,
     "alpha": 1.7, "live_weight": 0.3, "lead_slack": 0.5, "conf_thresh": 0.9, "min_pool": 2,
     "patience": 3, "keep_alive": 1, "length_cap": 1.5, "burst_aligned": 2, "max_rounds": 60,
     "score_count": 0.7, "score_ever": 1.5},
    {"n_init": 1, "max_width": 4, "widen_burst": 0, "alpha": 0.0, "lead_slack": 0.0, "min_pool": 1,
     "max_rounds": 5, "live_weight": 0.0, "patience": 0, "length_cap": 0.0},
    {"n_init": 6, "max_width": 6, "widen_burst": 0, "alpha": 3.0, "lead_slack": 2.0,
     "conf_thresh": 1.01, "min_pool": 8, "patience": 2, "keep_alive": 0, "length_cap": 1.1,
     "burst_aligned": 3, "max_rounds": 200, "score_count": 2.0, "score_ever": 0.0},
    {"n_init": 2, "max_width": 64, "widen_burst": 8, "widen_after": 0, "widen_conf": 1.01,
     "alpha": 0.5, "live_weight": 1.0, "lead_slack": 1.0, "conf_thresh": 0.99, "min_pool": 3,
     "patience": 12, "keep_alive": 4, "length_cap": 0.0, "burst_aligned": 1, "max_rounds": 40,
     "score_count": 0.0, "score_ever": 3.0},
]
IDS = [f"config{i}" for i in range(len(CONFIGS))]
FIELDS = ("answers", "costs", "correct", "steps")


def assert_same(store, params, seeds):
    comp = evaluate_compiled(store, "bwc", params, seeds=seeds, workers=2)
    py = evaluate_reference_python(store, bwc.BrevityConsensus(**params), seeds)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(py, f), getattr(comp, f), err_msg=f)
    return comp


@pytest.mark.parametrize("params", CONFIGS, ids=IDS)
def test_compiled_equals_python_real_store(params):
    assert_same(shared_store("Qwen3-1.7B", "aime24"), params, seeds=(0, 37))


@pytest.mark.parametrize("params", CONFIGS, ids=IDS)
def test_compiled_equals_python_exhaustion(params):
    assert_same(ragged_store(), params, seeds=(0, 1, 7))


def test_compiled_equals_python_position_cap():
    """The subsample protocol caps the positions below ``max_width``; through ``tts_gym.evaluate``
    (compiled) and through the Python loop on the same episodes."""
    store = synthesize(num_questions=6, num_branches=32, seed=5, max_probes=10)
    params = CONFIGS[4]
    comp = tts_gym.evaluate(("bwc", params), stores=store, protocol="subsample", n=8, replicates=3)
    py = tts_gym.evaluate(tts_gym.Sweep(lambda **p: bwc.BrevityConsensus(**p), name="bwc-python",
                                        grid=[params]), stores=store, protocol="subsample", n=8,
                          replicates=3)
    a, b = comp.outcomes[next(iter(comp.outcomes))], py.outcomes[next(iter(py.outcomes))]
    for f in ("answer", "cost", "correct", "steps"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert int(a.steps.max()) > 0


def test_registered_by_name():
    store = shared_store("Qwen3-4B", "aime24")
    res = tts_gym.evaluate([("bwc", {}), ("bwc", {"alpha": 2.0}), ("cmc", {"beta": 0.5})],
                           stores=store, seeds=range(5))
    direct = evaluate_compiled(store, "bwc", {}, seeds=range(5))
    row = res.row("BWC", store)
    assert (row["sum_correct"], row["sum_tokens"]) == (direct.sumC, direct.sumTT)
    assert res.row("BWC (alpha=2)", store)["sum_tokens"] != direct.sumTT
    cmp = res.compare("BWC", "CMC β=0.5", store)
    assert np.isfinite(cmp.accuracy_diff.low) and cmp.accuracy_diff.low <= cmp.accuracy_diff.high
    pol = make_policy("bwc", alpha=0.5)
    assert isinstance(pol, bwc.BrevityConsensus) and pol.params["alpha"] == 0.5
    sweep = tts_gym.Sweep("bwc").configs()               # default sweep: the frontier presets
    assert [c.params["preset"] for c in sweep] == bwc.DEFAULT_SWEEP["preset"]
    assert len({c.label for c in sweep}) == len(sweep) >= 2
    name, preset = sorted(bwc.PRESETS.items())[0]
    assert make_policy("bwc", preset=name).params == {**preset, "preset": name}


def test_cli_eval(capsys):
    from tts_gym.cli import main
    argv = ["eval", "--policy", "bwc", "--param", "alpha=1.5", "--seeds", "2", "--json"]
    assert main(argv) == 0
    comp = json.loads(capsys.readouterr().out)
    assert main(argv + ["--impl", "python"]) == 0
    py = json.loads(capsys.readouterr().out)
    assert (comp["sumC"], comp["sumTT"]) == (py["sumC"], py["sumTT"])
    assert comp["params"]["alpha"] == 1.5
    assert main(["eval", "--policy", "bwc", "--param", "n_init=2.5"]) == 2
    assert "must be an integer" in capsys.readouterr().err
    assert main(["eval", "--policy", "bwc", "--param", "preset=nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err


@pytest.mark.parametrize("params,msg", [
    ({"nope": 1}, "unknown parameter 'nope'"),
    ({"n_init": 1.5}, "must be an integer"),
    ({"n_init": 0}, "must be >= 1"),
    ({"alpha": -1.0}, "must be >= 0"),
    ({"alpha": float("nan")}, "must be finite"),
    ({"alpha": "x"}, "must be a number"),
    ({"preset": "nope"}, "unknown preset"),
])
def test_bad_parameters(params, msg):
    with pytest.raises(ValueError, match=msg):
        bwc.normalize(params)


def test_shipped_configuration_file():
    data = json.loads(bwc.CONFIG_FILE.read_text())
    assert data["default"] in data["presets"]
    for name, p in data["presets"].items():
        assert set(p) == set(bwc.PARAM_NAMES), name
        bwc.normalize(p)
    assert bwc.DEFAULTS == {k: data["presets"][data["default"]][k] for k in bwc.PARAM_NAMES}
    sel = data["selection"]
    assert sel["command"].startswith("python agents/search_bwc.py")
    assert all(s.endswith("/aime24") for s in sel["stores"])        # selected on search stores only


def _search_module():
    spec = importlib.util.spec_from_file_location("search_bwc", REPO_ROOT / "agents" / "search_bwc.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["search_bwc"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_search_improves_objective_on_synthetic(tmp_path):
    search = _search_module()
    argv = ["--data", "synthetic", "--seeds", "2", "--final-seeds", "2", "--init", "24",
            "--generations", "6", "--population", "12", "--seed", "0", "--out", str(tmp_path / "run"),
            "--ship", str(tmp_path / "ship.json"), "--no-progress"]
    result = search.main(argv)
    curve = result["curve"]
    assert len(curve) == 7 and curve[-1] > curve[0]
    assert all(b >= a for a, b in zip(curve, curve[1:]))             # an archive never forgets
    shipped = json.loads((tmp_path / "ship.json").read_text())
    assert shipped["default"] in shipped["presets"]
    for p in shipped["presets"].values():
        bwc.normalize(p)
    # resuming a finished run changes nothing; a longer resumed run only adds generations
    again = search.main(argv + ["--resume"])
    assert again["curve"] == curve
    more = search.main([a if a != "6" else "8" for a in argv] + ["--resume"])
    assert more["curve"][:7] == curve and len(more["curve"]) == 9


def test_search_refuses_held_out_benchmarks():
    search = _search_module()
    with pytest.raises(SystemExit, match="held-out"):
        search.main(["--benchmark", "hmmt25", "--generations", "0"])
