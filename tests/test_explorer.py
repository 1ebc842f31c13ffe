"""The explorer agent: a scripted tool-use conversation through the real ``anthropic`` client.

The loopback server (``tests/messages_api_server.py``) answers each request from what it contains,
like a model would: it reads the history, evaluates a draft that fails, evaluates a good one,
looks at traces, tries to reach a held-out store, and submits. A second round runs out of its
tool-call budget and is forced to submit. A third part crashes inside a round right after a paid
response was saved and resumes without repeating it.
"""
from __future__ import annotations

import json

import pytest

from conftest import SHARED_REPLAY_DIR
from messages_api_server import MessagesAPIServer
from sandbox_inputs import RAISES, VOTE_MARGIN
from tts_gym.discovery.history import RunDir, read_json
from tts_gym.discovery.loop import DiscoveryConfig, run_discovery
from tts_gym.discovery.prices import cost_usd
from tts_gym.discovery.proposer import Proposer, ProposerConfig

SECRET = "sk-ant-test-EXPLORER-0123456789"
MODEL = "claude-sonnet-4-6"
STORE = "Qwen3-1.7B/aime24"

# the reference's format, with the project's helpers
REFERENCE_STYLE = '''
from tts_gym.discovery.reference_api import LLMDesignedMethod, _safe_full_read, _vote_stats


class OptimalController(LLMDesignedMethod):
    NAME = "margin_reads"

    def __init__(self, config=None):
        super().__init__(config)
        self.max_reads = 2 + round(10 * float(self.config.get("beta", 0.5)))

    def solve(self, question):
        answers = []
        for _ in range(self.max_reads):
            a = _safe_full_read(question)
            if a is None:
                break
            answers.append(a)
            winner, top1, top2, _ = _vote_stats(answers)
            if top1 - top2 >= 2:
                return winner
        return _vote_stats(answers)[0]
'''


def tool_use(i, tool, **args):
    return {"type": "tool_use", "id": f"toolu_{i:03d}_{tool}", "name": tool, "input": args}


def reply(*blocks, text="Next step."):
    return {"content": [{"type": "text", "text": text}, *blocks], "stop_reason": "tool_use"}


def turn(req) -> int:
    return sum(1 for m in req["messages"] if m["role"] == "assistant")


def results(req) -> dict:
    """Tool results of the previous turn, by tool_use id."""
    last = req["messages"][-1]
    if last["role"] != "user" or isinstance(last["content"], str):
        return {}
    return {b["tool_use_id"]: b for b in last["content"] if b.get("type") == "tool_result"}


def first_message(req) -> str:
    c = req["messages"][0]["content"]
    return c if isinstance(c, str) else "".join(b.get("text", "") for b in c)


SEEN: dict = {}


def round0_script(req):
    """Round 0: history, a failing draft, a good draft, traces, a held-out attempt, submit."""
    t = turn(req)
    res = results(req)
    SEEN.setdefault("round0", []).append({k: v["content"] for k, v in res.items()})
    if t == 0:
        return reply(tool_use(0, "read_history"),
                     tool_use(1, "evaluate_controller", code=RAISES, betas=[0.5], seeds=1))
    if t == 1:
        return reply(tool_use(2, "evaluate_controller", code=VOTE_MARGIN, betas=[0.0, 1.0],
                              seeds=1))
    if t == 2:
        return reply(tool_use(3, "show_traces", draft=1, beta=1.0),
                     tool_use(4, "show_traces", draft=1, beta=1.0, store=STORE, question=3, seed=0),
                     tool_use(5, "evaluate_controller", code=VOTE_MARGIN,
                              stores=["Qwen3-1.7B/aime25"]))
    return reply(tool_use(6, "submit", code=VOTE_MARGIN, name="vote margin",
                          notes="full reads until a 3-vote lead"))


def round1_script(req):
    """Round 1: keeps evaluating until the tool budget forces a submit."""
    if req.get("tool_choice") == {"type": "tool", "name": "submit"}:
        SEEN["forced"] = True
        return reply(tool_use(20, "submit", code=REFERENCE_STYLE, name="reference style"))
    t = turn(req)
    SEEN.setdefault("round1", []).append({k: v["content"] for k, v in results(req).items()})
    if t == 0:
        return reply(tool_use(10, "read_history", label="Round 0"))
    return reply(tool_use(10 + t, "evaluate_controller", code=REFERENCE_STYLE, betas=[1.0], seeds=1))


def script(req):
    return round1_script(req) if "Round 0" in first_message(req) else round0_script(req)


def config(**kw) -> DiscoveryConfig:
    base = dict(model=MODEL, betas=(0.0, 1.0), select_beta=1.0, seeds=2, final_seeds=1,
                models=("Qwen3-1.7B",), data=str(SHARED_REPLAY_DIR), baselines=False, jobs=2,
                job_timeout_s=60, episode_timeout_s=5, memory_mb=600, max_retries=0,
                proposer="agent", agent_tool_calls=3)
    base.update(kw)
    return DiscoveryConfig(**base)


def test_explorer_rounds_tools_budget_and_history(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    SEEN.clear()
    out = tmp_path / "run"
    with MessagesAPIServer([script]) as srv:
        proposer = Proposer(ProposerConfig(model=MODEL, base_url=srv.url, max_retries=0))
        cfg = config(rounds=2, agent_tool_calls=7)
        summary = run_discovery(cfg, out, proposer=proposer)
        bodies = [json.dumps(b) for b in srv.requests]
        requests = list(srv.requests)
    run = RunDir(out)
    assert run.finished_rounds() == [0, 1]

    # round 0: four requests, tool results as the script expects
    r0 = out / "round_0000"
    steps = sorted((r0 / "agent").glob("step_*"))
    assert len(steps) == 4
    tr = SEEN["round0"]
    assert "No previous candidates yet" in tr[1]["toolu_000_read_history"]
    assert "FAILED (exception)" in tr[1]["toolu_001_evaluate_controller"]
    assert "AttributeError" in tr[1]["toolu_001_evaluate_controller"]
    good = tr[2]["toolu_002_evaluate_controller"]
    assert "draft 1" in good and "| beta |" in good and "Token use is monotone" in good
    assert "branch 0" in tr[3]["toolu_003_show_traces"]
    assert f"{STORE}, question 3, shuffle seed 0" in tr[3]["toolu_004_show_traces"]
    held = tr[3]["toolu_005_evaluate_controller"]
    assert "unknown benchmark" in held and STORE in held
    done0 = read_json(r0 / "agent" / "done.json")
    assert done0["reason"] == "submitted" and done0["submissions"] == 1
    assert done0["tool_calls"] == 7
    assert (r0 / "agent" / "drafts" / "draft_01.py").read_text() == VOTE_MARGIN
    assert read_json(r0 / "submission.json")["name"] == "vote margin"
    assert (r0 / "controller.py").read_text() == VOTE_MARGIN
    s0 = read_json(r0 / "scores.json")
    assert s0["ok"] and [p["beta"] for p in s0["per_beta"]] == [0.0, 1.0]

    # every request's tokens and dollars are recorded; the round sums them
    total_usd = 0.0
    for sd in steps:
        u = read_json(sd / "usage.json")
        assert u["input_tokens"] > 0 and u["output_tokens"] > 0
        assert u["usd"] == pytest.approx(cost_usd(MODEL, u["input_tokens"], u["output_tokens"]))
        total_usd += u["usd"]
        assert (sd / "request.json").exists() and (sd / "response.json").exists()
    round0 = read_json(r0 / "round.json")
    assert round0["requests"] == 4 and round0["usd"] == pytest.approx(total_usd)
    assert round0["agent"]["tokens"] == sum(
        sum(read_json(sd / "usage.json")[k] for k in ("input_tokens", "output_tokens"))
        for sd in steps)

    # round 1: the history shows round 0; the tool budget forced a submit of the reference format
    tr1 = SEEN["round1"]
    assert "vote margin" in tr1[1]["toolu_010_read_history"]
    assert "class Controller" in tr1[1]["toolu_010_read_history"]
    assert SEEN.get("forced")
    r1 = out / "round_0001"
    done1 = read_json(r1 / "agent" / "done.json")
    assert done1["reason"] == "budget" and done1["tool_calls"] == 8 and done1["submissions"] == 1
    forced = read_json(sorted((r1 / "agent").glob("step_*"))[-1] / "request.json")
    assert forced["tool_choice"] == {"type": "tool", "name": "submit"}
    s1 = read_json(r1 / "scores.json")
    assert s1["ok"], s1
    assert (r1 / "controller.py").read_text() == REFERENCE_STYLE

    # the prompts: cache breakpoints, tools, budget; no key, no held-out store anywhere
    assert all(r["tools"] and r["system"][0]["cache_control"] for r in requests)
    assert "Budget of this round" in first_message(requests[0])
    assert not any(SECRET in b for b in bodies)
    assert not any("aime25" in b and "unknown benchmark" not in b for b in bodies)
    assert not any("hmmt25" in b for b in bodies)
    for p in out.rglob("*"):
        if p.is_file():
            assert SECRET not in p.read_text(errors="replace"), p

    # the run's totals include every agent request; selection and the held-out report ran
    assert summary["usage"]["requests"] == len(requests)
    assert summary["usage"]["usd"] == pytest.approx(
        sum(read_json(p)["usd"] for p in out.glob("round_*/agent/step_*/usage.json")))
    assert summary["best"] is not None and summary["final"]["aime25"]["ok"]


class Crash(Exception):
    pass


def test_resume_inside_a_round_repeats_no_paid_request(tmp_path, monkeypatch):
    """A crash right after the second response of a round is saved (its tools not yet run):
    --resume re-runs the tools from the saved response and asks only for what is missing."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    SEEN.clear()
    out = tmp_path / "run"
    cfg = config(rounds=1, heldout=False, agent_tool_calls=10)

    def crash_after_second_response(event, **info):
        if event == "agent_response" and info.get("step") == 1:
            raise Crash()

    with MessagesAPIServer([round0_script]) as srv:
        proposer = Proposer(ProposerConfig(model=MODEL, base_url=srv.url, max_retries=0))
        with pytest.raises(Crash):
            run_discovery(cfg, out, proposer=proposer, progress=crash_after_second_response)
        assert srv.count == 2
        agent = out / "round_0000" / "agent"
        assert (agent / "step_0001" / "response.json").exists()
        assert not (agent / "step_0001" / "tools.json").exists()
        assert not (out / "round_0000" / "round.json").exists()
        run_discovery(cfg, out, proposer=proposer, resume=True)
        assert srv.count == 4, "a saved response was requested again"
        # the request after the crash carries the re-computed tool results
        last_two = [json.dumps(r) for r in srv.requests[2:]]
    assert "draft 1" in last_two[0]
    assert read_json(out / "round_0000" / "agent" / "done.json")["reason"] == "submitted"
    assert read_json(out / "round_0000" / "scores.json")["ok"]
    # a finished run resumed again asks for nothing
    with MessagesAPIServer([round0_script]) as srv:
        proposer = Proposer(ProposerConfig(model=MODEL, base_url=srv.url, max_retries=0))
        run_discovery(cfg, out, proposer=proposer, resume=True)
        assert srv.count == 0


def test_round_without_submission_and_token_budget(tmp_path, monkeypatch):
    """An explorer that stops without submitting leaves a 'no_submission' candidate; a token
    budget already spent by the first request stops the conversation."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    with MessagesAPIServer(["I have no idea."]) as srv:
        proposer = Proposer(ProposerConfig(model=MODEL, base_url=srv.url, max_retries=0))
        cfg = config(rounds=1, heldout=False)
        run_discovery(cfg, tmp_path / "a", proposer=proposer)
        assert srv.count == 1
    s = read_json(tmp_path / "a" / "round_0000" / "scores.json")
    assert not s["ok"] and s["error_kind"] == "no_submission"
    with MessagesAPIServer([lambda req: reply(tool_use(0, "read_history"))]) as srv:
        proposer = Proposer(ProposerConfig(model=MODEL, base_url=srv.url, max_retries=0))
        cfg = config(rounds=1, heldout=False, agent_tokens=10, agent_tool_calls=None)
        run_discovery(cfg, tmp_path / "b", proposer=proposer)
        assert srv.count == 1
    done = read_json(tmp_path / "b" / "round_0000" / "agent" / "done.json")
    assert done["reason"] == "budget" and done["requests"] == 1


def test_resume_of_a_run_written_before_the_proposer_setting(tmp_path):
    """A run directory from before the explorer existed (no 'proposer' in its config) was a
    single-shot run: it resumes as such, and refuses to continue as an explorer run."""
    from tts_gym.discovery.history import write_json
    out = tmp_path / "old"
    run_discovery(config(rounds=0, heldout=False, proposer="single"), out)
    saved = read_json(out / "config.json")
    del saved["proposer"]
    write_json(out / "config.json", saved)
    run_discovery(config(rounds=0, heldout=False, proposer="single"), out, resume=True)
    with pytest.raises(ValueError, match="proposer"):
        run_discovery(config(rounds=0, heldout=False, proposer="agent"), out, resume=True)
