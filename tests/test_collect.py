"""``tts-gym collect`` against a real tiny model served on loopback, answer extraction and merging.

The server (``tests/loopback_server.py``) runs a seeded, randomly initialised 2-layer GPT-2 over a
character tokenizer; sampling is seeded by each request's ``seed``, so every (question, branch,
chunk) is reproducible and a resumed collection must equal an uninterrupted one.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from loopback_server import HashLM, LoopbackServer, TinyGPT2
from tts_gym.data import answers as A
from tts_gym.collect import (CheckpointDir, CollectConfig, CollectError, CompletionError, Usage, collect,
                             load_questions, request_seed)
from tts_gym.collect.client import Completion, completions_url
from tts_gym.collect.collector import Collector, Question
from tts_gym.data.autotts import validate_records
from tts_gym.data.hdf5 import open_store, save_stores
from tts_gym.data.store import GOLD_ABSENT, ReplayStore

NUM_Q, BRANCHES, INTERVAL, MAX_TOKENS, PROBE_TOKENS = 5, 4, 8, 24, 3
# CLI options of the tiny collection (the same for the in-process and the subprocess runs)
CLI_OPTS = ["--model", "tiny", "--template", "raw", "--instruction", "", "--branches", str(BRANCHES),
            "--interval", str(INTERVAL), "--max-tokens", str(MAX_TOKENS), "--probe-max-tokens", str(PROBE_TOKENS),
            "--temperature", "1.0", "--top-p", "0.95", "--seed", "7", "--benchmark", "toy", "--progress", "plain"]


def tiny_config(**kw) -> CollectConfig:
    base = dict(branches=BRANCHES, interval=INTERVAL, max_tokens=MAX_TOKENS, instruction="",
                probe_max_tokens=PROBE_TOKENS, temperature=1.0, top_p=0.95, seed=7)
    base.update(kw)
    return CollectConfig.with_template("tiny", "raw", **base)


@pytest.fixture(scope="module")
def tiny_server():
    with LoopbackServer(TinyGPT2(seed=0), model_name="tiny") as srv:
        yield srv


@pytest.fixture(scope="module")
def questions_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("questions") / "toy.jsonl"
    with open(path, "w") as fh:
        for i in range(NUM_Q):
            fh.write(json.dumps({"id": f"q{i}", "question": f"[qid:q{i}] What is {i} + {i}? Think.",
                                 "answer": 2 * i}) + "\n")
    return path


# -- answers -------------------------------------------------------------------------------------
def test_extract_boxed_last_balanced():
    assert A.extract_boxed(r"a \boxed{1} then \boxed{\frac{1}{2}} end") == r"\frac{1}{2}"
    assert A.extract_boxed(r"\boxed {  204 }") == "204"
    assert A.extract_boxed(r"\fbox{7}") == "7"
    assert A.extract_boxed(r"\boxed{x^{2}+\{1\}}") == r"x^{2}+\{1\}"
    assert A.extract_boxed(r"\boxed{1} and \boxed{2") is None  # the last box is cut off
    assert A.extract_boxed("no box") is None
    assert A.extract_boxed(r"\boxedx{3}") is None
    assert A.extract_answer("no box") == A.ERR == "ERR"
    assert A.extract_answer(r"\boxed{  }") == "ERR"
    assert A.extract_answer(r"\boxed{12}") == "12"


def test_extract_forced_answer():
    assert A.extract_forced_answer(r"\frac{1}{576}}$. So") == r"\frac{1}{576}"
    assert A.extract_forced_answer(" 204 }") == "204"
    assert A.extract_forced_answer("20") == "20"                 # decode ran out: keep what came
    assert A.extract_forced_answer("20", unclosed="err") == "ERR"
    assert A.extract_forced_answer("}") == "ERR"
    assert A.extract_forced_answer("a\x00b}") == "ab"
    with pytest.raises(ValueError):
        A.extract_forced_answer("x", unclosed="maybe")


def _store(answers_per_q, gold) -> ReplayStore:
    """A 1-question store whose branches have the given final answers (one probe each)."""
    records = [{"question": "q", "gold_answer": gold, "probe_freq": 10,
                "each_branch": [[[a], 15, a] for a in answers_per_q]}]
    return ReplayStore.from_records("m", "b", records)


def test_merging_with_custom_equivalence_and_summary():
    store = _store(["1.0", "x", "1", "x", "01"], gold="1")
    assert A.majority_accuracy(store) == 0.0  # "x" has 2 votes, "1" only 1 spelling each

    def by_float(strings):  # numbers by value, everything else by string
        keys, labels = {}, []
        for s in strings:
            try:
                k = ("n", float(s))
            except ValueError:
                k = ("s", s)
            labels.append(keys.setdefault(k, len(keys)))
        return labels

    merged = A.merge_equivalent_answers(store, by_float)
    merged.validate()
    assert merged.answer_tables[0] == ("1", "x")       # gold spelling represents its class
    assert [merged.answer(0, i) for i in merged.final_ids[0]] == ["1", "x", "1", "x", "1"]
    assert merged.gold_ids[0] == 0 and A.majority_accuracy(merged) == 1.0
    assert merged.attrs["answer_merging"] == "by_float"
    eff = json.loads(merged.attrs["answer_merging_effect"])
    assert (eff["majority_accuracy_before"], eff["majority_accuracy_after"]) == (0.0, 1.0)
    assert (eff["distinct_answers_before"], eff["distinct_answers_after"]) == (4, 2)
    s = A.answer_merging_summary(merged)
    assert s["answer_merging"] == "by_float" and s["majority_accuracy_after"] == 1.0
    assert any("0.00 % -> 100.00 %" in line for line in A.format_answer_merging(s))
    plain = A.answer_merging_summary(store)
    assert plain == {"answer_merging": "none", "majority_accuracy": 0.0}


def test_merging_math_verify_roundtrips_hdf5(tmp_path):
    pytest.importorskip("math_verify", reason="math-verify is the optional 'answers' extra")
    store = _store(["0.5", "ERR", "1/2", r"\frac{1}{2}", "ERR", "ERR", "2", "2.0"], gold=r"\frac{1}{2}")
    assert A.majority_accuracy(store) == 0.0  # ERR wins 3:1:1:1
    merged = A.merge_equivalent_answers(store)
    assert merged.answer_tables[0] == (r"\frac{1}{2}", "ERR", "2")
    assert A.majority_accuracy(merged) == 1.0
    assert merged.attrs["answer_merging"].startswith("math-verify")
    save_stores(tmp_path / "m.h5", merged)
    back = open_store(tmp_path / "m.h5")
    assert back.equals(merged)
    assert A.answer_merging_summary(back)["majority_accuracy_after"] == 1.0
    would = A.answer_merging_summary(store, compute=True)["would_merge"]
    assert would["majority_accuracy_after"] == 1.0


def test_data_info_reports_the_effect_of_merging(tmp_path, capsys):
    pytest.importorskip("math_verify", reason="math-verify is the optional 'answers' extra")
    from tts_gym.cli import main
    store = _store(["0.5", "ERR", "1/2", r"\frac{1}{2}", "ERR", "ERR", "2", "2.0"], gold=r"\frac{1}{2}")
    save_stores(tmp_path / "m.h5", A.merge_equivalent_answers(store))
    assert main(["data", "info", str(tmp_path / "m.h5")]) == 0
    out = capsys.readouterr().out
    assert "answer merging: math-verify" in out and "0.00 % -> 100.00 %" in out
    save_stores(tmp_path / "plain.h5", store)
    assert main(["data", "info", str(tmp_path / "plain.h5"), "--merging-effect", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["answer_merging"]["would_merge"]["majority_accuracy_after"] == 1.0


# -- collector units (scripted fake client) ----------------------------------------------------------
class ScriptedClient:
    """Generates ``length`` characters per branch, then stops; probes answer with the prompt length."""

    def __init__(self, length: int, think_close_at: int | None = None):
        self.length = length
        self.think_close_at = think_close_at
        self.calls: list[dict] = []

    async def complete(self, prompt, *, max_tokens, temperature, top_p, seed=None, stop=None, kind="generate",
                       usage=None, extra=None):
        self.calls.append({"prompt": prompt, "max_tokens": max_tokens, "kind": kind, "seed": seed})
        if kind == "generate":
            done = len(prompt) - len("P")  # characters generated so far (the prompt is "P")
            remaining = self.length - done
            n = min(max_tokens, remaining)
            text = "".join("T" if self.think_close_at is not None and done + i >= self.think_close_at else "x"
                           for i in range(n))
            c = Completion(text, "length" if remaining > max_tokens else "stop", len(prompt), n)
        else:
            c = Completion(f"{len(prompt)}}} tail", "length", len(prompt), 3)
        if usage is not None:
            usage.add(c, kind)
        return c


@pytest.mark.parametrize("length, probes, truncated", [(5, 0, False), (8, 0, False), (9, 1, False),
                                                        (16, 1, False), (17, 2, False), (40, 2, True)])
def test_branch_cut_at_exact_boundaries(length, probes, truncated):
    cfg = tiny_config(final_answer="force", max_tokens=24)
    client = ScriptedClient(length)
    r = asyncio.run(Collector(client, cfg).branch("P", Question(0, "a", "q", "1"), 0, Usage()))
    assert r.tokens == min(length, 24)
    assert len(r.probes) == probes == math.ceil(r.tokens / INTERVAL) - 1
    assert r.finish == ("truncated" if truncated else "stop")
    gens = [c for c in client.calls if c["kind"] == "generate"]
    assert all(c["max_tokens"] == INTERVAL for c in gens)
    # probe k continues the prefix of exactly k*interval generated tokens
    probe_prompts = [c["prompt"] for c in client.calls if c["kind"] == "probe"]
    for k, p in enumerate(sorted(probe_prompts, key=len), 1):
        assert p == "P" + "x" * (k * INTERVAL) + cfg.probe_suffix
    assert r.probes == [str(len(p)) for p in sorted(probe_prompts, key=len)]
    assert r.forced_final and r.final == str(len("P" + "x" * r.tokens + cfg.probe_suffix))


def test_probe_suffix_after_thinking_closed():
    cfg = tiny_config(think_end="TT", final_answer="extract-or-force")
    client = ScriptedClient(20, think_close_at=10)
    r = asyncio.run(Collector(client, cfg).branch("P", Question(0, "a", "q", "1"), 0, Usage()))
    gen = "x" * 10 + "T" * 10
    assert {c["prompt"] for c in client.calls if c["kind"] == "probe"} == {
        "P" + gen[:8] + cfg.probe_suffix, "P" + gen[:16] + cfg.probe_suffix_after_think}
    assert r.forced_final  # no box in the text: the final answer is forced
    final_prompt = next(c["prompt"] for c in client.calls if c["kind"] == "final")
    assert final_prompt.endswith("TT" + cfg.probe_suffix_after_think)


def test_request_seeds_and_url_and_questions(tmp_path):
    s = request_seed(0, "q1", 3, "generate", 2)
    assert s == request_seed(0, "q1", 3, "generate", 2) and 0 <= s < 2 ** 31
    assert len({request_seed(0, "q1", b, k, c) for b in range(4) for k in ("generate", "probe")
                for c in range(4)}) == 32
    assert completions_url("http://h:1") == completions_url("http://h:1/v1/") == "http://h:1/v1/completions"
    p = tmp_path / "q.jsonl"
    p.write_text('{"problem": "a", "answer": 3}\n\n{"question": "b", "gold_answer": " x "}\n')
    qs = load_questions(p)
    assert [(q.id, q.question, q.gold_answer) for q in qs] == [("0", "a", "3"), ("1", "b", "x")]
    p.write_text('{"question": "a"}\n')
    with pytest.raises(CollectError, match="gold"):
        load_questions(p)


# -- against the real tiny model -----------------------------------------------------------------------
def _check_store(store, questions):
    store.validate()
    validate_records(store.to_records())
    assert store.num_questions == len(questions) and store.max_branches == BRANCHES
    assert np.all(store.probe_interval == INTERVAL)
    real = store.branch_tokens[store.branch_tokens > 0]
    assert real.size == len(questions) * BRANCHES and real.max() <= MAX_TOKENS
    # K = number of full intervals strictly inside the trajectory
    assert np.array_equal(store.num_probes, -(-store.branch_tokens // INTERVAL) - 1)
    for q in range(store.num_questions):
        assert store.gold_answers[q] == questions[q].gold_answer
        for s in store.answer_tables[q]:
            assert s == "ERR" or 0 < len(s) <= PROBE_TOKENS, s  # a few decoded characters
            assert s == s.strip()


def test_collect_tiny_model_store_runs_env_and_baselines(tiny_server, questions_file, tmp_path):
    from tts_gym.policies.baselines import make_policy
    from tts_gym.evaluation.protocol import evaluate_compiled
    from tts_gym.evaluation.rollout import evaluate_reference_python

    qs = load_questions(questions_file)
    tiny_server.reset_stats()
    out = tmp_path / "tiny.h5"
    res = collect(tiny_config(), qs, base_url=tiny_server.url, output=out, benchmark="toy", concurrency=8,
                  progress="none")
    store = open_store(out)
    assert store.equals(res.store)
    assert (store.model, store.benchmark) == ("tiny", "toy")
    _check_store(store, qs)
    assert not (tmp_path / "tiny.h5.ckpt").exists()  # checkpoints removed after success
    # token accounting agrees with what the server counted
    st = tiny_server.stats()
    assert res.usage.requests == res.run_usage.requests == st["completed"] == st["requests"]
    assert res.usage.completion_tokens == st["completion_tokens"]
    assert res.usage.prompt_tokens == st["prompt_tokens"]
    assert res.usage.by_kind["generate"]["completion_tokens"] == int(store.branch_tokens.sum())
    assert res.usage.by_kind["probe"]["requests"] == int(store.num_probes.sum())
    assert json.loads(store.attrs["collect_usage"])["requests"] == st["requests"]
    assert store.attrs["answer_merging"] == "none"
    assert st["max_in_flight"] > 1  # requests were concurrent

    # the env and every baseline: compiled kernels and the Python env loop agree
    seeds = range(6)
    configs = {"sc": {"max_samples": 4}, "asc": {"max_samples": BRANCHES, "threshold": 0.6},
               "esc": {"max_samples": BRANCHES, "window_size": 2},
               "parallel_probe": {"num_chains": 4, "T": 2, "prune_patience": 1, "warm_up": 1},
               "cmc": {"beta": 0.5}}
    for name, params in configs.items():
        fast = evaluate_compiled(store, name, params, seeds=seeds)
        slow = evaluate_reference_python(store, make_policy(name, **params), seeds=seeds)
        assert (fast.sumC, fast.sumTT) == (slow.sumC, slow.sumTT), name
        assert np.array_equal(fast.answers, slow.answers) and np.array_equal(fast.costs, slow.costs), name
        assert fast.sumTT > 0
    sc_all = evaluate_compiled(store, "sc", {"max_samples": BRANCHES}, seeds=seeds)
    assert sc_all.sumTT == len(seeds) * int(store.branch_tokens.sum())  # SC reads every trajectory fully


def test_kill9_then_resume_equals_uninterrupted(tiny_server, questions_file, tmp_path):
    from tts_gym.cli import main as cli_main

    # the uninterrupted run, in-process through the same CLI (`tts-gym collect ...`)
    ref_out = tmp_path / "ref.h5"
    assert cli_main(["collect", "--base-url", tiny_server.url, "--questions", str(questions_file), "-o", str(ref_out),
                         "--concurrency", "4", "--progress", "none"] + CLI_OPTS[:-2]) == 0
    ref = open_store(ref_out)
    _check_store(ref, load_questions(questions_file))

    out = tmp_path / "run.h5"
    ckpt = tmp_path / "run.h5.ckpt"
    # `tts-gym collect ...` in a subprocess (the console script's entry point)
    cmd = [sys.executable, "-c", "import sys; from tts_gym.cli import main; sys.exit(main())", "collect",
           "--base-url", tiny_server.url, "--questions", str(questions_file), "-o", str(out),
           "--concurrency", "2", "--questions-in-flight", "1"] + CLI_OPTS
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    tiny_server.latency = 0.03  # slow the server so the kill lands mid-collection
    try:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        finished: set[str] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            finished = {p.stem for p in ckpt.glob("q*.json")}
            if len(finished) >= 2:
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()[0].decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        tiny_server.latency = 0.0
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    done_idx = sorted(int(p.stem[1:]) for p in ckpt.glob("q*.json"))
    assert 2 <= len(done_idx) < NUM_Q, done_idx
    for p in ckpt.glob("q*.json"):
        json.loads(p.read_text())  # every checkpoint is complete (atomic writes)
    done_ids = {f"q{i}" for i in done_idx}

    tiny_server.reset_stats()
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(done_idx)} from checkpoints" in r.stdout
    by_tag = tiny_server.stats()["by_tag"]
    for qid in done_ids:  # finished questions were not requested again
        assert by_tag.get(qid, 0) == 0, (qid, by_tag)
    for i in range(NUM_Q):
        if f"q{i}" not in done_ids:
            assert by_tag.get(f"q{i}", 0) > 0
    resumed = open_store(out)
    assert resumed.equals(ref)  # arrays, answer tables, attrs (config and token accounting) alike
    assert not ckpt.exists()


def test_retries_on_faults_give_the_same_store(questions_file, tmp_path):
    qs = load_questions(questions_file)[:3]
    cfg = tiny_config(branches=4)
    with LoopbackServer(HashLM(seed=1), model_name="tiny") as clean:
        collect(cfg, qs, base_url=clean.url, output=tmp_path / "a.h5", concurrency=4, progress="none")
    with LoopbackServer(HashLM(seed=1), model_name="tiny", fail_every=3, reset_every=7) as flaky:
        res = collect(cfg, qs, base_url=flaky.url + "/v1", output=tmp_path / "b.h5", concurrency=4,
                      progress="none",
                      # ~43 % of attempts fail here (every 3rd answered 503, every 7th reset); with the
                      # default 8 retries one of ~400 requests gives up now and then, so allow more
                      client_kwargs={"backoff_base": 0.001, "backoff_max": 0.01, "max_retries": 40})
        st = flaky.stats()
    assert res.run_usage.retries > 0 and st["requests"] == st["completed"] + res.run_usage.retries
    a, b = open_store(tmp_path / "a.h5"), open_store(tmp_path / "b.h5")
    for name in ("probe_ids", "num_probes", "branch_tokens", "final_ids"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.answer_tables == b.answer_tables
    assert json.loads(b.attrs["collect_usage"])["retries"] == res.run_usage.retries


def test_non_retryable_error_and_exhausted_retries(questions_file, tmp_path):
    qs = load_questions(questions_file)[:1]
    with LoopbackServer(HashLM(), model_name="other") as srv:
        with pytest.raises(CompletionError, match="404"):
            collect(tiny_config(), qs, base_url=srv.url, output=tmp_path / "x.h5", progress="none")
        assert srv.stats()["requests"] <= 64  # failed at once, no retry storm
    with LoopbackServer(HashLM(), model_name="tiny", fail_every=1) as srv:
        with pytest.raises(CompletionError, match="giving up after 3 attempts"):
            collect(tiny_config(), qs, base_url=srv.url, output=tmp_path / "y.h5", progress="none",
                    concurrency=1, client_kwargs={"max_retries": 2, "backoff_base": 0.001})
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


def test_checkpoints_reject_other_config_and_restart(questions_file, tmp_path):
    qs = load_questions(questions_file)[:2]
    out = tmp_path / "c.h5"
    with LoopbackServer(HashLM(), model_name="tiny") as srv:
        collect(tiny_config(branches=3), qs, base_url=srv.url, output=out, keep_checkpoints=True, progress="none")
        ck = CheckpointDir(tmp_path / "c.h5.ckpt")
        assert sorted(p.name for p in ck.path.iterdir()) == ["manifest.json", "q000000.json", "q000001.json"]
        srv.reset_stats()
        again = collect(tiny_config(branches=3), qs, base_url=srv.url, output=out, progress="none")
        assert srv.stats()["requests"] == 0 and again.resumed == 2  # all from checkpoints
        collect(tiny_config(branches=3), qs, base_url=srv.url, output=out, keep_checkpoints=True, progress="none",
                restart=True)
        with pytest.raises(CollectError, match="different configuration"):
            collect(tiny_config(branches=4), qs, base_url=srv.url, output=out, progress="none")
        res = collect(tiny_config(branches=4), qs, base_url=srv.url, output=out, progress="none", restart=True)
        assert res.store.max_branches == 4


def test_extract_mode_gives_err_without_boxes(questions_file, tmp_path):
    qs = load_questions(questions_file)[:2]
    with LoopbackServer(HashLM(), model_name="tiny") as srv:
        res = collect(tiny_config(branches=3, final_answer="extract"), qs, base_url=srv.url,
                      output=tmp_path / "e.h5", progress="none")
    s = res.store
    assert all(s.answer(q, int(i)) == "ERR" for q in range(s.num_questions) for i in s.final_ids[q])
    assert "final" not in res.usage.by_kind and np.all(s.gold_ids == GOLD_ABSENT)


def test_collect_with_math_verify_merging(questions_file, tmp_path):
    pytest.importorskip("math_verify", reason="math-verify is the optional 'answers' extra")
    qs = load_questions(questions_file)[:1]
    with LoopbackServer(HashLM(seed=3), model_name="tiny") as srv:
        exact = collect(tiny_config(branches=8), qs, base_url=srv.url, output=tmp_path / "x.h5", progress="none")
        merged = collect(tiny_config(branches=8), qs, base_url=srv.url, output=tmp_path / "m.h5", progress="none",
                         answer_merging="math-verify")
    m = open_store(tmp_path / "m.h5")
    assert m.equals(merged.store) and m.attrs["answer_merging"].startswith("math-verify")
    eff = json.loads(m.attrs["answer_merging_effect"])
    assert eff["distinct_answers_after"] <= eff["distinct_answers_before"] == sum(
        len(t) for t in exact.store.answer_tables)
    assert np.array_equal(m.branch_tokens, exact.store.branch_tokens)


def test_append_final_probe_autotts_convention(questions_file, tmp_path):
    qs = load_questions(questions_file)[:2]
    with LoopbackServer(HashLM(seed=5), model_name="tiny") as srv:
        plain = collect(tiny_config(), qs, base_url=srv.url, output=tmp_path / "p.h5", progress="none").store
        srv.reset_stats()
        conv = collect(tiny_config(append_final_probe=True), qs, base_url=srv.url, output=tmp_path / "a.h5",
                       progress="none").store
    assert np.array_equal(conv.num_probes, -(-conv.branch_tokens // INTERVAL))  # K = ceil(T / interval)
    assert np.array_equal(conv.branch_tokens, plain.branch_tokens)
    for q, rec in enumerate(conv.to_records()):
        for (probes, _, final), (p0, _, f0) in zip(rec["each_branch"], plain.to_records()[q]["each_branch"]):
            assert probes == p0 + [final] and final == f0
