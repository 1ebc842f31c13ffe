"""End to end: the AutoTTS authors' five search rounds replayed as the proposer's output.

A loopback Messages API server (``tests/messages_api_server.py``) plays the explorer agent with a
scripted tool-use conversation per round: it reads the history, evaluates the round's
``method.py`` (``../shared/reference/autotts-code/method_r000N.py``, unchanged) as a draft on a
few seeds, and submits it. The loop evaluates every submission in the sandbox on the full search
protocol (Qwen3-1.7B/AIME24, betas 0, 0.1, ..., 1, 100 seeds), so the history must equal the
authors' published per-round curves (``../shared/reference/autotts-rounds``) row for row; then
selection and the held-out report run. A second run replays the same five rounds through the
single-shot proposer (one text response per round, the file in a ```python block).
"""
from __future__ import annotations

import json

import pytest

from conftest import SHARED_REPLAY_DIR
from messages_api_server import MessagesAPIServer
from reference_rounds import BETAS, ROUNDS, expected, method_path, point_row, published
from tts_gym.discovery.history import RunDir, read_json
from tts_gym.discovery.loop import DiscoveryConfig, run_discovery
from tts_gym.discovery.proposer import Proposer, ProposerConfig

MODEL = "claude-opus-5-5"
SEARCH_MODEL = "Qwen3-1.7B"
STORE = f"{SEARCH_MODEL}/aime24"
CODES = {r: method_path(r).read_text() for r in ROUNDS}


def _turns(req) -> int:
    return sum(1 for m in req["messages"] if m["role"] == "assistant")


def _round_of(req) -> int:
    """Which round a request belongs to: the number of finished rounds shown in its history."""
    first = req["messages"][0]["content"]
    text = first if isinstance(first, str) else "".join(b.get("text", "") for b in first)
    return sum(1 for r in ROUNDS if f"## Round {r}:" in text)


def explorer_script(req):
    r, t = _round_of(req), _turns(req)
    use = lambda tool, **args: {"type": "tool_use", "id": f"toolu_r{r}_{t}_{tool}",  # noqa: E731
                                "name": tool, "input": args}
    if t == 0:
        blocks = [use("read_history"),
                  use("evaluate_controller", code=CODES[r], betas=[0.5], seeds=2)]
    else:
        blocks = [use("submit", code=CODES[r], name=f"authors' round r000{r}")]
    return {"content": [{"type": "text", "text": f"Round {r}, turn {t}."}, *blocks],
            "stop_reason": "tool_use"}


def _config(**kw) -> DiscoveryConfig:
    base = dict(model=MODEL, rounds=len(ROUNDS), betas=BETAS, select_beta=0.5, seeds=100,
                final_seeds=10, models=(SEARCH_MODEL,), data=str(SHARED_REPLAY_DIR), jobs=2,
                episode_timeout_s=60, max_retries=0)
    base.update(kw)
    return DiscoveryConfig(**base)


def _best_published_round(beta: float) -> int:
    """The round the loop must select: highest published accuracy at ``beta`` (fewer tokens, then
    the earlier round, break ties)."""
    return max(ROUNDS, key=lambda r: (expected(r, SEARCH_MODEL, beta)[0],
                                      -expected(r, SEARCH_MODEL, beta)[1], -r))


def test_explorer_replays_the_authors_rounds(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-recorded")
    out = tmp_path / "run"
    with MessagesAPIServer([explorer_script]) as srv:
        proposer = Proposer(ProposerConfig(model=MODEL, base_url=srv.url, max_retries=0))
        summary = run_discovery(_config(proposer="agent"), out, proposer=proposer)
        assert srv.count == 2 * len(ROUNDS)
        bodies = [json.dumps(b) for b in srv.requests]
    run = RunDir(out)
    assert run.finished_rounds() == list(ROUNDS)
    mismatches = []
    for r in ROUNDS:
        rd = run.round_dir(r)
        assert (rd / "controller.py").read_text() == CODES[r]        # the file, unchanged
        draft = read_json(rd / "agent" / "drafts" / "draft_00.json")["scores"]
        assert draft["ok"], draft
        scores = read_json(rd / "scores.json")
        assert scores["ok"], (r, scores.get("error_kind"), scores.get("error"))
        assert [p["beta"] for p in scores["per_beta"]] == list(BETAS)
        for p in scores["per_beta"]:
            got, want = point_row(p, STORE), expected(r, SEARCH_MODEL, p["beta"])
            if got != want:
                mismatches.append(f"r000{r} beta={p['beta']}: {got} != published {want}")
        assert read_json(rd / "round.json")["requests"] == 2
    assert not mismatches, "\n".join(mismatches)
    # selection and the held-out report
    best = _best_published_round(0.5)
    assert summary["best"]["label"] == f"Round {best}"
    assert (out / "best_controller.py").read_text() == CODES[best]
    final = summary["final"]
    for group in ("search", "aime25", "hmmt25"):
        assert final[group]["ok"] and [p["beta"] for p in final[group]["per_beta"]] == list(BETAS)
    assert final["aime25"]["stores"] == [f"{SEARCH_MODEL}/aime25"]
    assert final["aime25_baselines"] and summary["baselines"]
    # the history fed back: round 4's first request shows rounds 0..3 with their curves
    assert sum(f"## Round {r}:" in bodies[-2] for r in ROUNDS) == 4
    assert not any("aime25" in b or "hmmt25" in b for b in bodies)
    assert summary["usage"]["requests"] == 2 * len(ROUNDS) and summary["usage"]["usd"] > 0


def test_single_shot_proposer_replays_the_authors_rounds(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-recorded")
    proposals = [f"Round r000{r} of the authors' search.\n\n```python\n{CODES[r]}```\n"
                 for r in ROUNDS]
    out = tmp_path / "run"
    with MessagesAPIServer(proposals) as srv:
        proposer = Proposer(ProposerConfig(model=MODEL, base_url=srv.url, max_retries=0))
        cfg = _config(proposer="single", betas=(0.5,), heldout=False, baselines=False)
        summary = run_discovery(cfg, out, proposer=proposer)
        assert srv.count == len(ROUNDS)
    for r in ROUNDS:
        rd = RunDir(out).round_dir(r)
        # the file as extracted from the response (extraction ends it with one newline)
        assert (rd / "controller.py").read_text().rstrip("\n") == CODES[r].rstrip("\n")
        (p,) = read_json(rd / "scores.json")["per_beta"]
        assert point_row(p, STORE) == expected(r, SEARCH_MODEL, 0.5), r
    assert summary["best"]["label"] == f"Round {_best_published_round(0.5)}"


def test_published_tables_are_complete():
    for r in ROUNDS:
        for m in ("Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B"):
            assert len(published(r, m)) == len(BETAS)


@pytest.mark.parametrize("r", ROUNDS)
def test_round_files_are_the_reference_format(r):
    """The files define the reference's OptimalController(LLMDesignedMethod) and no Controller."""
    from tts_gym.discovery.sandbox.interface import controller_format
    from tts_gym.discovery.sandbox.namespace import check_source
    assert controller_format(check_source(CODES[r])) == "reference"
