"""Oracle bounds: the oracle curve lies on or above every built-in policy's curve on all 12 shared
stores, and the fixed-schedule / vote oracles are consistent with the policies they bound."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import BENCHMARKS, MODELS, shared_store
from tts_gym.evaluation import oracle as O
from tts_gym.evaluation.evaluate import Sweep, evaluate
from tts_gym.evaluation.protocols import reference, subsample

SEEDS = range(10)
SWEEPS = [Sweep("sc", n=[1, 4, 16, 64]), Sweep("asc", max_samples=[4, 16, 64]),
          Sweep("esc", max_samples=[16, 64]), Sweep("parallel_probe", num_chains=[4, 16, 64]),
          Sweep("cmc", beta=[0.0, 0.5, 1.0])]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_oracle_bounds_every_policy(model, benchmark):
    store = shared_store(model, benchmark)
    res = evaluate(SWEEPS, store, seeds=SEEDS, progress=False)
    ep = res.episodes[store.name]
    costs = O.oracle_reveal_costs(store, ep)
    curve = O.oracle_curve(costs=costs)
    front = curve.frontier()
    so = O.schedule_oracle(store, ep)
    for cfg in res.configs:
        o = res.outcome(cfg)
        r = res.row(cfg)
        # per episode: a correct answer needs the gold revealed, which costs at least c_e
        assert np.all(costs[o.correct] >= 0), cfg.label
        assert np.all(o.cost[o.correct] >= costs[o.correct]), cfg.label
        # the curve: exact integer check and the plotted step function
        assert curve.bounds(r["sum_correct"], r["sum_tokens"]), cfg.label
        assert front.step(r["avg_tokens"]) >= r["accuracy"], cfg.label
        # the fixed-schedule oracles are upper bounds too when they cost the same: pass@n >= SC@n
        if cfg.family == "sc":
            i = int(np.flatnonzero(so.widths == cfg.params["max_samples"])[0])
            assert so.sc_accuracy[i] >= r["accuracy"]
            assert so.sc_tokens[i] == pytest.approx(r["avg_tokens"], rel=1e-12)
            v = O.sc_vote_oracle(store, cfg.params["max_samples"], ep)
            assert v.accuracy >= r["accuracy"] and v.avg_tokens <= r["avg_tokens"]
            assert np.all(v.correct[o.correct])
    # the adaptive oracle dominates every fixed schedule as well
    assert np.all(front.step(so.probe_tokens.ravel()) >= so.probe_accuracy.ravel() - 1e-9)
    assert np.all(front.step(so.sc_tokens) >= so.sc_accuracy - 1e-9)


def test_oracle_costs_hand_computed():
    """Check c_e against a direct Python computation on one store and a few episodes."""
    store = shared_store("Qwen3-1.7B", "aime24")
    ep = subsample(store, n=16, replicates=3, seed=5)
    costs = O.oracle_reveal_costs(store, ep)
    for r in range(ep.num_replicates):
        for j in range(ep.episodes_per_replicate):
            q = int(ep.questions[r, j])
            g = int(store.gold_ids[q])
            pf = int(store.probe_interval[q])
            best, prefix = -1, 0
            for p in range(16):
                b = int(ep.orders[r, j, p])
                k = int(store.num_probes[q, b])
                t = int(store.branch_tokens[q, b])
                cand = []
                probes = store.probe_ids[q, b, :k].tolist()
                if g >= 0 and g in probes:
                    cand.append((probes.index(g) + 1) * pf)
                if g >= 0 and int(store.final_ids[q, b]) == g:
                    cand.append(t)
                if cand and (best < 0 or prefix + min(cand) < best):
                    best = prefix + min(cand)
                prefix += min(pf, t) if k > 0 else t
            assert costs[r, j] == best


def test_oracle_curve_shape_and_schedule():
    store = shared_store("Qwen3-4B", "aime25")
    ep = reference(store, seeds=range(5))
    curve = O.oracle_curve(store, ep)
    assert curve.accuracy[0] == 0 and np.all(np.diff(curve.accuracy) > 0)
    assert np.all(np.diff(curve.sum_tokens) >= 0)
    # the best reachable accuracy = share of episodes whose gold appears in some probe or final
    gold_anywhere = (store.gold_ids >= 0).mean() * 100
    assert curve.accuracy[-1] == pytest.approx(gold_anywhere)
    so = O.schedule_oracle(store, ep)
    # deeper / wider schedules reveal more and cost more
    assert np.all(np.diff(so.probe_accuracy, axis=0) >= 0) and np.all(np.diff(so.probe_accuracy, axis=1) >= 0)
    assert np.all(np.diff(so.probe_tokens, axis=0) >= 0) and np.all(np.diff(so.probe_tokens, axis=1) >= 0)
    assert np.all(np.diff(so.sc_accuracy) >= 0)
    # reading every branch to its end reveals its final answer too: pass@n <= depth-81 schedule
    assert np.all(so.probe_accuracy[:, -1] >= so.sc_accuracy - 1e-9)
