"""``tts-gym collect`` and ``tts-gym run`` against a real llama.cpp server serving a real model.

The server is ``python -m llama_cpp.server`` (llama-cpp-python) with Gemma 3 270M (Q4_K_M GGUF),
started on a free loopback port by the session fixture of ``tests/llama_cpp_server.py`` and
stopped by its pid; ``.ci/run`` installs both packages (a missing one fails these tests, it never
skips them). Sizes are small for CI: 3 questions x 4 branches, 32-token intervals, 64 tokens at
most per trajectory. llama-cpp-python's server decodes one request at a time and keeps the KV
cache of the last request only, so runs that ask in order (``--no-prefetch``) are the cheap ones
there; CMC runs with the default concurrent prefetch.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from llama_cpp_server import MODEL_ALIAS, LlamaServer, gemma_gguf, llama_server  # noqa: F401 (fixtures)
from tts_gym.collect import CollectConfig, load_questions
from tts_gym.data.autotts import validate_records
from tts_gym.data.hdf5 import open_store
from tts_gym.evaluation.rollout import evaluate_reference_python
from tts_gym.online import LiveRunError, Server, run
from tts_gym.policies.baselines import make_policy

QUESTIONS = [("q0", "What is 7 + 5?", "12"), ("q1", "What is 3 * 4?", "12"), ("q2", "What is 20 - 6?", "14")]
BRANCHES, INTERVAL, MAX_TOKENS, PROBE_TOKENS, SEED = 4, 32, 64, 8, 0
SAMPLING = ["--template", "gemma", "--branches", str(BRANCHES), "--interval", str(INTERVAL), "--max-tokens",
            str(MAX_TOKENS), "--probe-max-tokens", str(PROBE_TOKENS), "--temperature", "1.0", "--top-p", "0.95",
            "--seed", str(SEED)]
LIVE = {"sc": {"max_samples": BRANCHES}, "asc": {"max_samples": BRANCHES, "threshold": 0.6}, "cmc": {"beta": 0.5}}


def config() -> CollectConfig:
    return CollectConfig.with_template(MODEL_ALIAS, "gemma", branches=BRANCHES, interval=INTERVAL,
                                       max_tokens=MAX_TOKENS, probe_max_tokens=PROBE_TOKENS, temperature=1.0,
                                       top_p=0.95, seed=SEED)


@pytest.fixture(scope="module")
def questions_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("llama_questions") / "arith.jsonl"
    path.write_text("".join(json.dumps({"id": i, "question": q, "answer": a}) + "\n" for i, q, a in QUESTIONS))
    return path


@pytest.fixture(scope="module")
def collected(llama_server, questions_file, tmp_path_factory):
    """The store ``tts-gym collect`` samples from the llama.cpp server."""
    from tts_gym.cli import main

    out = tmp_path_factory.mktemp("llama_store") / "arith.h5"
    assert main(["collect", "--base-url", llama_server.url, "--model", MODEL_ALIAS, "--questions",
                 str(questions_file), "-o", str(out), "--concurrency", "2", "--questions-in-flight", "1",
                 "--progress", "none"] + SAMPLING) == 0
    return open_store(out)


def replay(store, name: str, seed: int = 0):
    res = evaluate_reference_python(store, make_policy(name, **LIVE[name]), seeds=[seed])
    return ([store.answer_tables[q][a] if a >= 0 else None for q, a in enumerate(res.answers[0])],
            res.costs[0].tolist())


def test_collect_from_llama_cpp_validates_and_runs_every_baseline(collected):
    from tts_gym.evaluation.protocol import evaluate_compiled

    store = collected
    store.validate()
    validate_records(store.to_records())
    assert (store.model, store.benchmark) == (MODEL_ALIAS, "arith")
    assert store.num_questions == len(QUESTIONS) and store.max_branches == BRANCHES
    assert np.all(store.probe_interval == INTERVAL)
    T = store.branch_tokens
    assert np.all((T > 0) & (T <= MAX_TOKENS))
    assert np.all(store.num_probes <= -(-T // INTERVAL))            # K <= ceil(T / interval)
    assert np.all(store.num_probes * INTERVAL <= T)                 # every probe follows a full interval
    assert [store.gold_answers[q] for q in range(3)] == [a for _, _, a in QUESTIONS]
    usage = json.loads(store.attrs["collect_usage"])
    assert usage["by_kind"]["generate"]["completion_tokens"] == int(T.sum())   # the server's own counts
    assert usage["by_kind"]["probe"]["requests"] == int(store.num_probes.sum())
    configs = {"sc": {"max_samples": BRANCHES}, "asc": {"max_samples": BRANCHES, "threshold": 0.6},
               "esc": {"max_samples": BRANCHES, "window_size": 2},
               "parallel_probe": {"num_chains": BRANCHES, "T": 2, "prune_patience": 1, "warm_up": 1},
               "cmc": {"beta": 0.5}}
    for name, params in configs.items():
        fast = evaluate_compiled(store, name, params, seeds=range(4))
        slow = evaluate_reference_python(store, make_policy(name, **params), seeds=range(4))
        assert (fast.sumC, fast.sumTT) == (slow.sumC, slow.sumTT), name
        assert np.array_equal(fast.answers, slow.answers) and np.array_equal(fast.costs, slow.costs), name
        assert fast.sumTT > 0
    assert evaluate_compiled(store, "sc", {"max_samples": BRANCHES}, seeds=[0]).sumTT == int(T.sum())


def test_run_sc_and_asc_live_equal_their_replay(llama_server, collected, questions_file, tmp_path):
    """SC and ASC played live on the server give the answers and token counts of replaying them on the
    store collected with the same configuration (same per-branch seeds); CMC: the next test."""
    from tts_gym.cli import main

    prefix = tmp_path / "sc"
    assert main(["run", "--base-url", llama_server.url, "--model", MODEL_ALIAS, "--questions", str(questions_file),
                 "--policy", "sc", "--param", f"max_samples={BRANCHES}", "--shuffle-seed", "0", "-o", str(prefix),
                 "--no-prefetch", "--progress", "none"] + SAMPLING) == 0
    report = json.loads(Path(str(prefix) + ".json").read_text())
    got = ([q["answer"] for q in report["questions"]], [q["tokens"] for q in report["questions"]])
    assert got == replay(collected, "sc")
    assert got[1] == [int(collected.branch_tokens[q].sum()) for q in range(3)]   # SC reads every trajectory
    assert [q["correct"] for q in report["questions"]] == [a == g for a, (_, _, g) in zip(got[0], QUESTIONS)]
    assert all(q["speculative_tokens"] == 0 for q in report["questions"])
    # what the live run recorded is what the collector sampled, branch for branch
    rec = open_store(str(prefix) + ".h5")
    ids = json.loads(rec.attrs["branch_ids"])
    for q in range(rec.num_questions):
        assert sorted(ids[str(q)]) == list(range(BRANCHES))
        for j, b in enumerate(ids[str(q)]):
            assert rec.branch_tokens[q, j] == collected.branch_tokens[q, b]
            assert rec.num_probes[q, j] == collected.num_probes[q, b]
            assert rec.answer_tables[q][rec.final_ids[q, j]] == collected.answer_tables[q][collected.final_ids[q, b]]
            assert ([rec.answer_tables[q][a] for a in rec.probe_ids[q, j, :rec.num_probes[q, j]]] ==
                    [collected.answer_tables[q][a] for a in collected.probe_ids[q, b, :collected.num_probes[q, b]]])
    res = run("asc", questions_file, Server(llama_server.url, MODEL_ALIAS), config=config(), params=LIVE["asc"],
              shuffle_seed=0, prefetch=False, record=False)
    assert ([r.answer for r in res.results], [r.tokens for r in res.results]) == replay(collected, "asc")


def test_cmc_live_survives_a_killed_server_and_equals_its_replay(gemma_gguf, llama_server, collected,
                                                                  questions_file, tmp_path):
    """CMC, branches requested concurrently, against a server killed (SIGKILL by pid) after the first
    question: a one-line error, the answered question checkpointed; the rerun against a live server
    resumes, and the whole run equals CMC replayed on the collected store."""
    out = tmp_path / "killed.h5"
    ckpt = tmp_path / "killed.h5.ckpt"
    doomed = LlamaServer(gemma_gguf, tmp_path / "doomed.log").start()
    try:
        def kill_after_first_question():
            while not (ckpt / "q000000.json").exists() and doomed.proc.poll() is None:
                time.sleep(0.05)
            doomed.kill()   # mid-run

        killer = threading.Thread(target=kill_after_first_question, daemon=True)
        killer.start()
        with pytest.raises(LiveRunError) as err:
            run("cmc", questions_file, Server(doomed.url, MODEL_ALIAS, max_retries=2, backoff=0.2), config=config(),
                params=LIVE["cmc"], shuffle_seed=0, record=out)
        killer.join(30)
    finally:
        doomed.stop()
    msg = str(err.value)
    assert "server stopped answering" in msg and doomed.url in msg and str(ckpt) in msg and "\n" not in msg
    assert (ckpt / "q000000.json").exists() and not out.exists()
    res = run("cmc", questions_file, Server(llama_server.url, MODEL_ALIAS, concurrency=4), config=config(),
              params=LIVE["cmc"], shuffle_seed=0, record=out)
    assert res.resumed >= 1
    assert ([r.answer for r in res.results], [r.tokens for r in res.results]) == replay(collected, "cmc")
    for r in res.results:
        assert r.generated_tokens == r.tokens + r.probe_tokens + r.speculative_tokens and r.requests > 0
    open_store(out).validate()
    assert not ckpt.exists()
