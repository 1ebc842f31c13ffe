"""Parity with the AutoTTS reference release, through the compiled fast path.

* every row of ``../shared/reference/aime24_reference_results.csv`` (4 models x 26 configurations:
  ASC, ESC, Parallel-Probe, CMC) on the shared AIME24 stores: accuracy equal to the printed value
  (2 decimals) and ``int(avg_tokens)`` equal to the printed integer;
* the Qwen3-1.7B / aime24 table of ``docs/replay-semantics.md``, "Parity targets": integer totals
  ``sumC`` / ``sumTT`` bit-exact, the reference's float figures, and the per-seed debug
  fingerprints (seeds 0, 1, 99 and question 1 of seed 0);
* both roundings of the Beta-majority confidence reproduce the confidence-based targets;
* results do not depend on the number of worker threads.
"""
from __future__ import annotations

import csv
import json
from functools import lru_cache

import numpy as np
import pytest

from conftest import MODELS, SHARED_REFERENCE_DIR, shared_store
from tts_gym.evaluation.protocol import ProtocolBatch, evaluate_compiled, evaluate_grid_compiled

CSV_PATH = SHARED_REFERENCE_DIR / "aime24_reference_results.csv"


def _csv_rows() -> list[dict]:
    with open(CSV_PATH, newline="") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=None)
def _batch(model: str) -> ProtocolBatch:
    return ProtocolBatch(shared_store(model, "aime24"))


_RESULTS: dict = {}


def _evaluate(model: str, method: str, params_list: list[dict], conf_variant: str = "exact"):
    """Results for ``params_list`` (memoised per configuration; one compiled call for the missing)."""
    keys = [(model, method, json.dumps(p, sort_keys=True), conf_variant) for p in params_list]
    todo = [(k, p) for k, p in zip(keys, params_list) if k not in _RESULTS]
    if todo:
        res = evaluate_grid_compiled(_batch(model), method, [p for _, p in todo],
                                     conf_variant=conf_variant)
        _RESULTS.update({k: r for (k, _), r in zip(todo, res)})
    return [_RESULTS[k] for k in keys]


def test_reference_csv_complete():
    rows = _csv_rows()
    assert len(rows) == 104
    assert {r["model"] for r in rows} == set(MODELS)
    assert {r["dataset"] for r in rows} == {"aime24"}


@pytest.mark.parametrize("model", MODELS)
def test_reference_csv_rows(model):
    """Every published AIME24 row of ``model`` (26 configurations) is reproduced exactly."""
    rows = [r for r in _csv_rows() if r["model"] == model]
    assert len(rows) == 26
    mismatches = []
    for method in ("asc", "esc", "parallel_probe", "cmc"):
        mrows = [r for r in rows if r["method"] == method]
        assert mrows, method
        results = _evaluate(model, method, [json.loads(r["params"]) for r in mrows])
        for r, res in zip(mrows, results):
            assert res.episodes == 3000
            if res.accuracy != float(r["accuracy"]) or res.tokens_int != int(r["avg_tokens"]):
                mismatches.append(f"{model} {method} {r['params']}: expected {r['accuracy']} / "
                                  f"{r['avg_tokens']}, got {res.accuracy} / {res.avg_tokens:.3f} "
                                  f"(sumC {res.sumC}, sumTT {res.sumTT})")
    assert not mismatches, "\n".join(mismatches)


# (label, policy, params, acc, tokens (3 decimals), CSV int, sumC, sumTT,
#  fingerprints {seed: (C_s, TT_s)}, seed 0 question 1 tokens or None)
SECTION6 = [
    ("SC@64", "sc", {"n": 64}, 72.50, 1025805.296, 1025805, 2175, 3077415887,
     {0: (22, 30430288), 1: (22, 30857077), 99: (22, 30655774)}, 230257),
    ("ASC@64 thr 0.95", "asc", {"max_samples": 64, "threshold": 0.95}, 72.33, 482563.658, 482563,
     2170, 1447690974, {0: (22, 11626926), 1: (22, 14405328), 99: (22, 13804764)}, 24920),
    ("ESC@64 w8", "esc", {"max_samples": 64, "window_size": 8}, 72.47, 909205.362, 909205, 2174,
     2727616086, {0: (22, 26056715), 1: (22, 27767444), 99: (22, 26885961)}, 56352),
    ("Parallel-Probe@64", "parallel_probe",
     {"num_chains": 64, "T": 40, "prune_patience": 7, "warm_up": 15}, 66.03, 745425.310, 745425,
     1981, 2236275930, {0: (20, 22167644), 1: (20, 22277062), 99: (20, 22217974)}, 236560),
    ("CMC 0.5", "cmc", {"beta": 0.5}, 68.50, 276267.069, 276267, 2055, 828801206,
     {0: (21, 7900547), 1: (22, 7792704), 99: (19, 8368378)}, 25284),
    ("CMC 1.0", "cmc", {"beta": 1.0}, 70.37, 499094.029, 499094, 2111, 1497282086,
     {0: (22, 13764893), 1: (21, 14359749), 99: (21, 15037428)}, 28784),
    ("CMC 0.0", "cmc", {"beta": 0.0}, 60.07, 55710.661, 55710, 1802, 167131982,
     {0: (17, 1636147), 1: (18, 1648577), 99: (15, 1744162)}, None),
]


@pytest.mark.parametrize("case", SECTION6, ids=[c[0] for c in SECTION6])
def test_section6_targets(case):
    label, policy, params, acc, tokens, tokens_int, sum_c, sum_tt, prints, q1 = case
    (res,) = _evaluate("Qwen3-1.7B", policy, [params])
    C, TT = res.per_seed()
    seeds = list(res.seeds)
    # debug fingerprints first: they localise a divergence fastest
    got = {s: (int(C[seeds.index(s)]), int(TT[seeds.index(s)])) for s in prints}
    assert got == prints, f"{label}: per-seed (correct, tokens)"
    if q1 is not None:
        assert int(res.costs[0, 0]) == q1, f"{label}: seed 0, question 1 tokens"
        assert bool(res.correct[0, 0]), f"{label}: seed 0, question 1 must be correct"
    assert (res.sumC, res.sumTT) == (sum_c, sum_tt), label
    assert res.accuracy == acc
    assert round(res.avg_tokens, 3) == tokens
    assert res.tokens_int == tokens_int
    assert res.avg_tokens == pytest.approx(sum_tt / 3000, rel=1e-12)


_CONF_CASES = [(c[0], c[1], c[2], c[6], c[7]) for c in SECTION6 if c[1] in ("sc", "asc", "cmc")]


@pytest.mark.parametrize("label,policy,params,sum_c,sum_tt", _CONF_CASES,
                         ids=[c[0] for c in _CONF_CASES])
def test_conf_variant_one_minus(label, policy, params, sum_c, sum_tt):
    """``1 - float(exact CDF)`` (the reference's formula, exact CDF) reproduces the confidence-based
    targets too (the default is the correctly rounded ``float(exact 1 - CDF)``)."""
    (res,) = _evaluate("Qwen3-1.7B", policy, [params], conf_variant="one_minus")
    assert (res.sumC, res.sumTT) == (sum_c, sum_tt), label


def test_sc_equals_asc_threshold_above_one():
    (sc,) = _evaluate("Qwen3-1.7B", "sc", [{"n": 64}])
    (asc,) = _evaluate("Qwen3-1.7B", "asc", [{"max_samples": 64, "threshold": 1.01}])
    assert (sc.sumC, sc.sumTT) == (asc.sumC, asc.sumTT)
    np.testing.assert_array_equal(sc.answers, asc.answers)


@pytest.mark.parametrize("policy,params", [("cmc", {"beta": 0.5}), ("parallel_probe", {}),
                                           ("esc", {"max_samples": 32, "window_size": 8})])
def test_worker_count_invariance(policy, params):
    """Per-episode outputs are identical for 1, 2 and 3 worker threads."""
    store = shared_store("Qwen3-8B", "aime24")
    seeds = range(0, 100, 9)
    runs = [evaluate_compiled(store, policy, params, seeds=seeds, workers=w) for w in (1, 2, 3)]
    for other in runs[1:]:
        for field in ("answers", "costs", "correct", "steps"):
            np.testing.assert_array_equal(getattr(runs[0], field), getattr(other, field), field)
