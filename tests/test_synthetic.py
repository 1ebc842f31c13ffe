"""Synthetic replay stores: determinism, invariants of the real format, realistic statistics, scale."""
from __future__ import annotations


import numpy as np
import pytest

import tts_gym
from tts_gym.data.resolve import default_store, resolve_store
from tts_gym.data.summary import summarize_store
from tts_gym.data import load_stores, open_store, save_stores
from tts_gym.data.store import GOLD_ABSENT, PAD_ID, ReplayStore
from tts_gym.data.synthetic import synthesize


def test_same_seed_same_store_and_different_seed_differs():
    a, b = synthesize(seed=3), synthesize(seed=3)
    assert a.equals(b)
    c = synthesize(seed=4)
    assert not a.equals(c)
    assert not np.array_equal(a.branch_tokens, c.branch_tokens)
    assert tts_gym.synthesize is synthesize


def test_shapes_and_names():
    s = synthesize(7, 5, seed=2, model="m", probe_interval=250, max_probes=40)
    assert (s.model, s.benchmark, s.name) == ("m", "seed2", "m/seed2")
    Q, N, K = s.probe_ids.shape
    assert (Q, N) == (7, 5) and K <= 40
    assert s.probe_ids.dtype == np.int16 and s.branch_tokens.dtype == np.int64  # compact answer ids
    assert s.num_branches.tolist() == [5] * 7 and s.probe_interval.tolist() == [250] * 7
    s.validate()
    assert synthesize(2, 2, benchmark="custom").benchmark == "custom"
    with pytest.raises(ValueError):
        synthesize(0, 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interning_matches_from_records(seed):
    """Built directly from arrays, yet identical to ReplayStore.from_records (first-occurrence ids)."""
    s = synthesize(40, 32, seed=seed)
    ref = ReplayStore.from_records(s.model, s.benchmark, s.to_records(), attrs=s.attrs)
    assert ref.equals(s)


def test_format_invariants():
    s = synthesize(60, 64, seed=5)
    K, T = s.num_probes, s.branch_tokens
    pf = int(s.probe_interval[0])
    assert K.min() >= 1 and K.max() <= 80 and s.max_probes == int(K.max())
    assert np.all(K <= -(-T // pf))  # K_b <= ceil(T_b / pf), as in the real stores
    assert T.min() >= 1000 and T.max() <= 40_960 + 549
    q, b = np.nonzero(np.ones_like(K, dtype=bool))
    last = s.probe_ids[q, b, K[q, b] - 1]
    assert np.array_equal(last, s.final_ids[q, b])  # the last probe is the final answer
    pad = np.arange(s.max_probes)[None, None, :] >= K[:, :, None]
    assert np.all(s.probe_ids[pad] == PAD_ID)
    for qq, tab in enumerate(s.answer_tables):
        assert len(set(tab)) == len(tab)  # interned: distinct strings
        assert all(isinstance(a, str) and a == a.strip() and a for a in tab)
        g = int(s.gold_ids[qq])
        assert (g == GOLD_ABSENT and s.gold_answers[qq] not in tab) or tab[g] == s.gold_answers[qq]


def test_realistic_statistics():
    """Measured on a large store, the statistics fall in the range of the 12 real stores."""
    st = summarize_store(synthesize(600, 128, seed=11))
    assert 0.3 <= st["majority_acc"] <= 0.8  # real: 0.17 - 0.80
    assert 0.55 <= st["pass_acc"] <= 0.93  # real: 0.50 - 0.93
    assert st["pass_acc"] > st["majority_acc"] + 0.1
    assert 0.25 <= st["branch_acc"] <= 0.7  # real: 0.09 - 0.76
    assert 13_000 <= st["tokens_mean"] <= 20_000  # real: 13.9k - 19.8k
    assert 8 <= st["distinct_finals"] <= 48  # real: 9.3 - 47.8
    assert 60 <= st["distinct_answers"] <= 230  # real: 66 - 225
    assert 15 <= st["first_final_depth"] <= 25  # real: 16.8 - 23.1
    assert 0.5 <= st["first_final_frac"] <= 0.72  # real: 0.53 - 0.71
    assert 0.02 <= st["err_probe_share"] <= 0.15  # real: 0.02 - 0.15
    assert st["gold_anywhere"] < 1.0  # some questions' gold never appears


def test_statistics_structure():
    s = synthesize(400, 64, seed=1)
    correct = (s.final_ids == s.gold_ids[:, None]) & (s.gold_ids[:, None] >= 0)
    acc = correct.mean(axis=1)
    # bimodal per-question accuracy: many unsolved and many nearly solved questions
    assert (acc == 0).mean() > 0.15 and (acc > 0.8).mean() > 0.15
    # wrong branches are longer (real: ~2x)
    assert s.branch_tokens[~correct].mean() > 1.5 * s.branch_tokens[correct].mean()
    # intermediate answers converge to the final answer with depth
    K = s.num_probes
    rel = np.arange(s.max_probes)[None, None, :] / K[:, :, None]
    valid = rel < 1
    match = s.probe_ids == s.final_ids[:, :, None]
    early = match[valid & (rel < 0.2)].mean()
    late = match[valid & (rel >= 0.8)].mean()
    assert early < 0.2 and late > 0.7
    # long-tailed lengths, with a spike at the context limit
    assert np.percentile(s.branch_tokens, 95) > 2.0 * np.median(s.branch_tokens)
    assert 0.005 < (s.branch_tokens > 40_960).mean() < 0.06
    # many distinct wrong answers, with a dominant attractor
    assert "ERR" in {a for t in s.answer_tables for a in t}


def test_default_store_is_fast_cached_and_read_only():
    s = synthesize()  # the default store's parameters
    d = resolve_store()
    assert d is resolve_store() is default_store()
    assert d.equals(s)
    assert (d.num_questions, d.max_branches, d.max_probes) == (30, 128, 80)
    with pytest.raises(ValueError):
        d.probe_ids[0, 0, 0] = 5
    assert resolve_store(model="synthetic") is d
    assert resolve_store("synthetic", benchmark="seed3").equals(synthesize(seed=3))


def test_synthetic_hdf5_round_trip(tmp_path):
    s = synthesize(50, 16, seed=9)
    save_stores(tmp_path / "s.h5", [s, synthesize(5, 3, seed=1)])
    back = open_store(tmp_path / "s.h5", benchmark="seed9")
    assert back.equals(s) and back.attrs["seed"] == 9
    assert set(load_stores(tmp_path / "s.h5")) == {("synthetic", "seed9"), ("synthetic", "seed1")}


@pytest.mark.slow
def test_scales_to_100k_questions():
    # generation speed is measured in benchmarks/, not asserted here
    s = synthesize(100_000, 16, seed=0)
    assert s.probe_ids.shape[:2] == (100_000, 16)
    # spot-check interning on a slice against the reference builder
    sub = ReplayStore(model=s.model, benchmark=s.benchmark, probe_ids=s.probe_ids[-50:],
                      num_probes=s.num_probes[-50:], branch_tokens=s.branch_tokens[-50:],
                      final_ids=s.final_ids[-50:], num_branches=s.num_branches[-50:],
                      probe_interval=s.probe_interval[-50:], gold_ids=s.gold_ids[-50:],
                      answer_tables=s.answer_tables[-50:], gold_answers=s.gold_answers[-50:],
                      questions=s.questions[-50:])
    sub = ReplayStore(**{**sub.__dict__, "probe_ids": sub.probe_ids[:, :, :int(sub.num_probes.max())]})
    ref = ReplayStore.from_records(sub.model, sub.benchmark, sub.to_records())
    assert ref.equals(sub)
