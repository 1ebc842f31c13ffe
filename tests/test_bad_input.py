"""Bad input never yields a wrong number or a traceback: malformed HDF5 and JSON stores, store bounds,
environment variables and policy parameters each give one clear error naming the file, dataset,
question, branch or parameter at fault -- or, where the input is legal, the exact right result."""
from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from tts_gym.data import StoreFormatError, StoreNotFoundError, open_store, read_autotts_json, save_stores
from tts_gym.data.hdf5 import list_stores
from tts_gym.data.store import MAX_BRANCH_TOKENS, AnswerTables, ReplayStore
from tts_gym.data.synthetic import synthesize
from tts_gym.evaluation.protocol import evaluate_compiled
from tts_gym.evaluation.stats import exact_int_sum
from tts_gym.policies import make_policy
from tts_gym.policies.registry import PolicyParamError, normalize, validate_params


def _ragged() -> ReplayStore:
    """3 questions with 3, 2 and 1 branches (padding branches in the tensors)."""
    recs = [{"question": f"q{q}", "gold_answer": "7", "probe_freq": 100,
             "each_branch": [[["1", "7"][:k % 3], 150 + 50 * k, "7" if k % 2 else "5"] for k in range(3 - q)]}
            for q in range(3)]
    return ReplayStore.from_records("m", "b", recs)


@pytest.fixture()
def h5(tmp_path) -> Path:
    p = tmp_path / "s.h5"
    save_stores(p, _ragged())
    return p


def _edit(path: Path, fn) -> None:
    with h5py.File(path, "a") as f:
        fn(f["m"]["b"], f)


def _set(name, index, value):
    def fn(g, f):
        ds = g[name]
        arr = ds[()]
        arr[index] = value
        del g[name]
        g.create_dataset(name, data=arr)
    return fn


def _replace(name, data, **kw):
    def fn(g, f):
        del g[name]
        g.create_dataset(name, data=data, **kw)
    return fn


def _attr(name, value, on_file=False):
    def fn(g, f):
        (f if on_file else g).attrs[name] = value
    return fn


def _dup_answer(g, f):
    # question 0's table ["1", "5", "7"...]: make its second string equal the first
    strings = g["answers"].asstr()[()].tolist()
    strings[1] = strings[0]
    del g["answers"]
    g.create_dataset("answers", data=np.array(strings, dtype=object), dtype=h5py.string_dtype("utf-8"))


def _group_for(name):
    def fn(g, f):
        del g[name]
        g.create_group(name)
    return fn


def _delete(name):
    def fn(g, f):
        del g[name]
    return fn


def _zero_questions(g, f):
    for name in list(g):
        del g[name]
    for name, dt, shape in (("num_probes", np.int32, (0, 0)), ("branch_tokens", np.int64, (0, 0)),
                            ("final_ids", np.int32, (0, 0)), ("num_branches", np.int32, (0,)),
                            ("probe_interval", np.int32, (0,)), ("gold_ids", np.int32, (0,)),
                            ("probe_ids_ragged", np.int32, (0,))):
        g.create_dataset(name, shape=shape, dtype=dt)
    g.create_dataset("answer_offsets", data=np.zeros(1, np.int64))
    for name in ("answers", "questions", "gold_answers"):
        g.create_dataset(name, shape=(0,), dtype=h5py.string_dtype("utf-8"))
    g.attrs["probe_shape"] = np.array([0, 0, 0], np.int64)


def _invalid_utf8(g, f):
    data = np.array([s.encode() for s in g["answers"].asstr()[()]], dtype=object)
    data[0] = b"\xff\xfe"
    del g["answers"]
    g.create_dataset("answers", data=data, dtype=h5py.string_dtype("utf-8"))


# name: (edit, fragments of the message that must all appear)
HDF5_CASES = {
    "final id outside table": (_set("final_ids", (0, 0), 99), ["'final_ids'", "question 0, branch 0", "99"]),
    "final id not PAD for padding": (_set("final_ids", (2, 1), 0), ["'final_ids'", "question 2, branch 1", "PAD_ID"]),
    "tokens 2**62 (overflow)": (_set("branch_tokens", (1, 0), 2**62),
                                ["'branch_tokens'", "question 1, branch 0", "2**40", str(2**62)]),
    "tokens zero": (_set("branch_tokens", (0, 1), 0), ["'branch_tokens'", "question 0, branch 1", "got 0"]),
    "tokens negative": (_set("branch_tokens", (0, 2), -5), ["'branch_tokens'", "branch 2", "got -5"]),
    "tokens on a padding branch": (_set("branch_tokens", (2, 2), 9), ["'branch_tokens'", "question 2, branch 2", "padding"]),
    "num_probes negative": (_set("num_probes", (0, 0), -1), ["'num_probes'", "question 0, branch 0"]),
    "num_probes beyond probe_shape": (_set("num_probes", (0, 0), 9), ["'num_probes'", "probe_shape"]),
    "too many probes for the tokens": (_set("branch_tokens", (0, 2), 100),
                                       ["'num_probes'", "question 0, branch 2", "ceil(100/100) = 1"]),
    "probe interval zero": (_set("probe_interval", 1, 0), ["'probe_interval'", "question 1", "got 0"]),
    "probe interval negative": (_set("probe_interval", 0, -500), ["'probe_interval'", "got -500"]),
    "no branches": (_set("num_branches", 2, 0), ["'num_branches'", "question 2", "got 0"]),
    "more branches than stored": (_set("num_branches", 0, 4), ["'num_branches'", "question 0", "got 4"]),
    "gold id points elsewhere": (_set("gold_ids", 0, 0), ["'gold_ids'", "question 0", "gold answer"]),
    "gold id outside table": (_set("gold_ids", 1, 10**6), ["'gold_ids'", "question 1", "1000000"]),
    "gold absent but present": (_set("gold_ids", 0, -1), ["'gold_ids'", "question 0", "absent"]),
    "duplicate answer string": (_dup_answer, ["'answers'", "question 0", "twice"]),
    "answer_offsets float": (_replace("answer_offsets", np.array([0.0, 3.0, 5.0, 7.0])),
                             ["'answer_offsets'", "integers", "float64"]),
    "answer_offsets decreasing": (_replace("answer_offsets", np.array([0, 5, 3, 7], np.int64)),
                                  ["'answer_offsets'", "decrease after question 1"]),
    "answer_offsets wrong length": (_replace("answer_offsets", np.array([0, 2], np.int64)),
                                    ["'answer_offsets'", "shape"]),
    "answer_offsets last": (_replace("answer_offsets", np.array([0, 1, 2, 3], np.int64)), ["'answer_offsets'", "last"]),
    "answers not strings": (_replace("answers", np.arange(4)), ["'answers'", "UTF-8 strings"]),
    "answers invalid UTF-8": (_invalid_utf8, ["'answers'", "question 0", "UTF-8"]),
    "dataset replaced by a group": (_group_for("num_probes"), ["'num_probes'", "must be a dataset"]),
    "missing dataset": (_delete("gold_ids"), ["'gold_ids'", "missing"]),
    "probe_shape a string": (_attr("probe_shape", "3x3x2"), ["probe_shape", "three non-negative integers"]),
    "probe_shape two numbers": (_attr("probe_shape", np.array([3, 3])), ["probe_shape"]),
    "probe_shape negative": (_attr("probe_shape", np.array([3, 3, -2])), ["probe_shape"]),
    "attrs_json invalid": (_attr("attrs_json", "{not json"), ["attrs_json", "not valid JSON"]),
    "attrs_json a list": (_attr("attrs_json", "[1, 2]"), ["attrs_json", "object"]),
    "group schema_version text": (_attr("schema_version", "one"), ["schema_version", "integer"]),
    "file schema_version text": (_attr("schema_version", "one", on_file=True), ["schema_version", "integer"]),
    "group schema_version newer": (_attr("schema_version", 99), ["newer"]),
    "ragged probes length": (_replace("probe_ids_ragged", np.zeros(2, np.int32)), ["'probe_ids_ragged'", "num_probes sums"]),
    "ragged probe id out of table": (_set("probe_ids_ragged", 0, 40000),
                                     ["'probe_ids_ragged'", "question 0", "40000"]),
    "ragged probes float": (_replace("probe_ids_ragged", np.zeros(4, np.float32)), ["'probe_ids_ragged'", "integers"]),
    "num_probes float": (_replace("num_probes", np.zeros((3, 3), np.float64)), ["'num_probes'", "integers"]),
    "branch_tokens wrong shape": (_replace("branch_tokens", np.ones((3, 2), np.int64)), ["'branch_tokens'", "shape"]),
    "questions count": (_replace("questions", np.array(["a"], dtype=object), dtype=h5py.string_dtype("utf-8")),
                        ["'questions'", "1 entries, expected 3"]),
    "gold answers not strings": (_replace("gold_answers", np.arange(3)), ["'gold_answers'", "strings"]),
    "model attribute not a string": (_attr("model", 5), ["attribute model"]),
    "zero questions": (_zero_questions, ["no question"]),
}


@pytest.mark.parametrize("case", list(HDF5_CASES))
def test_malformed_hdf5_store(case, h5):
    edit, fragments = HDF5_CASES[case]
    _edit(h5, edit)
    with pytest.raises((StoreFormatError, ValueError)) as err:
        open_store(h5, "m", "b")
    msg = str(err.value)
    assert "\n" not in msg and str(h5) in msg, msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


@pytest.mark.parametrize("case", ["truncated", "empty", "garbage", "flipped chunk", "directory", "foreign"])
def test_unreadable_hdf5_file(case, tmp_path):
    p = tmp_path / "s.h5"
    save_stores(p, synthesize(40, 16, seed=3), compression=None if case != "flipped chunk" else "gzip")
    raw = p.read_bytes()
    if case == "truncated":
        p.write_bytes(raw[:len(raw) // 2])
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "garbage":
        p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    elif case == "flipped chunk":   # damage one data chunk (every chunk carries a checksum)
        with h5py.File(p, "r") as f:
            info = f["synthetic/seed3/branch_tokens"].id.get_chunk_info(0)
        at = info.byte_offset + info.size // 2
        p.write_bytes(raw[:at] + bytes(b ^ 0xFF for b in raw[at:at + 8]) + raw[at + 8:])
    elif case == "directory":
        p.unlink()
        p.mkdir()
    else:
        p.unlink()
        with h5py.File(p, "w") as f:
            f["data"] = np.arange(3)
    with pytest.raises((StoreFormatError, OSError)) as err:
        open_store(p)
    msg = str(err.value)
    assert str(p) in msg and "\n" not in msg and "Traceback" not in msg


def test_unreadable_permission(tmp_path, monkeypatch):
    """A file the process may not read (os.access is the check; root bypasses real permissions)."""
    p = tmp_path / "s.h5"
    save_stores(p, synthesize(3, 4))
    import os
    real = os.access
    monkeypatch.setattr(os, "access", lambda f, m, **kw: False if Path(f) == p else real(f, m, **kw))
    with pytest.raises(PermissionError, match="permission denied"):
        open_store(p)


def test_unknown_store_lists_what_is_held(h5):
    with pytest.raises(StoreNotFoundError, match="holds no store x/b; it holds: m/b"):
        open_store(h5, "x", "b")
    with h5py.File(h5, "a") as f:
        f["stray"] = np.arange(2)   # a dataset where a model group would be: ignored
    assert list_stores(h5) == [("m", "b")]


# -- JSON -------------------------------------------------------------------------------------------

def _records():
    return synthesize(3, 4, seed=7).to_records()


def _json_file(tmp_path, data) -> Path:
    d = tmp_path / "M"
    d.mkdir(exist_ok=True)
    p = d / "bench.json"
    p.write_bytes(data if isinstance(data, bytes) else
                  (data if isinstance(data, str) else json.dumps(data)).encode("utf-8"))
    return p


def _mut(fn):
    def make():
        r = _records()
        fn(r)
        return r
    return make


JSON_CASES = {
    "tokens 2**63": (_mut(lambda r: r[1]["each_branch"][2].__setitem__(1, 2**63)), "out_of_range", 1, 2, "2**40"),
    "tokens 2**62": (_mut(lambda r: r[0]["each_branch"][0].__setitem__(1, 2**62)), "out_of_range", 0, 0, "2**40"),
    "tokens 10**30": (_mut(lambda r: r[2]["each_branch"][3].__setitem__(1, 10**30)), "out_of_range", 2, 3, "at most"),
    "tokens true": (_mut(lambda r: r[0]["each_branch"][1].__setitem__(1, True)), "bad_token_count", 0, 1, "boolean"),
    "probe_freq 2**31": (_mut(lambda r: [x.__setitem__("probe_freq", 2**31) for x in r]), "out_of_range", 0, None,
                         "2**31-1"),
    "probe_freq 2**40": (_mut(lambda r: [x.__setitem__("probe_freq", 2**40) for x in r]), "out_of_range", 0, None,
                         "at most"),
    "probe_freq negative": (_mut(lambda r: r[0].__setitem__("probe_freq", -3)), "bad_probe_freq", 0, None, "got -3"),
    "probe_freq null": (_mut(lambda r: r[0].__setitem__("probe_freq", None)), "wrong_type", 0, None, "null"),
    "answer list of lists": (_mut(lambda r: r[1]["each_branch"][0][0].__setitem__(0, ["1"])), "non_string_answer",
                             1, 0, "list"),
    "nul in question": (_mut(lambda r: r[2].__setitem__("question", "a\x00b")), "invalid_string", 2, None, "NUL"),
    "nul in probe": (_mut(lambda r: r[0]["each_branch"][2][0].__setitem__(0, "\x00")), "invalid_string", 0, 2, "NUL"),
}


@pytest.mark.parametrize("case", list(JSON_CASES))
def test_malformed_json_record(case, tmp_path):
    make, kind, q, b, fragment = JSON_CASES[case]
    p = _json_file(tmp_path, make())
    with pytest.raises(StoreFormatError) as err:
        read_autotts_json(p)
    e = err.value
    assert (e.kind, e.question, e.branch) == (kind, q, b), str(e)
    assert fragment in str(e) and str(p) in str(e)


TEXT_CASES = {
    "trailing comma": (lambda t: t[:-1] + ",]", "trailing comma"),
    "extra data": (lambda t: t + " []", "Extra data"),
    "top-level number": (lambda t: "42", "got number"),
    "top-level string": (lambda t: '"x"', "got string"),
    "top-level null": (lambda t: "null", "got null"),
    "top-level boolean": (lambda t: "true", "got boolean"),
    "only whitespace": (lambda t: "  \n\t ", "file is empty"),
    "cut in a string": (lambda t: t[:t.index('"gold_answer"') + 5], "truncated JSON"),
    "missing comma": (lambda t: t.replace("}, {", "} {", 1), "Expecting ',' delimiter"),
    "bare word": (lambda t: "[oops]", "corrupt JSON"),
    "byte order mark": (lambda t: "\ufeff" + t, "corrupt JSON"),
    "deep nesting": (lambda t: "[" * 100000 + "]" * 100000, "corrupt JSON"),
    "NaN token count": (lambda t: t.replace(']], "gold_answer"', ']], "gold_answer"', 1).replace(
        str(_records()[0]["each_branch"][0][1]), "NaN", 1), "must be a positive integer, got number nan"),
}


@pytest.mark.parametrize("case", list(TEXT_CASES))
def test_malformed_json_text(case, tmp_path):
    mutate, fragment = TEXT_CASES[case]
    p = _json_file(tmp_path, mutate(json.dumps(_records())))
    with pytest.raises(StoreFormatError) as err:
        read_autotts_json(p)
    assert fragment in str(err.value) and str(p) in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("window", [1, 7, 64, 4096])
def test_streaming_reader_is_exact_across_window_edges(tmp_path, monkeypatch, window):
    """Records cut by the read window at every position parse to the same store."""
    import tts_gym.data.autotts as A
    recs = synthesize(6, 5, seed=11).to_records()
    recs[3]["question"] = "ünïcode ∑ \\frac{1}{2} " + "x" * 300   # multi-byte characters across edges
    p = _json_file(tmp_path, json.dumps(recs, ensure_ascii=False, indent=1))
    want = ReplayStore.from_records("M", "bench", recs)
    monkeypatch.setattr(A, "_READ", window)
    got = read_autotts_json(p)
    assert got.to_records() == want.to_records()
    assert list(A.iter_json_array(p)) == json.loads(p.read_text(encoding="utf-8"))


def test_streaming_reader_error_positions(tmp_path, monkeypatch):
    import tts_gym.data.autotts as A
    monkeypatch.setattr(A, "_READ", 16)
    text = json.dumps(_records(), indent=1)
    bad = text.replace('"probe_freq": ', '"probe_freq": @', 1)
    p = _json_file(tmp_path, bad)
    line = bad[:bad.index("@")].count("\n") + 1
    with pytest.raises(StoreFormatError, match=f"corrupt JSON: Expecting value \\(line {line}, column"):
        read_autotts_json(p)
    raw = text.encode()
    p.write_bytes(raw[:100] + b"\xc3\x28" + raw[100:])
    with pytest.raises(StoreFormatError, match="not valid UTF-8 text .* at byte 100"):
        read_autotts_json(p)


def test_json_import_blocks_name_the_file_question(tmp_path):
    """A fault in a later block of a streamed import names the file's question index."""
    from tts_gym.data.autotts import iter_store_blocks
    recs = synthesize(9, 3, seed=2).to_records()
    recs[7]["each_branch"][1][1] = 0
    p = _json_file(tmp_path, recs)
    with pytest.raises(StoreFormatError) as err:
        list(iter_store_blocks(p, block_questions=4))
    assert (err.value.question, err.value.branch) == (7, 1)


# -- in-memory stores (the same validation) --------------------------------------------------------

def _replace_field(store, **kw):
    import dataclasses
    return dataclasses.replace(store, **kw)


def test_store_validation_in_memory():
    s = _ragged()
    bad = s.branch_tokens.copy()
    bad[0, 1] = MAX_BRANCH_TOKENS + 1
    with pytest.raises(StoreFormatError, match="store m/b: dataset 'branch_tokens': question 0, branch 1"):
        _replace_field(s, branch_tokens=bad).validate()
    with pytest.raises(StoreFormatError, match="twice"):
        _replace_field(s, answer_tables=(("1", "1", "5", "7"),) + tuple(s.answer_tables[1:])).validate()
    with pytest.raises(StoreFormatError, match="lone surrogate"):
        AnswerTables.build([["ok", "\ud800"]])
    with pytest.raises(StoreFormatError, match="question 1: answer 0 must be a string"):
        AnswerTables.build([["a"], [5]])
    with pytest.raises(ValueError, match="must be written|no question"):
        empty = ReplayStore("m", "b", np.zeros((0, 1, 1), np.int32), np.zeros((0, 1), np.int32),
                            np.zeros((0, 1), np.int64), np.zeros((0, 1), np.int32), np.zeros(0, np.int32),
                            np.zeros(0, np.int32), np.zeros(0, np.int32), (), (), ())
        empty.validate()
    with pytest.raises(StoreFormatError, match="no question"):
        save_stores("/nonexistent-never-written.h5", empty)


def test_synthetic_and_collector_paths_validate():
    with pytest.raises(ValueError, match="num_branches must be an integer in \\[1, 1048576\\], got 0"):
        synthesize(3, 0)
    with pytest.raises(ValueError, match="unsolvable_share must be a number in \\[0, 1\\], got 1.5"):
        synthesize(3, 4, unsolvable_share=1.5)
    with pytest.raises(ValueError, match="probe_interval"):
        synthesize(3, 4, probe_interval=2**31)
    from tts_gym.data.autotts import records_to_store
    recs = _records()
    recs[0]["each_branch"][0][1] = 2**62
    with pytest.raises(StoreFormatError, match="at most 1099511627776"):
        records_to_store(recs, "m", "b", file="collected.h5")


def test_huge_tokens_at_the_bound_give_exact_totals():
    """Tokens at the largest legal value: SC's totals are the exact integers (no int64 overflow)."""
    recs = [{"question": f"q{q}", "gold_answer": "1", "probe_freq": 2**31 - 1,
             "each_branch": [[["1"], MAX_BRANCH_TOKENS - b, "1"] for b in range(16)]} for q in range(5)]
    store = ReplayStore.from_records("m", "big", recs).validate()
    r = evaluate_compiled(store, "sc", {"n": 16}, seeds=range(3))
    exact = 3 * 5 * sum(MAX_BRANCH_TOKENS - b for b in range(16))
    assert r.sumTT == exact and r.avg_tokens == exact / 15
    assert r.accuracy == 100.0


def test_exact_int_sum_beyond_int64():
    a = np.full(300, 2**61, np.int64)
    assert exact_int_sum(a) == 300 * 2**61        # > 2**63: summed in halves
    b = np.array([-(2**62), 2**62 - 1, 5, -7] * 9, np.int64)
    assert exact_int_sum(b) == sum(b.tolist())
    assert exact_int_sum(np.zeros(0, np.int64)) == 0


# -- environment variables --------------------------------------------------------------------------

ENV_CASES = {
    "missing path": (lambda tmp: tmp / "nope", "no such file or directory"),
    "garbage file": (lambda tmp: _write(tmp / "data.json", b"\x00\x01garbage"), "corrupt JSON"),
    "empty directory": (lambda tmp: _mkdir(tmp / "empty"), "no AutoTTS store files"),
    "text file with h5 suffix": (lambda tmp: _write(tmp / "x.h5", b"hello"), "not an HDF5 file"),
    "h5 without the store": (lambda tmp: _h5(tmp / "other.h5"), "holds no store"),
}


def _write(p: Path, raw: bytes) -> Path:
    p.write_bytes(raw)
    return p


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _h5(p: Path) -> Path:
    save_stores(p, synthesize(3, 4, model="other", benchmark="x"))
    return p


@pytest.mark.parametrize("case", list(ENV_CASES))
def test_bad_tts_gym_data(case, tmp_path, monkeypatch, capsys):
    from tts_gym.cli import main
    from tts_gym.data.resolve import resolve_store
    make, fragment = ENV_CASES[case]
    monkeypatch.setenv("TTS_GYM_DATA", str(make(tmp_path)))
    with pytest.raises((StoreFormatError, StoreNotFoundError, OSError, ValueError), match=fragment):
        resolve_store(model="Qwen3-1.7B", benchmark="aime24")
    assert main(["eval", "--policy", "sc", "--model", "Qwen3-1.7B", "--benchmark", "aime24"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_tts_gym_cache_is_a_file(tmp_path, monkeypatch, capsys):
    from tts_gym.cli import main
    (tmp_path / "cache").write_text("not a directory")
    monkeypatch.setenv("TTS_GYM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TTS_GYM_FETCH_URL", (tmp_path / "mirror").as_uri())
    assert main(["data", "fetch", "--no-progress", "-q"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "cache" in err


# -- parameters (the registry) ---------------------------------------------------------------------

PARAM_CASES = [
    ("sc", {"n": -5}, "'n' must be an integer in [1, 2147483647], got -5"),
    ("sc", {"n": 0}, "got 0"),
    ("sc", {"n": 2**31}, "got 2147483648"),
    ("sc", {"n": 2.5}, "got 2.5"),
    ("sc", {"n": None}, "got null"),
    ("sc", {"n": [1]}, "got a list [1]"),
    ("sc", {"n": {}}, "got an object {}"),
    ("sc", {"n": True}, "got true"),
    ("sc", {"n": "sixty"}, "got 'sixty'"),
    ("sc", {"n": float("inf")}, "got inf"),
    ("sc", {"n": float("nan")}, "got nan"),
    ("sc", {"n": 4, "max_samples": 8}, "given twice"),
    ("sc", {"threshold": 0.9}, "unknown parameter 'threshold'"),
    ("asc", {"threshold": -1}, "'threshold' must be a number in [0, 1.01], got -1"),
    ("asc", {"threshold": 1.5}, "got 1.5"),
    ("asc", {"threshold": "nan"}, "got 'nan'"),
    ("asc", {"max_samples": 0}, "'max_samples'"),
    ("esc", {"window_size": 0}, "'window_size' must be an integer in [1, max_samples], got 0"),
    ("esc", {"max_samples": 4, "window_size": 8}, "[1, max_samples=4], got 8"),
    ("parallel_probe", {"num_chains": -3}, "'num_chains'"),
    ("parallel_probe", {"max_steps": 0}, "'max_steps'"),
    ("parallel_probe", {"T": 0}, "'T'"),
    ("parallel_probe", {"prune_patience": 0}, "'prune_patience'"),
    ("parallel_probe", {"warm_up": -1}, "'warm_up' must be an integer in [0, 2147483647]"),
    ("parallel_probe", {"probe_burst": 10**6}, "'probe_burst' must be an integer in [1, 65536]"),
    ("parallel_probe", {"eps_inter": -1.0}, "'eps_inter' must be a number in [0, inf)"),
    ("pp", {"K": 0}, "'K'"),
    ("cmc", {"beta": -0.1}, "'beta' must be a number in [0, 1], got -0.1"),
    ("cmc", {"beta": 1.5}, "got 1.5"),
    ("cmc", {"beta": "high"}, "got 'high'"),
    ("cmc", {"gamma": 1}, "unknown parameter 'gamma'"),
    ("nope", {}, "unknown policy 'nope'"),
    (5, {}, "policy name must be a string"),
]


@pytest.mark.parametrize("policy,params,fragment", PARAM_CASES)
def test_parameter_out_of_range(policy, params, fragment):
    for build in (lambda: normalize(policy, params), lambda: make_policy(policy, **params)):
        with pytest.raises(PolicyParamError) as err:
            build()
        assert fragment in str(err.value), str(err.value)


def test_parameters_at_the_range_edges_run():
    assert normalize("asc", {"threshold": 1.01})[1]["threshold"] == 1.01
    assert normalize("esc", {"max_samples": 8, "window_size": 8})[1]["window_size"] == 8
    assert validate_params("cmc", {"beta": 0})[1] == {"beta": 0.0}
    assert validate_params("PP", {"num_chains": "16", "warm_up": 0.0})[1]["num_chains"] == 16
    assert normalize("self-consistency", {"n": 64.0}) == ("asc", {"max_samples": 64, "threshold": 1.01})


def test_sweeps_and_evaluate_use_the_registry():
    from tts_gym.evaluation.evaluate import Sweep, evaluate
    with pytest.raises(PolicyParamError, match="'beta'"):
        Sweep("cmc", beta=[0.5, 2.0]).configs()
    for level in (1.5, 0, 1, float("nan"), -0.5, True):
        with pytest.raises(ValueError, match="level must be a number in \\(0, 1\\)"):
            evaluate("sc", synthesize(3, 4), seeds=[0], level=level, progress=False)
    with pytest.raises(ValueError, match="ci must be"):
        evaluate("sc", synthesize(3, 4), seeds=[0], ci="wild", progress=False)
    assert math.isfinite(evaluate("sc", synthesize(3, 4), seeds=[0, 1], progress=False).rows[0]["acc_low"])
