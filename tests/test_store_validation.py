"""Malformed AutoTTS JSON: one clear error per fault kind, naming file / question / branch, and no
output (nor temporary) file left behind."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from tts_gym.cli import main
from tts_gym.data import StoreFormatError, import_autotts, read_autotts_json, validate_records
from tts_gym.data.synthetic import synthesize

MODEL, BENCH = "Qwen3-Test", "aime99"


def _valid_records() -> list[dict]:
    """A small valid store in AutoTTS layout (3 questions x 4 branches, K >= 1)."""
    return synthesize(3, 4, seed=7).to_records()


def _set(path):
    """Mutation that replaces the element at ``path`` (a tuple of keys/indices) with a value."""
    def apply(value):
        def mutate(recs):
            node = recs
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            return recs
        return mutate
    return apply


def _del(q, field):
    def mutate(recs):
        del recs[q][field]
        return recs
    return mutate


def _truncate(recs):
    return json.dumps(recs)[:-37]


def _corrupt(recs):
    return json.dumps(recs).replace('"probe_freq": ', '"probe_freq": @', 1)


def _nul_final(recs):
    recs[2]["each_branch"][1][2] = recs[2]["final_answers_trace"][1] = "4\u00002"
    return recs


def _second_pf(recs):
    recs[2]["probe_freq"] = recs[0]["probe_freq"] + 100
    return recs


def _trace_value(recs):
    recs[1]["final_answers_trace"][3] = recs[1]["final_answers_trace"][3] + "x"
    return recs


def _trace_length(recs):
    recs[0]["final_answers_trace"].pop()
    return recs


def _too_many_probes(recs):
    br = recs[1]["each_branch"][2]
    br[1] = 1  # 1 token cannot hold K >= 2 probes of probe_freq tokens
    br[0] = br[0] + [br[2]] if len(br[0]) < 2 else br[0]
    return recs


# kind, mutation, expected question, expected branch, fragment of the message
CASES = {
    "corrupt_json/truncated": ("corrupt_json", _truncate, None, None, "truncated JSON"),
    "corrupt_json/garbage": ("corrupt_json", _corrupt, None, None, "corrupt JSON"),
    "corrupt_json/empty": ("corrupt_json", lambda r: "", None, None, "file is empty"),
    "not_a_list": ("not_a_list", lambda r: {"questions": r}, None, None, "top level must be a list"),
    "no_questions": ("no_questions", lambda r: [], None, None, "empty"),
    "not_an_object": ("not_an_object", _set((1,))(["q", "a"]), 1, None, "must be an object"),
    "missing_field": ("missing_field", _del(2, "gold_answer"), 2, None, "missing field 'gold_answer'"),
    "unknown_field": ("unknown_field", _set((1, "difficulty"))(3), 1, None, "unknown field 'difficulty'"),
    "wrong_type/probe_freq": ("wrong_type", _set((0, "probe_freq"))("500"), 0, None,
                              "field 'probe_freq' must be an integer, got string"),
    "wrong_type/probe_freq_float": ("wrong_type", _set((0, "probe_freq"))(500.0), 0, None,
                                    "must be an integer, got number"),
    "wrong_type/question": ("wrong_type", _set((2, "question"))(None), 2, None,
                            "field 'question' must be a string, got null"),
    "wrong_type/gold": ("wrong_type", _set((1, "gold_answer"))(204), 1, None,
                        "field 'gold_answer' must be a string, got integer"),
    "wrong_type/each_branch": ("wrong_type", _set((1, "each_branch"))({}), 1, None,
                               "field 'each_branch' must be a list"),
    "bad_probe_freq": ("bad_probe_freq", _set((0, "probe_freq"))(0), 0, None, "positive integer, got 0"),
    "inconsistent_probe_freq": ("inconsistent_probe_freq", _second_pf, 2, None, "inconsistent probe_freq"),
    "no_branches": ("no_branches", _set((2, "each_branch"))([]), 2, None, "each_branch is empty"),
    "ragged_branch/short": ("ragged_branch", _set((1, "each_branch", 3))([["1"], 500]), 1, 3,
                            "triple, got a list of length 2"),
    "ragged_branch/long": ("ragged_branch", _set((0, "each_branch", 2))([["1"], 500, "1", "extra"]), 0, 2,
                           "got a list of length 4"),
    "ragged_branch/object": ("ragged_branch", _set((2, "each_branch", 1))({"probes": []}), 2, 1,
                             "triple, got object"),
    "bad_probe_list": ("bad_probe_list", _set((1, "each_branch", 0, 0))("12"), 1, 0,
                       "probe list (position 0) must be a list of strings"),
    "non_string_answer/probe": ("non_string_answer", _set((2, "each_branch", 3, 0, 0))(12), 2, 3,
                                "probe answer 0 must be a string, got integer"),
    "non_string_answer/null_final": ("non_string_answer", _set((0, "each_branch", 1, 2))(None), 0, 1,
                                     "final answer (position 2) must be a string, got null"),
    "bad_token_count/negative": ("bad_token_count", _set((1, "each_branch", 2, 1))(-5), 1, 2,
                                 "positive integer, got -5"),
    "bad_token_count/zero": ("bad_token_count", _set((2, "each_branch", 0, 1))(0), 2, 0,
                             "positive integer, got 0"),
    "bad_token_count/float": ("bad_token_count", _set((0, "each_branch", 3, 1))(3963.5), 0, 3,
                              "got number 3963.5"),
    "too_many_probes": ("too_many_probes", _too_many_probes, 1, 2, "probes but only 1 tokens"),
    "trace_mismatch/value": ("trace_mismatch", _trace_value, 1, 3, "disagrees with the branch's final answer"),
    "trace_mismatch/length": ("trace_mismatch", _trace_length, 0, None, "final_answers_trace has 3 entries"),
    "invalid_string": ("invalid_string", _nul_final, 2, 1, "NUL character"),
}


def _write_case(tmp_path: Path, mutate) -> Path:
    src = tmp_path / "src"
    (src / MODEL).mkdir(parents=True)
    data = mutate(copy.deepcopy(_valid_records()))
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    path = src / MODEL / f"{BENCH}.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_records_are_accepted(tmp_path):
    path = _write_case(tmp_path, lambda r: r)
    store = read_autotts_json(path)
    assert (store.model, store.benchmark) == (MODEL, BENCH)
    assert store.to_records() == _valid_records()


@pytest.mark.parametrize("case", list(CASES))
def test_each_fault_has_its_own_clear_error(case, tmp_path, capsys):
    kind, mutate, q, b, fragment = CASES[case]
    path = _write_case(tmp_path, mutate)

    # the API raises one StoreFormatError with location attributes and a message naming them
    with pytest.raises(StoreFormatError) as err:
        import_autotts(path.parent.parent)
    exc = err.value
    assert exc.kind == kind
    assert (exc.question, exc.branch) == (q, b)
    msg = str(exc)
    assert str(path) in msg and fragment in msg
    if q is not None:
        assert f"question {q}" in msg
    if b is not None:
        assert f"branch {b}" in msg
    assert isinstance(exc, ValueError)

    # the command line prints that one line and exits 2, leaving no output nor temporary file
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc = main(["data", "import", str(path.parent.parent), "-o", str(out_dir / "out.h5")])
    assert rc == 2
    err_text = capsys.readouterr().err.strip()
    assert len(err_text.splitlines()) == 1 and "Traceback" not in err_text
    assert fragment in err_text and str(path) in err_text
    assert os.listdir(out_dir) == []


def test_messages_are_distinct_per_kind(tmp_path):
    kinds = {}
    for i, (kind, mutate, *_) in enumerate(CASES.values()):
        path = _write_case(tmp_path / str(i), mutate)
        with pytest.raises(StoreFormatError) as err:
            read_autotts_json(path)
        kinds.setdefault(kind, set()).add(err.value.detail)
    assert len(kinds) >= 8 + 8  # well over the 8 required kinds
    all_details = [d for ds in kinds.values() for d in ds]
    assert len(set(all_details)) == len(all_details)


def test_failed_import_leaves_existing_output_untouched(tmp_path, capsys):
    good = _write_case(tmp_path / "good", lambda r: r)
    out = tmp_path / "out" / "stores.h5"
    out.parent.mkdir()
    assert main(["data", "import", str(good), "-o", str(out), "-q"]) == 0
    before = out.read_bytes()
    bad = _write_case(tmp_path / "bad", CASES["bad_token_count/negative"][1])
    assert main(["data", "import", str(good), str(bad), "-o", str(out), "--model", "x"]) == 2  # overrides
    assert main(["data", "import", str(bad.parent.parent), "-o", str(out)]) == 2
    assert out.read_bytes() == before
    assert os.listdir(out.parent) == ["stores.h5"]


def test_invalid_utf8_is_corrupt(tmp_path):
    path = _write_case(tmp_path, lambda r: r)
    path.write_bytes(path.read_bytes().replace(b'"question"', b'"quest\xff\xfeion"', 1))
    with pytest.raises(StoreFormatError, match="not valid UTF-8") as err:
        read_autotts_json(path)
    assert err.value.kind == "corrupt_json"


def test_lone_surrogate_is_invalid_string(tmp_path):
    recs = _valid_records()
    text = json.dumps(recs).replace('"question": "Synthetic question 1', '"question": "\\ud800 question 1', 1)
    path = tmp_path / MODEL / f"{BENCH}.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(StoreFormatError, match="lone surrogate") as err:
        read_autotts_json(path)
    assert (err.value.kind, err.value.question) == ("invalid_string", 1)


def test_missing_source_and_empty_directory(tmp_path, capsys):
    assert main(["data", "import", str(tmp_path / "nope"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["data", "import", str(tmp_path / "empty"), "-o", str(tmp_path / "o.h5")]) == 2
    assert "no AutoTTS store files" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["empty"]


def test_validate_records_direct():
    with pytest.raises(StoreFormatError, match="<records>: question 0: missing field 'each_branch'"):
        validate_records([{"question": "q", "gold_answer": "1", "probe_freq": 500}])
    assert validate_records(_valid_records()) == _valid_records()
