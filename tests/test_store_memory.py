"""Memory that scales with the store: packed answer tables, compact probe ids, no padded copy on
load or pack, evaluation in blocks of episodes -- each giving exactly the results of the direct path."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tts_gym.core.kernels import pack_stores
from tts_gym.data import open_store, save_stores
from tts_gym.data.hdf5 import write_store_blocks
from tts_gym.data.store import AnswerTables, ReplayStore
from tts_gym.data.synthetic import synthesize, synthesize_blocks


def test_answer_tables_round_trip_and_access():
    tabs = [("a", "ünï", "\\frac{1}{2}", ""), (), ("ERR",), ("x" * 1000, "∑")]
    t = AnswerTables.build(tabs)
    assert len(t) == 4 and list(t) == [tuple(x) for x in tabs] and t == tabs
    assert t.sizes().tolist() == [4, 0, 1, 2] and t.num_answers == 7
    assert t[0][1] == "ünï" and t[-1] == tabs[-1] and t.answer(3, 1) == "∑"
    assert t.flat(1, 4) == ["ünï", "\\frac{1}{2}", ""]
    assert t[1:3] == ((), ("ERR",))
    with pytest.raises(IndexError):
        t[4]
    with pytest.raises(IndexError):
        t.answer(1, 0)
    import pickle
    assert pickle.loads(pickle.dumps(t)) == t
    b = AnswerTables.from_bytes([[s.encode() for tab in tabs[:2] for s in tab], [s.encode() for tab in tabs[2:]
                                                                                  for s in tab]],
                                np.array([0, 4, 4, 5, 7]))
    assert b == t
    assert t.nbytes < 1023 + 7 * 4 + 5 * 8 + 1


def test_store_is_compact():
    s = synthesize(200, 32, seed=4)
    assert s.probe_ids.dtype == np.int16 and isinstance(s.answer_tables, AnswerTables)
    assert s.nbytes < s.probe_ids.size * 2 + s.num_probes.size * 20 + s.answer_tables.num_answers * 16
    # an int32 tensor given to the constructor is stored compactly (lossless)
    wide = ReplayStore(**{**s.__dict__, "probe_ids": s.probe_ids.astype(np.int32)})
    assert wide.probe_ids.dtype == np.int16 and wide.equals(s)
    # tables of more than 32767 answers keep int32 ids
    big = ReplayStore.from_records("m", "b", [{"question": "q", "gold_answer": "0", "probe_freq": 1,
                                               "each_branch": [[[str(i) for i in range(40000)], 40000, "0"]]}])
    assert big.probe_ids.dtype == np.int32 and big.validate() is big


def test_pack_single_store_is_no_copy(tmp_path):
    p = tmp_path / "s.h5"
    save_stores(p, synthesize(50, 16, seed=2))
    s = open_store(p)
    d = pack_stores([s])
    assert d.probe_ids is s.probe_ids or np.shares_memory(d.probe_ids, s.probe_ids)
    assert np.shares_memory(d.branch_tokens, s.branch_tokens)
    two = pack_stores([s, synthesize(3, 4, seed=1)])
    assert two.probe_ids.shape[0] == 53 and two.probe_ids.dtype == np.int16


def test_blocked_synthetic_store_round_trip(tmp_path):
    p = tmp_path / "big.h5"
    blocks = list(synthesize_blocks(50, 8, seed=3, block_questions=16))
    assert [b.num_questions for b in blocks] == [16, 16, 16, 2]
    write_store_blocks(p, [("synthetic", "seed3", {"x": 1}, iter(blocks))])
    s = open_store(p)
    assert s.num_questions == 50 and s.attrs == {"x": 1}
    whole = ReplayStore.concatenate(blocks)
    for name in ("probe_ids", "num_probes", "branch_tokens", "final_ids", "gold_ids"):
        np.testing.assert_array_equal(getattr(s, name), getattr(whole, name)[:, :, :s.max_probes]
                                      if name == "probe_ids" else getattr(whole, name))
    assert s.answer_tables == whole.answer_tables
    assert s.questions[17] == "Synthetic question 17 (seed 3)"
    one = list(synthesize_blocks(20, 8, seed=5))   # a single block: exactly synthesize()
    assert len(one) == 1 and one[0].equals(synthesize(20, 8, seed=5, benchmark="seed5"))


@pytest.mark.parametrize("policy,params", [("sc", {"n": 16}), ("cmc", {"beta": 0.5}),
                                           ("parallel_probe", {"num_chains": 8})])
def test_blocked_protocol_batch_equals_one_block(policy, params, monkeypatch):
    """ProtocolBatch in blocks of 7 episodes (ragged branch counts across blocks and seeds) gives
    the single-block arrays exactly."""
    from tts_gym.evaluation.protocol import ProtocolBatch, evaluate_compiled
    recs = synthesize(9, 12, seed=6).to_records()
    for q, r in enumerate(recs):
        r["each_branch"] = r["each_branch"][:12 - q % 4]
        r["final_answers_trace"] = r["final_answers_trace"][:12 - q % 4]
    store = ReplayStore.from_records("m", "b", recs)
    seeds = (0, 3, 99)
    whole = evaluate_compiled(store, policy, params, seeds=seeds)
    monkeypatch.setattr(ProtocolBatch, "BLOCK_BYTES", 7 * 4 * store.max_branches)
    batch = ProtocolBatch(store, seeds)
    assert len(list(batch.blocks())) == -(-batch.num_episodes // 7)
    parts = evaluate_compiled(batch, policy, params)
    for name in ("answers", "costs", "correct", "steps"):
        np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name))
    assert (parts.sumC, parts.sumTT) == (whole.sumC, whole.sumTT)
    qs, pm = batch._fill(0, batch.num_episodes)
    np.testing.assert_array_equal(qs, ProtocolBatch(store, seeds).questions)


def test_blocked_evaluate_equals_one_block(monkeypatch):
    import tts_gym.evaluation.evaluate as E
    store = synthesize(11, 16, seed=9)
    configs = [E.Sweep("sc", n=[1, 16]), E.Sweep("cmc", beta=[0.0, 1.0])]
    whole = E.evaluate(configs, store, seeds=range(5), progress=False)
    monkeypatch.setattr(E, "_BLOCK_BYTES", 13 * 4 * 16)      # blocks of 13 episodes
    parts = E.evaluate(configs, store, seeds=range(5), progress=False)
    assert json.dumps(parts.rows, default=str) == json.dumps(whole.rows, default=str)
    for key, o in whole.outcomes.items():
        np.testing.assert_array_equal(parts.outcomes[key].cost, o.cost)
        np.testing.assert_array_equal(parts.outcomes[key].answer, o.answer)


def test_reference_orders_are_a_broadcast_view():
    from tts_gym.core.orders import reference_permutation
    from tts_gym.evaluation.protocols import make_episodes
    store = synthesize(1000, 64, seed=1)
    ep = make_episodes(store, "reference")
    assert ep.orders.shape == (100, 1000, 64) and ep.orders.strides[1] == 0   # no 25 MB array
    np.testing.assert_array_equal(ep.orders[7, 999], reference_permutation(7, 64))
    sub = ep.take([3, 5])
    assert sub.orders.strides[1] == 0 and (sub.orders[1, 4] == reference_permutation(5, 64)).all()
    blocks = list(ep.blocks(250, 64))
    assert len(blocks) == 400 and blocks[5][0] == 1250
    np.testing.assert_array_equal(blocks[5][3][0], reference_permutation(1, 64))
