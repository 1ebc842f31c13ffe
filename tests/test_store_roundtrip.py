"""HDF5 round trip: all 12 shared AutoTTS stores, checked string by string against the JSON."""
from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

import tts_gym
from tts_gym.cli import main
from tts_gym.data import SCHEMA_VERSION, StoreNotFoundError, import_autotts, list_stores, load_stores, open_store
from tts_gym.data import save_stores
from tts_gym.data.store import GOLD_ABSENT, PAD_ID, ReplayStore

from conftest import BENCHMARKS, MODELS, shared_store

ALL_KEYS = [(m, b) for m in MODELS for b in BENCHMARKS]


@pytest.fixture(scope="module")
def cli_h5(shared_replay_dir, tmp_path_factory):
    """The 12 stores imported through the command line, read back with ``load_stores``."""
    out = tmp_path_factory.mktemp("cli") / "all.h5"
    assert main(["data", "import", str(shared_replay_dir), "-o", str(out), "-q"]) == 0
    return out, load_stores(out)


def test_all_12_stores_round_trip_exactly(cli_h5, shared_replay_dir):
    """Every answer string, token count, final answer, gold (and question, probe interval) of all 12."""
    _, stores = cli_h5
    assert list(stores) == sorted(ALL_KEYS)
    checked = 0
    for (model, bench), store in stores.items():
        with open(shared_replay_dir / model / f"{bench}.json", encoding="utf-8") as fh:
            records = json.load(fh)
        assert (store.model, store.benchmark) == (model, bench)
        assert store.num_questions == len(records)
        for q, rec in enumerate(records):
            tab = store.answer_tables[q]
            assert store.questions[q] == rec["question"]
            assert store.gold_answers[q] == rec["gold_answer"]
            assert int(store.probe_interval[q]) == rec["probe_freq"]
            gid = int(store.gold_ids[q])
            if gid == GOLD_ABSENT:
                assert all(rec["gold_answer"] != br[2] and rec["gold_answer"] not in br[0]
                           for br in rec["each_branch"])
            else:
                assert tab[gid] == rec["gold_answer"]
            assert int(store.num_branches[q]) == len(rec["each_branch"])
            ids, ks = store.probe_ids[q].tolist(), store.num_probes[q].tolist()
            toks, fins = store.branch_tokens[q].tolist(), store.final_ids[q].tolist()
            for b, (probes, tokens, final) in enumerate(rec["each_branch"]):
                k = ks[b]
                assert [tab[i] for i in ids[b][:k]] == probes, (model, bench, q, b)
                assert set(ids[b][k:]) <= {PAD_ID}
                assert toks[b] == tokens, (model, bench, q, b)
                assert tab[fins[b]] == final == rec["final_answers_trace"][b], (model, bench, q, b)
                checked += 1
    assert checked == 12 * 30 * 128


def test_hdf5_equals_in_memory_import(cli_h5, shared_h5):
    _, from_cli = cli_h5
    from_api = load_stores(shared_h5)
    for key in ALL_KEYS:
        assert from_cli[key].equals(from_api[key])
        assert from_cli[key].attrs["source"] == "autotts-json"
    # and the fast importer agrees with ReplayStore.from_records (conftest's loader)
    key = ("Qwen3-0.6B", "hmmt25")
    ref = shared_store(*key)
    got = from_cli[key]
    for name in ("probe_ids", "num_probes", "branch_tokens", "final_ids", "num_branches",
                 "probe_interval", "gold_ids"):
        a, b = getattr(got, name), getattr(ref, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert got.answer_tables == ref.answer_tables and got.to_records() == ref.to_records()


def test_interning_order_is_first_occurrence(shared_h5, shared_replay_dir):
    store = open_store(shared_h5, model="Qwen3-1.7B", benchmark="aime24")
    with open(shared_replay_dir / "Qwen3-1.7B" / "aime24.json") as fh:
        rec = json.load(fh)[0]
    seen: list[str] = []
    for probes, _, final in rec["each_branch"]:
        for s in [*probes, final]:
            if s not in seen:
                seen.append(s)
    assert list(store.answer_tables[0]) == seen
    # the worked example of the replay spec ("question 1" counted from 1, stored branch 0)
    tab = store.answer_tables[0]
    assert [tab[i] for i in store.probe_ids[0, 0, :store.num_probes[0, 0]]] == \
        ["3.5", "3.6", "ERR", "204", "204", "204", "204", "204"]
    assert int(store.branch_tokens[0, 0]) == 3963


def test_open_and_list_by_name(shared_h5):
    assert list_stores(shared_h5) == sorted(ALL_KEYS)
    s = tts_gym.open_store(shared_h5, model="Qwen3-1.7B", benchmark="aime25")
    assert (s.model, s.benchmark) == ("Qwen3-1.7B", "aime25")
    with pytest.raises(StoreNotFoundError) as err:
        open_store(shared_h5, model="Qwen3-32B", benchmark="aime25")
    msg = str(err.value)
    assert "Qwen3-32B" in msg and "Qwen3-0.6B/aime24" in msg and "Qwen3-8B/hmmt25" in msg
    with pytest.raises(StoreNotFoundError, match="choose one"):
        open_store(shared_h5, model="Qwen3-4B")  # three benchmarks match
    with pytest.raises(StoreNotFoundError, match="choose one"):
        open_store(shared_h5)


def test_file_layout_schema_chunks_compression(shared_h5):
    with h5py.File(shared_h5, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert f.attrs["format"] == "tts_gym.replay-stores"
        grp = f["Qwen3-8B"]["aime25"]
        assert grp.attrs["schema_version"] == SCHEMA_VERSION
        assert grp.attrs["model"] == "Qwen3-8B" and grp.attrs["benchmark"] == "aime25"
        assert grp.attrs["pad_id"] == PAD_ID and grp.attrs["gold_absent"] == GOLD_ABSENT
        for name in ("probe_ids_ragged", "num_probes", "branch_tokens", "final_ids", "answers"):
            ds = grp[name]
            assert ds.chunks is not None and ds.compression == "gzip", name
        assert grp["probe_ids_ragged"].dtype == np.int32 and grp["branch_tokens"].dtype == np.int64
        assert grp.attrs["probe_shape"].tolist() == [30, 128, 80]
        assert grp["probe_ids_ragged"].shape == (int(grp["num_probes"][()].sum()),)
        assert grp["final_ids"].fillvalue == PAD_ID
        assert h5py.check_string_dtype(grp["answers"].dtype).encoding == "utf-8"
        offsets = grp["answer_offsets"][()]
        assert offsets[0] == 0 and offsets[-1] == grp["answers"].shape[0]


def _tiny(model="m", benchmark="b", **kw) -> ReplayStore:
    records = [
        {"question": "Q0 ünïcode ∑", "gold_answer": "\\frac{1}{576}", "probe_freq": 7,
         "each_branch": [[["", "ERR", "\\frac{1}{576}"], 20, "\\frac{1}{576}"], [[], 3, "  spaced  "]]},
        {"question": "", "gold_answer": "never", "probe_freq": 7,
         "each_branch": [[["a", "b"], 8, "b"]]},
    ]
    return ReplayStore.from_records(model, benchmark, records, attrs=kw or None)


def test_edge_cases_round_trip(tmp_path):
    """Empty strings, unicode, LaTeX, K = 0, ragged branch counts, absent gold, nested attrs, lzf/none."""
    s = _tiny(attrs_nested={"a": [1, 2.5, None, "x"]}, flag=True)
    assert s.gold_ids[1] == GOLD_ABSENT and s.num_branches.tolist() == [2, 1]
    for comp in ("gzip", "lzf", None):
        p = tmp_path / f"t_{comp}.h5"
        save_stores(p, s, compression=comp)
        back = open_store(p)  # single store: names optional
        assert back.equals(s), comp
    # a padded probe axis longer than any branch's probe list survives too
    wide = np.full((2, 2, 6), PAD_ID, dtype=np.int32)
    wide[:, :, :3] = s.probe_ids
    s2 = ReplayStore(**{**s.__dict__, "probe_ids": wide})
    save_stores(tmp_path / "wide.h5", s2)
    assert open_store(tmp_path / "wide.h5").equals(s2) and open_store(tmp_path / "wide.h5").max_probes == 6


def test_append_replace_and_atomicity(tmp_path):
    p = tmp_path / "many.h5"
    a, b = _tiny("m1", "x"), _tiny("m2", "y")
    save_stores(p, {("m1", "x"): a})
    save_stores(p, [b], append=True)
    assert list_stores(p) == [("m1", "x"), ("m2", "y")]
    c = tts_gym.synthesize(3, 4, seed=1, model="m1", benchmark="x")
    save_stores(p, [c], append=True)  # same name: replaced
    assert open_store(p, model="m1").equals(c)
    assert open_store(p, model="m2").equals(b)
    before = p.read_bytes()
    nul = ReplayStore.from_records("m3", "z", [{"question": "q", "gold_answer": "g", "probe_freq": 1,
                                                "each_branch": [[["a\x00b"], 1, "g"]]}])
    with pytest.raises(ValueError, match="NUL"):
        save_stores(p, [nul], append=True)
    assert p.read_bytes() == before  # untouched
    assert sorted(os.listdir(tmp_path)) == ["many.h5"]  # no temporary file left
    with pytest.raises(ValueError, match="given twice"):
        save_stores(tmp_path / "dup.h5", [a, a])
    with pytest.raises(ValueError, match="group name"):
        save_stores(tmp_path / "slash.h5", [_tiny("org/model", "b")])
    assert sorted(os.listdir(tmp_path)) == ["many.h5"]


def test_corrupt_or_foreign_hdf5_is_a_format_error(tmp_path):
    from tts_gym.data import StoreFormatError
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(StoreFormatError, match="not an HDF5 file"):
        open_store(junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(StoreFormatError, match="not a tts_gym replay-store file"):
        list_stores(foreign)
    newer = tmp_path / "newer.h5"
    save_stores(newer, _tiny())
    with h5py.File(newer, "a") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(StoreFormatError, match="newer"):
        open_store(newer)
    broken = tmp_path / "broken.h5"
    save_stores(broken, _tiny())
    with h5py.File(broken, "a") as f:
        ids = f["m"]["b"]["final_ids"]
        ids[0, 0] = 99  # out of the answer table
    with pytest.raises(StoreFormatError, match="final_ids.*question 0, branch 0: answer id 99 outside"):
        open_store(broken)
    with pytest.raises(FileNotFoundError):
        open_store(tmp_path / "missing.h5")


def test_import_api_names_and_overrides(shared_replay_dir):
    one = import_autotts(shared_replay_dir / "Qwen3-4B" / "hmmt25.json", model="M", benchmark="B")
    assert list(one) == [("M", "B")]
    model_dir = import_autotts(shared_replay_dir / "Qwen3-4B")  # a single model's directory
    assert list(model_dir) == [("Qwen3-4B", "aime24"), ("Qwen3-4B", "aime25"), ("Qwen3-4B", "hmmt25")]
