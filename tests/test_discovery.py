"""Controller discovery: the proposer client, the loop, the history and resume (the sandbox itself:
tests/test_sandbox*.py).

The proposer is the real ``anthropic`` client pointed (``base_url``) at a loopback server that
speaks the Messages API and replays recorded proposals (``tests/messages_api_server.py``): a good
controller and controllers that raise, loop forever, exhaust memory, do not parse, take
inadmissible actions, try to read the API key, and try to read the gold answers from disk.
Limits are tiny (seconds) and seeds few, so the file runs in about a minute on two cores.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import SHARED_REPLAY_DIR
from messages_api_server import MessagesAPIServer
from sandbox_inputs import RAISES, VOTE_MARGIN, hostile_code
from tts_gym.discovery.history import RunDir, read_json, write_atomic
from tts_gym.discovery.loop import DiscoveryConfig, run_discovery, select_best
from tts_gym.discovery.prices import cost_usd, price_for
from tts_gym.discovery.proposer import (
    Proposer, ProposerConfig, build_prompt, extract_code, response_text, response_usage,
)

SECRET = "sk-ant-test-SECRET-0123456789"
STORE_FILE = SHARED_REPLAY_DIR / "Qwen3-1.7B" / "aime24.json"
MODEL = "claude-sonnet-4-6"


def proposal(code: str, idea: str = "Here is the controller.") -> str:
    return f"{idea}\n\n```python\n{code.strip()}\n```\n"


# from the hostile suite: a busy loop that swallows every exception, a memory hoarder
LOOPS = hostile_code("cpu_busy_loop.py")
MEMORY = hostile_code("memory_lists.py")

SYNTAX = '''
class Controller:
    def __init__(self, beta)
        self.beta = beta
'''

INADMISSIBLE = '''
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        answer, index, finished = question.probe_new()
        try:
            question.probe_more(index + 7)       # a branch that was never opened
        except Exception:
            pass                                 # swallowing it does not help
        return answer
'''

KEY_IMPORT = '''
import os

class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        return os.environ.get("ANTHROPIC_API_KEY")
'''

# passes the static rules, tries every route it can think of, prints what it found and answers
KEY_SNEAKY = '''
import numpy as np
import typing
import functools

class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        found = []
        attempts = [
            lambda: open("/proc/self/environ").read(),
            lambda: np.fromfile("/proc/self/environ", dtype=np.uint8).tobytes(),
            lambda: np.genfromtxt("/proc/1/environ"),
            lambda: getattr(typing, "sys").modules["os"].environ["ANTHROPIC_API_KEY"],
            lambda: getattr(question.probe_new, "__glo" + "bals__")["os"].environ,
            lambda: getattr(functools, "_os"),
        ]
        for attempt in attempts:
            try:
                found.append(str(attempt()))
            except BaseException as exc:
                found.append("blocked: " + type(exc).__name__)
        print("key attempts:", found)
        answer, index, finished = question.probe_new()
        return answer
'''

GOLD_READER = f'''
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        with open({str(STORE_FILE)!r}) as fh:
            data = fh.read()
        answer, index, finished = question.probe_new()
        return answer
'''

VOTE_MARGIN2 = VOTE_MARGIN.replace("14 * beta", "10 * beta").replace(">= 3", ">= 2")

PROPOSALS = [
    ("good", proposal(VOTE_MARGIN, "Adaptive full reads with a vote-margin stop.")),
    ("raises", proposal(RAISES)),
    ("loops", proposal(LOOPS)),
    ("memory", proposal(MEMORY)),
    ("syntax", proposal(SYNTAX)),
    ("inadmissible", proposal(INADMISSIBLE)),
    ("key_import", proposal(KEY_IMPORT)),
    ("key_sneaky", proposal(KEY_SNEAKY)),
    ("gold_reader", proposal(GOLD_READER)),
    ("no_code", "I would rather not write code today."),
]

EXPECTED_FAILURE = {
    "raises": ("exception", "AttributeError"),
    "loops": ("timeout", "time limit"),
    "memory": ("memory", "memory limit"),
    "syntax": ("syntax", "SyntaxError"),
    "inadmissible": ("inadmissible", "probe_more(7): position not opened"),
    "key_import": ("rejected", "import of 'os' is not allowed"),
    "gold_reader": ("exception", "NameError: name 'open' is not defined"),
    "no_code": ("no_code", "no ```python code block"),
}


# ------------------------------------------------------------------------------------------------
# unit pieces
# ------------------------------------------------------------------------------------------------

def test_prices_and_usage():
    assert price_for("claude-sonnet-4-5-20250929").input_per_mtok == 3.0
    assert price_for("claude-haiku-4-5-20251001").output_per_mtok == 5.0
    assert price_for("claude-opus-4-5").output_per_mtok == 25.0
    assert price_for("claude-opus-4-20250514").input_per_mtok == 15.0
    assert cost_usd(MODEL, 1_000_000, 100_000) == pytest.approx(3.0 + 1.5)
    assert cost_usd("claude-unknown-9", 10, 10) is None
    raw = {"content": [{"type": "thinking", "thinking": "..."}, {"type": "text", "text": "a"},
                       {"type": "text", "text": "b"}], "usage": {"input_tokens": 7, "output_tokens": 3}}
    assert response_text(raw) == "a\nb"
    assert response_usage(raw)["input_tokens"] == 7


def test_extract_code():
    code, err = extract_code(proposal(VOTE_MARGIN))
    assert err is None and "class Controller" in code
    two = "```python\nx = 1\n```\ntext\n```python\nclass Controller:\n    pass\n```"
    assert extract_code(two)[0].startswith("class Controller")
    assert extract_code("no code")[1].startswith("the response contains no")
    assert "max_tokens" in extract_code("```python\nclass Controller:\n", "max_tokens")[1]


# ------------------------------------------------------------------------------------------------
# the loop, end to end, with the real anthropic client against the loopback server
# ------------------------------------------------------------------------------------------------

def small_config(**kw) -> DiscoveryConfig:
    base = dict(model=MODEL, betas=(0.0, 1.0), select_beta=1.0, seeds=1, final_seeds=1,
                models=("Qwen3-1.7B",), data=str(SHARED_REPLAY_DIR), baselines=False, jobs=2,
                job_timeout_s=30, episode_timeout_s=2, memory_mb=400, max_retries=0,
                proposer="single")
    base.update(kw)
    return DiscoveryConfig(**base)


def test_loop_records_every_failure_and_selects_the_good_controller(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    out = tmp_path / "run"
    names = [n for n, _ in PROPOSALS]
    with MessagesAPIServer([p for _, p in PROPOSALS]) as srv:
        cfg = small_config(rounds=len(PROPOSALS), betas=(1.0,))
        proposer = Proposer(ProposerConfig(model=MODEL, base_url=srv.url, max_retries=0))
        summary = run_discovery(cfg, out, proposer=proposer)
        assert srv.count == len(PROPOSALS)
        bodies = [json.dumps(b) for b in srv.requests]
        assert all(k == SECRET for k in srv.api_keys)
    run = RunDir(out)
    assert run.finished_rounds() == list(range(len(PROPOSALS)))
    by_name = {}
    for r, name in enumerate(names):
        d = run.round_dir(r)
        for f in ("prompt.md", "request.json", "response.json", "usage.json", "scores.json",
                  "traces.md", "round.json"):
            assert (d / f).exists(), (name, f)
        usage = read_json(d / "usage.json")
        assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
        assert usage["usd"] == pytest.approx(cost_usd(MODEL, usage["input_tokens"], usage["output_tokens"]))
        assert read_json(d / "round.json")["usd"] == pytest.approx(usage["usd"])
        by_name[name] = read_json(d / "scores.json")
    assert by_name["good"]["ok"] and by_name["key_sneaky"]["ok"]
    for name, (kind, needle) in EXPECTED_FAILURE.items():
        sc = by_name[name]
        assert not sc["ok"] and sc["error_kind"] == kind and needle in sc["error"], (name, sc)
    # the sneaky key reader found nothing: every route was blocked, and its printed report shows it
    lines = [ln for ln in by_name["key_sneaky"]["stdout"].splitlines() if ln.startswith("key attempts")]
    assert lines and all(ln.count("blocked:") == 6 for ln in lines), lines[:1]
    # failures were fed back: the last prompt shows each earlier failure's message
    last = bodies[-1]
    for name in ("raises", "loops", "memory", "syntax", "inadmissible", "key_import", "gold_reader"):
        assert json.dumps(EXPECTED_FAILURE[name][1])[1:-1] in last, name
    assert "Execution traces" in last and "| beta |" in last and "Token use is monotone" in last
    # the key appears nowhere: not in a prompt, not in any file of the run
    assert not any(SECRET in b for b in bodies)
    for p in out.rglob("*"):
        if p.is_file():
            assert SECRET not in p.read_text(errors="replace"), p
    # held-out data reached neither the proposer nor the search: only the final report has it
    assert not any("aime25" in b or "hmmt25" in b for b in bodies)
    best = summary["best"]
    assert best["label"] == "Round 0"
    assert (out / "best_controller.py").read_text() == extract_code(PROPOSALS[0][1])[0]
    final = summary["final"]
    assert final["search"]["ok"] and final["aime25"]["ok"] and final["hmmt25"]["ok"]
    assert final["aime25"]["stores"] == ["Qwen3-1.7B/aime25"]
    assert summary["usage"]["requests"] == len(PROPOSALS) and summary["usage"]["usd"] > 0


def test_candidates_per_round_layout_and_selection(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    with MessagesAPIServer([proposal(VOTE_MARGIN), proposal(VOTE_MARGIN2)]) as srv:
        cfg = small_config(rounds=1, candidates_per_round=2, heldout=False, betas=(1.0,))
        proposer = Proposer(ProposerConfig(model=MODEL, base_url=srv.url, max_retries=0))
        summary = run_discovery(cfg, tmp_path / "run", proposer=proposer)
        assert srv.count == 2
    run = RunDir(tmp_path / "run", 2)
    rd = run.round_dir(0)
    assert (rd / "prompt.md").exists() and (rd / "round.json").exists()
    for k in range(2):
        assert (rd / f"cand_{k}" / "scores.json").exists() and (rd / f"cand_{k}" / "usage.json").exists()
    recs = run.history(1)
    assert select_best(recs, 1.0)["label"] == summary["best"]["label"]
    assert read_json(rd / "round.json")["input_tokens"] == sum(
        read_json(rd / f"cand_{k}" / "usage.json")["input_tokens"] for k in range(2))


def test_prompt_budget_keeps_best_and_recent(tmp_path):
    ok = {"ok": True, "stores": ["s"], "monotone": {"ok": True},
          "per_beta": [{"beta": 0.5, "accuracy": 50.0, "tokens": 1000.0,
                        "stores": {"s": {"accuracy": 50.0, "tokens": 1000.0}}}]}
    hist = [{"label": f"Round {i}", "code": f"# code {i}\n" + "x = 1\n" * 400, "scores": ok,
             "traces": "t" * 3000} for i in range(12)]
    hist[2]["scores"] = json.loads(json.dumps(ok))
    hist[2]["scores"]["per_beta"][0]["accuracy"] = 90.0
    system, user = build_prompt(hist, search={"stores": ["s"], "seeds": 1, "betas": [0.5]},
                                select_beta=0.5, max_chars=20_000)
    assert len(user) <= 20_000 and "class Controller" in system
    assert "# code 2" in user and "# code 11" in user and "# code 5" not in user
    assert "Best so far: Round 2" in user


def _cli(out, url, rounds, extra=()):
    cmd = [sys.executable, "-c", "import sys; from tts_gym.cli import main; sys.exit(main())",
           "discover", "--rounds", str(rounds), "--model", MODEL, "--out", str(out), "--seeds", "1",
           "--final-seeds", "1",
           "--betas", "0", "1", "--select-beta", "1", "--models", "Qwen3-1.7B",
           "--data", str(SHARED_REPLAY_DIR), "--no-baselines", "--no-heldout", "--jobs", "2",
           "--episode-timeout", "2", "--job-timeout", "30", "--memory-mb", "400",
           "--base-url", url, "--max-retries", "0", "--proposer", "single", "--quiet", *extra]
    env = dict(os.environ, ANTHROPIC_API_KEY=SECRET)
    return subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_kill_9_mid_round_then_resume(tmp_path):
    """SIGKILL while round 1 is being evaluated (its response is saved); --resume finishes round 1
    without a new request, leaves round 0 alone, and only asks for round 2."""
    out = tmp_path / "run"
    with MessagesAPIServer([proposal(VOTE_MARGIN), proposal(LOOPS), proposal(VOTE_MARGIN2)]) as srv:
        proc = _cli(out, srv.url, 3)
        resp1 = out / "round_0001" / "response.json"
        deadline = time.monotonic() + 120
        while not resp1.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "round 1 never got its response"
            time.sleep(0.05)
        assert not (out / "round_0001" / "round.json").exists()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert srv.count == 2
        done0 = (out / "round_0000" / "round.json").read_bytes()
        mtime0 = (out / "round_0000" / "scores.json").stat().st_mtime_ns
        assert not (out / "round_0001" / "round.json").exists()

        proc = _cli(out, srv.url, 3, ["--resume"])
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr
        assert srv.count == 3, "a paid request was repeated"
    run = RunDir(out)
    assert run.finished_rounds() == [0, 1, 2]
    assert (out / "round_0000" / "round.json").read_bytes() == done0
    assert (out / "round_0000" / "scores.json").stat().st_mtime_ns == mtime0
    s1 = read_json(out / "round_0001" / "scores.json")
    assert not s1["ok"] and s1["error_kind"] == "timeout"
    assert read_json(out / "round_0002" / "scores.json")["ok"]
    for r in range(3):
        u = read_json(out / f"round_{r:04d}" / "usage.json")
        assert u["input_tokens"] > 0 and u["usd"] > 0
    assert "Best controller" in stderr
    # a fresh run into the same directory without --resume is refused
    with pytest.raises(FileExistsError, match="--resume"):
        run_discovery(small_config(rounds=3), out)
    # so is a resume with settings that define the run
    with pytest.raises(ValueError, match="seeds"):
        run_discovery(small_config(rounds=3, seeds=2), out, resume=True)


def test_atomic_write_replaces_whole_files(tmp_path):
    p = tmp_path / "a" / "f.json"
    write_atomic(p, "one")
    write_atomic(p, "two")
    assert p.read_text() == "two"
    assert [q.name for q in p.parent.iterdir()] == ["f.json"]


def test_monotonicity_verdict():
    from tts_gym.discovery.sandbox.evaluation import _monotone_verdict
    pts = [{"beta": b, "tokens": t, "stores": {"s": {"tokens": t}}} for b, t in
           ((0.0, 100.0), (0.5, 300.0), (1.0, 200.0))]
    v = _monotone_verdict(["s"], pts)
    assert not v["ok"] and "s: tokens fall from 300 at beta=0.5 to 200 at beta=1" in v["violations"][0]
    assert _monotone_verdict(["s"], pts[:2])["ok"]
