"""tts_gym.evaluate: parity through the evaluator, protocols, tables, comparisons, traces, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

import tts_gym
from conftest import shared_store
from tts_gym.core.kernels import pack_stores
from tts_gym.evaluation import oracle as O
from tts_gym.evaluation import protocols as P
from tts_gym.evaluation.evaluate import MAIN_TABLE_CONFIGS, Sweep, evaluate, main_table

# docs/replay-semantics.md, "Parity targets": (correct, tokens) for seeds 0, 1, 99 on Qwen3-1.7B/aime24
FINGERPRINTS = {
    "SC@64": [(22, 30_430_288), (22, 30_857_077), (22, 30_655_774)],
    "ASC@64": [(22, 11_626_926), (22, 14_405_328), (22, 13_804_764)],
    "ESC@64": [(22, 26_056_715), (22, 27_767_444), (22, 26_885_961)],
    "PP@64": [(20, 22_167_644), (20, 22_277_062), (20, 22_217_974)],
    "CMC β=0.5": [(21, 7_900_547), (22, 7_792_704), (19, 8_368_378)],
    "CMC β=1": [(22, 13_764_893), (21, 14_359_749), (21, 15_037_428)],
}


@pytest.fixture(scope="module")
def store17():
    return shared_store("Qwen3-1.7B", "aime24")


def test_fingerprints_through_evaluate(store17):
    res = evaluate(list(MAIN_TABLE_CONFIGS), store17, seeds=[0, 1, 99], progress=False)
    assert [c.label for c in res.configs] == list(FINGERPRINTS)
    for label, fp in FINGERPRINTS.items():
        o = res.outcome(label)
        got = list(zip(o.correct.sum(axis=1).tolist(), o.cost.sum(axis=1).tolist()))
        assert got == fp, label
        assert o.episodes.replicate_ids.tolist() == [0, 1, 99]


def test_reference_parity_totals(store17):
    """Full 100-seed protocol for the cheap rows (the CI parity suite covers the others)."""
    res = evaluate([Sweep("sc", n=[64]), ("asc", {"max_samples": 64, "threshold": 0.95})], store17,
                   progress=False)
    sc, asc = res.row("SC@64"), res.row("ASC@64")
    assert (sc["sum_correct"], sc["sum_tokens"]) == (2175, 3_077_415_887)
    assert (asc["sum_correct"], asc["sum_tokens"]) == (2170, 1_447_690_974)
    assert round(sc["accuracy"], 2) == 72.50 and int(asc["avg_tokens"]) == 482_563
    assert sc["episodes"] == 3000 and sc["replicates"] == 100
    assert sc["acc_low"] < sc["accuracy"] < sc["acc_high"]
    assert sc["tok_low"] < sc["avg_tokens"] < sc["tok_high"]
    # the evaluator's totals equal those of the reference-protocol module (tts_gym.evaluation.protocol)
    from tts_gym.evaluation.protocol import evaluate_compiled
    ref = evaluate_compiled(store17, "asc", {"max_samples": 64, "threshold": 0.95})
    assert (ref.sumC, ref.sumTT) == (asc["sum_correct"], asc["sum_tokens"])
    np.testing.assert_array_equal(ref.correct, res.outcome("ASC@64").correct)


def test_protocols(store17):
    ref = P.reference(store17, seeds=[0, 1, 99])
    assert ref.orders[0, 0, :16].tolist() == [48, 43, 108, 72, 29, 14, 54, 23, 124, 94, 10, 44, 3, 49, 83, 111]
    assert ref.orders[2, 7, :4].tolist() == [44, 55, 81, 106]
    sub = P.subsample(store17, n=16, replicates=6, seed=3)
    assert sub.max_positions == 16 and sub.shape == (6, 30)
    for r in range(6):
        for j in range(30):
            row = sub.orders[r, j, :16]
            assert len(set(row.tolist())) == 16 and row.min() >= 0 and row.max() < 128
    # any shard of replicates is generated identically on its own
    part = P.subsample(store17, n=16, replicate_ids=[4, 5], seed=3)
    np.testing.assert_array_equal(part.orders, sub.orders[4:6])
    np.testing.assert_array_equal(sub.take([4, 5]).orders, part.orders)
    assert not np.array_equal(P.subsample(store17, n=16, replicates=6, seed=4).orders, sub.orders)
    boot = P.question_bootstrap(store17, replicates=5, seed=1)
    assert boot.questions.min() >= 0 and boot.questions.max() < 30
    assert any(len(set(row.tolist())) < 30 for row in boot.questions)   # drawn with replacement
    r0 = P.reference(store17, seeds=[0])
    np.testing.assert_array_equal(boot.orders[0], r0.orders[0, boot.questions[0]])
    bb = P.branch_bootstrap(store17, iterations=2, seeds=range(3))
    assert bb.shape == (6, 30) and bb.groups.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError):
        P.make_episodes(store17, "nope")
    with pytest.raises(ValueError):
        P.subsample(store17, n=500)


def test_result_api(store17):
    res = tts_gym.evaluate("cmc", store17, grid={"beta": [0.0, 1.0]}, protocol="subsample", n=32,
                           replicates=8, seed=0, progress=False)
    assert [c.label for c in res.configs] == ["CMC β=0", "CMC β=1"]
    row = res.row("CMC β=1")
    assert row["protocol"] == "subsample(n=32, replicates=8, seed=0)" and row["episodes"] == 240
    o = res.outcome("CMC β=1")
    assert o.cost.shape == (8, 30)
    assert row["sum_tokens"] == int(o.cost.sum()) and row["accuracy"] == pytest.approx(100 * o.correct.mean())
    pq = res.per_question("CMC β=1")
    assert pq["episodes"].sum() == 240 and pq["accuracy"].shape == (30,)
    assert np.nansum(pq["accuracy"] * pq["episodes"]) / 100 == pytest.approx(o.correct.sum())
    cmp = res.compare("CMC β=1", "CMC β=0")
    assert cmp.accuracy_diff.mean == pytest.approx(row["accuracy"] - res.row("CMC β=0")["accuracy"])
    assert cmp.tokens_diff.mean > 0
    assert res.compare("cmc beta=1", "CMC β=0").label_a == "CMC β=1"   # tolerant label lookup
    f = res.frontier("cmc")
    assert len(f) >= 1 and f.label == "CMC"
    md = res.to_markdown()
    assert md.count("\n") == 3 and "CMC β=1" in md
    rows = json.loads(res.to_json())
    assert rows[0]["label"] == "CMC β=0"
    assert "sum_correct" in res.to_csv().splitlines()[0]
    # the oracle bounds both configurations on the same (subsampled) episodes
    oc = res.oracle()
    for r in res.rows:
        assert oc.bounds(r["sum_correct"], r["sum_tokens"])
    with pytest.raises(KeyError):
        res.outcome("SC@64")
    one = evaluate(("sc", {"n": 4}), store17, seeds=[0], progress=False)   # a (family, params) pair
    assert [c.label for c in one.configs] == ["SC@4"]
    with pytest.raises(ValueError):
        evaluate("nope", store17, progress=False)
    with pytest.raises(ValueError):
        evaluate("cmc", store17, params={"gamma": 1}, progress=False)


def test_bootstrap_protocol_and_ci_methods(store17):
    res = evaluate(Sweep("sc", n=[8]), store17, protocol="bootstrap", replicates=20, ci="bootstrap",
                   progress=False)
    row = res.row("SC@8")
    assert row["ci"] == "bootstrap" and row["replicates"] == 20
    assert row["acc_low"] <= row["accuracy"] <= row["acc_high"]
    bb = evaluate(Sweep("sc", n=[8]), store17, protocol="branch-bootstrap", iterations=3,
                  seeds=range(4), progress=False)
    assert bb.row("SC@8")["replicates"] == 3 and bb.row("SC@8")["episodes"] == 360


def test_python_policy_path_matches_compiled(store17):
    """A Python policy (factory over a grid) runs through the env loop on the same explicit
    episodes and gives the compiled baseline's per-episode outcomes."""
    from tts_gym.policies.baselines import make_policy
    factory = lambda **p: make_policy("cmc", **p)  # noqa: E731
    py = evaluate(Sweep(factory, name="cmc_py", grid={"beta": [0.5]}), store17, protocol="subsample",
                  n=24, replicates=2, progress=False)
    nb = evaluate(Sweep("cmc", beta=[0.5]), store17, protocol="subsample", n=24, replicates=2,
                  progress=False)
    a, b = py.outcome(py.configs[0]), nb.outcome("CMC β=0.5")
    for k in ("answer", "cost", "correct"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


def test_traces(store17):
    res = evaluate([Sweep("sc", n=[16]), Sweep("parallel_probe", num_chains=[8])],
                   store17, seeds=range(3), traces=True, trace_replicates=(0, 2), progress=False)
    for (sname, kernel), tr in res.traces.items():
        assert sname == store17.name
        for g, label in enumerate(tr.labels):
            o = res.outcome(label)
            sel = o.cost[[0, 2]].ravel()
            assert not tr.truncated.any()
            np.testing.assert_array_equal(tr.final_cost()[g].ravel(), sel)
            # applied actions in the trace = the env's step count
            n_ok = ((tr.field("code")[g] == 0) & (np.arange(tr.buffer.shape[2]) < tr.length[g][:, None])).sum(1)
            np.testing.assert_array_equal(n_ok, o.steps[[0, 2]].ravel())
            # last applied action commits the episode's answer
            last = tr.steps(g, 5)[-1]
            assert last["name"].startswith(("ANSWER_WITH", "ABSTAIN")) and \
                last["answer"] == o.answer[[0, 2]].ravel()[5]
    # trace vote oracle of SC@16 == the store-level SC vote oracle on the same episodes
    tr = res.traces[(store17.name, "asc")]
    v_tr = O.vote_oracle_from_trace(tr)
    v_st = O.sc_vote_oracle(store17, 16, res.episodes[store17.name].take([0, 2]))
    np.testing.assert_array_equal(v_tr.first_cost[0], v_st.first_cost)
    # per-position states rebuilt from the trace: SC reads every position to its end
    h = tr.position_history(0, 3)
    n_read = int(res.outcome("SC@16").steps[0, 3]) - 1
    assert h["finished"][-1, :n_read].all() and (h["latest"][-1, :n_read] >= 0).all()
    pp = res.traces[(store17.name, "parallel_probe")]
    hp = pp.position_history(0, 4)
    assert hp["depth"].shape[1] == 8 and np.all(np.diff(hp["depth"], axis=0) >= 0)
    text = tr.render(0, 1, lambda a: store17.answer(1, a), limit=5)
    assert "SAMPLE" in text and "more" in text


def test_traces_run_the_one_driver(store17):
    """A traced run is the untraced driver and policies with the recording step and reset passed
    in: every kernel's outcomes equal the untraced run's, episode for episode, and every applied
    action is recorded."""
    from tts_gym.evaluation import traces as T
    from tts_gym.policies import compiled as C
    assert set(T.TRACED_ROLLOUTS) == set(C.ROLLOUTS)
    ep = P.make_episodes(store17, "reference", seeds=range(2))
    qs, orders = ep.flat()
    data = pack_stores([store17])
    for policy, params in (("sc", {"n": 8}), ("esc", {"max_samples": 16, "window_size": 4}),
                           ("parallel_probe", {"num_chains": 8}), ("cmc", {"beta": 0.5})):
        kernel, rows = C.policy_param_rows(policy, [params])
        plain = C.run_compiled(data, kernel, [], qs, orders, policy_params=rows, workers=1)
        tr, traced = T.record_traces(data, kernel, rows, qs, orders,
                                     max_branches=store17.max_branches)
        for k in plain:
            np.testing.assert_array_equal(plain[k], traced[k], err_msg=f"{policy} {k}")
        np.testing.assert_array_equal(tr.final_cost()[0], plain["cost"][0])


def test_main_table_markdown():
    rows = []
    for m in ("Qwen3-8B", "Qwen3-0.6B"):
        for b, acc in (("hmmt25", 30.0), ("aime24", 70.0), ("aime25", 50.0)):
            for lab in ("SC@64", "CMC β=1"):
                rows.append({"model": m, "benchmark": b, "label": lab, "accuracy": acc,
                             "avg_tokens": 123_456.0, "store": f"{m}/{b}", "family": "sc"})
    md = main_table(rows)
    lines = md.splitlines()
    assert lines[0].startswith("| Model | Method | AIME24 (search) Acc | Tok | AIME25 Acc | Tok | HMMT25 Acc")
    assert "Held-out avg Acc" in lines[0]
    assert lines[2].startswith("| Qwen3-0.6B | SC@64 | 70.00 | 123.5k | 50.00 | 123.5k | 30.00 | 123.5k | 40.00 |")
    assert len(lines) == 2 + 4


def test_cli_compare_plot_table(tmp_path):
    from tts_gym.cli import main
    out = tmp_path / "cmp"
    assert main(["compare", "--out", str(out), "--seeds", "2", "--policies", "sc,cmc", "--no-progress"]) == 0
    assert (out / "scaling.png").stat().st_size > 10_000
    rows = json.loads((out / "results.json").read_text())
    assert {r["family"] for r in rows} == {"sc", "cmc"} and rows[0]["store"].startswith("synthetic")
    png = tmp_path / "p.png"
    assert main(["plot", "--results", str(out / "results.json"), "-o", str(png)]) == 0
    assert png.stat().st_size > 10_000
    md = tmp_path / "t.md"
    assert main(["table", "--results", str(out / "results.json"), "-o", str(md)]) == 0
    assert "| Model | Method |" in md.read_text()
    assert main(["compare", "--policies", "nope", "--out", str(out)]) == 2
