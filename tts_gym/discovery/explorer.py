"""The explorer: an agent with tools inside each discovery round, as the AutoTTS paper's explorer.

Within a round the agent (a Claude model through the Messages API's tool use, with the official
``anthropic`` SDK) reads the history, writes draft controllers, prototypes them on the search
stores, inspects execution traces, and only then submits the round's controller(s). Tools:

``evaluate_controller(code, betas?, stores?, seeds?)``
    Runs a draft in the sandbox (:func:`tts_gym.discovery.controller_eval.sweep_controller`: one
    sandboxed child per store and group of betas, on every core) on the *search* stores -- all of
    them or a chosen subset, the search betas or chosen ones, the search seeds or fewer -- and
    returns the accuracy/token curve per store and on average, the token-monotonicity verdict, and
    the failure (kind, message, first failing episode) if any. Each evaluation is a numbered draft.
``show_traces(draft, beta?, store?, question?, seed?, n?)``
    Step-by-step summaries of episodes of an evaluated draft: chosen ones (store, question, shuffle
    seed) or representative ones (wrong although the correct answer was revealed, wrong without it,
    the most expensive correct ones). Answers are anonymised labels; the correct one is marked.
``read_history(label?)``
    The previous rounds' candidates: one line each, or one candidate in full (curves, failure,
    code, traces), and the baselines.
``submit(code, name?, notes?)``
    Commits a controller as one of the round's candidates (up to ``candidates_per_round``); the
    loop evaluates it on the full search protocol after the round, exactly like a single-shot
    proposal. The round ends when the last allowed candidate is submitted or the agent stops.

Held-out stores are never reachable: the tools hold only the search :class:`SearchSet`, and a
store name outside it is refused with the list of search stores.

Per round, a budget bounds the conversation: tool calls, tokens (input + cache + output) and
dollars. Once a limit is reached no further tool runs; if nothing has been submitted yet, one last
request forces a ``submit`` (``tool_choice``) while the token and dollar limits allow it.

Everything is written under ``round_NNNN/agent/`` (atomically, :mod:`tts_gym.discovery.history`)::

    step_0000/request.json    the exact request (saved before it is sent)
    step_0000/response.json   the raw response (saved first thing after the paid call)
    step_0000/usage.json      its tokens and dollars
    step_0000/tools.json      the results of its tool calls (written when all have run)
    drafts/draft_03.py, draft_03.json   each evaluated draft and its scores
    done.json                 written last: why the conversation ended, counts, tokens, dollars

``--resume`` replays the saved steps: a saved response is never requested again, saved tool
results are reused, and the conversation continues where it stopped (a request saved without its
response is re-sent as saved).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tts_gym.discovery.history import read_json, sum_usage, write_atomic, write_json
from tts_gym.discovery.prices import cost_usd
from tts_gym.discovery.proposer import (
    CONTROLLER_INTERFACE, candidate_block, error_gist, extract_code, format_curve_table,
    response_text, response_usage,
)

__all__ = ["AgentBudget", "ExplorerTools", "run_explorer_round", "TOOLS", "AGENT_SYSTEM_PROMPT"]

def _tool(name: str, description: str, properties: dict, required: tuple[str, ...] = ()) -> dict:
    """A tool definition for the Messages API; ``description`` is a paragraph (line breaks are spaces)."""
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return {"name": name, "description": " ".join(description.split()), "input_schema": schema}


TOOLS = [
    _tool("evaluate_controller", """
        Evaluate a draft controller file in the sandbox on the search benchmarks. Returns its
        accuracy (%) and mean tokens per question at each beta, per benchmark and on average,
        whether token use is non-decreasing in beta, and the failure message if it failed
        (exception with the controller's traceback, time-out, inadmissible action, rule
        violation). Each call is numbered as a draft (use the number with show_traces).
        Defaults: every search benchmark, the search betas and seeds; fewer betas/seeds/benchmarks
        are faster.""",
          {"code": {"type": "string", "description": "the complete controller file"},
           "betas": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
                     "description": "betas to evaluate (default: the search betas)"},
           "stores": {"type": "array", "items": {"type": "string"},
                      "description": "search benchmarks to use, by name (default: all)"},
           "seeds": {"type": "integer", "minimum": 1,
                     "description": "random branch orders per question (default and maximum: the "
                                    "search setting's)"}},
          required=("code",)),
    _tool("show_traces", """
        Show step-by-step execution traces of episodes of an evaluated draft: which branches
        were opened, the sequence of intermediate answers each revealed (anonymised labels, the
        correct one marked), tokens, and the committed answer. Give store + question + seed for
        one chosen episode, or nothing for representative ones (wrong although the correct
        answer was revealed, wrong without it, the most expensive correct ones).""",
          {"draft": {"type": "integer", "description": "draft number from evaluate_controller"},
           "beta": {"type": "number", "description": "one of the draft's betas (default: middle)"},
           "store": {"type": "string"}, "question": {"type": "integer", "minimum": 0},
           "seed": {"type": "integer", "minimum": 0},
           "n": {"type": "integer", "minimum": 1, "maximum": 8,
                 "description": "number of representative episodes (default 3)"}},
          required=("draft",)),
    _tool("read_history", """
        Read the discovery history: without a label, one line per previous candidate (and the
        baselines); with a label such as 'Round 2' or 'Round 3, candidate 1', that candidate
        in full: curves per benchmark, failure, code and execution traces.""",
          {"label": {"type": "string"}}),
    _tool("submit", """
        Submit a controller file as one of this round's candidates. It is checked against the
        sandbox rules now and evaluated on the full search protocol after the round; candidates
        are ranked by mean search accuracy at the selection beta. The round ends once the
        allowed number of candidates is submitted.""",
          {"code": {"type": "string", "description": "the complete controller file"},
           "name": {"type": "string", "description": "a short name of the idea"},
           "notes": {"type": "string", "description": "what it does and why (a few sentences)"}},
          required=("code",)),
]

AGENT_SYSTEM_PROMPT = '''\
You are an expert in test-time scaling of reasoning language models and the explorer of a
controller-discovery search. A controller decides, per question, how many reasoning branches to
sample, how deep to continue each of them, which to stop early, and when to stop and answer. The
branches were pre-sampled from a reasoning model, with the model's intermediate answer recorded
every 500 tokens, so a controller is a program that is replayed exactly against this data.

The goal is a controller whose accuracy/token trade-off (swept with its single `beta` knob) beats
the baselines and the previous candidates: higher accuracy at equal tokens, or equal accuracy with
fewer tokens. Candidates are ranked by mean accuracy over the search benchmarks at the selection
beta; token use must be non-decreasing in beta.

''' + CONTROLLER_INTERFACE + '''
# How to work in a round
You have tools. Read the history if you need details, write a draft, evaluate it on the search
benchmarks (start with few betas/seeds to iterate quickly), look at execution traces of wrong or
expensive episodes, fix and improve, check the whole beta sweep and its monotonicity, and then
submit. Each round has a budget of tool calls, tokens and dollars (given in the first message);
submit before it runs out. Only submitted controllers count.
'''


@dataclass
class AgentBudget:
    """Per-round limits of the explorer conversation (``None``: no limit)."""
    tool_calls: int | None = 24
    tokens: int | None = 1_500_000
    usd: float | None = None


# ------------------------------------------------------------------------------------------------
# tools
# ------------------------------------------------------------------------------------------------

class ToolError(ValueError):
    """A tool call with bad input: reported to the agent as an error result."""


class ExplorerTools:
    """The tools of one round (see the module docstring). ``search``: the search
    :class:`~tts_gym.discovery.sandbox.SearchSet` (the only stores the tools can reach);
    ``history``: candidate records of the previous rounds; ``submit(code, name, notes) -> str``:
    registers a candidate and returns what to tell the agent."""

    def __init__(self, search, betas: Sequence[float], limits, agent_dir: Path, history: list,
                 baselines: list, select_beta: float, submit: Callable, *, workers: int = 0,
                 backend: str = "local", trace_chars: int = 1800) -> None:
        self.search = search
        self.betas = [float(b) for b in betas]
        self.limits = limits
        self.dir = Path(agent_dir)
        self.history = history
        self.baselines = baselines
        self.select_beta = float(select_beta)
        self._submit = submit
        self.workers, self.backend = workers, backend
        self.trace_chars = trace_chars
        self._sets: dict = {}
        self._live: dict = {}    # draft -> (ControllerEvaluation with episodes, SearchSet)

    # -- helpers --------------------------------------------------------------------------------
    def _search_set(self, stores: tuple, seeds: int):
        key = (stores, seeds)
        s = self._sets.get(key)
        if s is None:
            from tts_gym.discovery.sandbox import SearchSet
            if stores == tuple(self.search.names) and seeds == len(self.search.seeds):
                s = self.search
            else:
                by = dict(zip(self.search.names, self.search.stores))
                s = SearchSet([by[n] for n in stores], list(range(seeds)))
            self._sets[key] = s
        return s

    def _stores(self, names) -> tuple:
        allowed = list(self.search.names)
        if names is None:
            return tuple(allowed)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ToolError("stores must be a non-empty list of benchmark names")
        bad = [n for n in names if n not in allowed]
        if bad:
            raise ToolError(f"unknown benchmark(s) {bad}: the search benchmarks are {allowed}")
        return tuple(n for n in allowed if n in names)

    def _draft_path(self, k: int) -> Path:
        return self.dir / "drafts" / f"draft_{k:02d}"

    def _next_draft(self) -> int:
        d = self.dir / "drafts"
        return len(list(d.glob("draft_*.json"))) if d.exists() else 0

    # -- dispatch -------------------------------------------------------------------------------
    def call(self, name: str, args: dict) -> tuple[str, bool]:
        """``(result text, is_error)`` of one tool call."""
        fn = {"evaluate_controller": self.evaluate_controller, "show_traces": self.show_traces,
              "read_history": self.read_history, "submit": self.submit}.get(name)
        if fn is None:
            return f"unknown tool {name!r}; the tools are {[t['name'] for t in TOOLS]}", True
        if not isinstance(args, dict):
            return "tool input must be a JSON object", True
        try:
            return fn(**args), False
        except ToolError as exc:
            return f"error: {exc}", True
        except TypeError as exc:
            return f"error: bad arguments for {name}: {exc}", True

    # -- the tools ------------------------------------------------------------------------------
    def evaluate_controller(self, code: str, betas=None, stores=None, seeds=None) -> str:
        from tts_gym.discovery.controller_eval import sweep_controller
        if not isinstance(code, str) or not code.strip():
            raise ToolError("code must be the complete controller file as a string")
        if betas is None:
            betas = self.betas
        if (not isinstance(betas, list) or not betas or len(betas) > 21
                or not all(isinstance(b, (int, float)) and 0 <= b <= 1 for b in betas)):
            raise ToolError("betas must be a list of 1..21 numbers in [0, 1]")
        betas = sorted({float(b) for b in betas})
        names = self._stores(stores)
        nmax = len(self.search.seeds)
        seeds = nmax if seeds is None else seeds
        if not isinstance(seeds, int) or not 1 <= seeds <= nmax:
            raise ToolError(f"seeds must be an integer in 1..{nmax}")
        search = self._search_set(names, seeds)
        k = self._next_draft()
        t = time.monotonic()
        ev = sweep_controller(code, search, betas, self.limits, workers=self.workers,
                              backend=self.backend)
        p = self._draft_path(k)
        write_atomic(p.with_suffix(".py"), code)
        write_json(p.with_suffix(".json"), {"betas": betas, "stores": list(names), "seeds": seeds,
                                            "scores": ev.to_json()})
        self._live[k] = (ev, search)
        return self._describe(k, ev, names, seeds, time.monotonic() - t)

    def _describe(self, k, ev, names, seeds, seconds) -> str:
        head = (f"draft {k}: {len(names)} benchmark(s), {seeds} seed(s), betas "
                f"{', '.join(f'{b:g}' for b in ev.betas)}; {seconds:.1f} s")
        if not ev.ok:
            lines = [head, f"FAILED ({ev.error_kind}):", (ev.error or "").strip()[:4000]]
            if ev.failed_episode:
                fe = ev.failed_episode
                lines.append(f"(first failing episode: beta={fe.get('beta')}, {fe.get('store')}, "
                             f"question {fe.get('question')}, replicate {fe.get('replicate')})")
        else:
            lines = [head, format_curve_table(ev.per_beta, ev.store_names)]
            mono = ev.monotone or {}
            lines.append("Token use is monotone in beta." if mono.get("ok", True) else
                         "Token use is NOT monotone in beta: "
                         + "; ".join(mono.get("violations", [])[:6]))
        if ev.stdout:
            lines.append(f"Printed output (truncated):\n{ev.stdout[:1500]}")
        return "\n".join(lines)

    def _draft(self, k: int):
        if k in self._live:
            return self._live[k]
        p = self._draft_path(k)
        meta = read_json(p.with_suffix(".json"))
        if meta is None:
            raise ToolError(f"no draft {k}; evaluate a controller first")
        if not meta["scores"]["ok"]:
            raise ToolError(f"draft {k} failed ({meta['scores']['error_kind']}); it has no traces")
        # a draft evaluated before a resume: evaluate it again (deterministic) for its episodes
        from tts_gym.discovery.controller_eval import sweep_controller
        search = self._search_set(tuple(meta["stores"]), int(meta["seeds"]))
        ev = sweep_controller(p.with_suffix(".py").read_text(), search, meta["betas"],
                              self.limits, workers=self.workers, backend=self.backend)
        self._live[k] = (ev, search)
        return ev, search

    def show_traces(self, draft: int, beta=None, store=None, question=None, seed=None,
                    n: int = 3) -> str:
        from tts_gym.discovery.sandbox.evaluation import select_trace_episodes, summarize_episode
        if not isinstance(draft, int):
            raise ToolError("draft must be an integer")
        ev, search = self._draft(draft)
        if not ev.ok:
            raise ToolError(f"draft {draft} failed ({ev.error_kind}); it has no traces")
        if beta is None:
            beta = ev.betas[len(ev.betas) // 2]
        ep = ev.episodes.get(float(beta)) if isinstance(beta, (int, float)) else None
        if ep is None:
            raise ToolError(f"draft {draft} was evaluated at betas {ev.betas}")
        if store is not None or question is not None or seed is not None:
            if store is None or question is None or seed is None:
                raise ToolError("give store, question and seed together (or none of them)")
            si = list(search.names).index(self._stores([store])[0]) if store in search.names \
                else None
            if si is None:
                raise ToolError(f"draft {draft} was evaluated on {search.names}")
            Q = search.stores[si].num_questions
            if not isinstance(question, int) or not 0 <= question < Q:
                raise ToolError(f"question must be in 0..{Q - 1}")
            if seed not in search.seeds:
                raise ToolError(f"seed must be one of the draft's seeds 0..{len(search.seeds) - 1}")
            import numpy as np
            e = int(np.flatnonzero((search.ep_store == si) & (search.ep_local_question == question)
                                   & (search.ep_replicate == search.seeds.index(seed)))[0])
            picks = [(e, "chosen episode")]
        else:
            if not isinstance(n, int) or not 1 <= n <= 8:
                raise ToolError("n must be in 1..8")
            picks = select_trace_episodes(search, ep, n)
        return "\n\n".join(summarize_episode(search, ep, e, float(beta), why, self.trace_chars)
                           for e, why in picks)

    def read_history(self, label=None) -> str:
        if label is None:
            if not self.history:
                text = "No previous candidates yet."
            else:
                text = "\n".join(candidate_block(c, self.select_beta, False, 0, 0)
                                 for c in self.history)
            if self.baselines:
                rows = ["| baseline | mean acc % | mean tokens |", "|---|---|---|"]
                rows += [f"| {b['label']} | {b['accuracy']:.2f} | {b['tokens']:,.0f} |"
                         for b in self.baselines]
                text += "\n\nBaselines (mean over the search benchmarks):\n" + "\n".join(rows)
            return text
        if not isinstance(label, str):
            raise ToolError("label must be a string such as 'Round 2'")
        want = label.strip().lower()
        for c in self.history:
            if c["label"].lower() == want:
                return candidate_block(c, self.select_beta, True, 40_000, 8_000)
        raise ToolError(f"no candidate labelled {label!r}; labels: "
                        f"{[c['label'] for c in self.history][-20:]}")

    def submit(self, code: str, name=None, notes=None) -> str:
        from tts_gym.discovery.sandbox import check_controller_source
        if not isinstance(code, str) or not code.strip():
            raise ToolError("code must be the complete controller file as a string")
        problem = check_controller_source(code)
        if problem is not None:
            raise ToolError(f"not submitted: {problem}")
        return self._submit(code, name if isinstance(name, str) else None,
                            notes if isinstance(notes, str) else None)


# ------------------------------------------------------------------------------------------------
# the conversation
# ------------------------------------------------------------------------------------------------

def _usage_record(resp: dict, request: dict, prices) -> dict:
    u = response_usage(resp)
    usd = cost_usd(request["model"], u["input_tokens"], u["output_tokens"],
                   u["cache_creation_input_tokens"], u["cache_read_input_tokens"], prices)
    return dict(u, model=resp.get("model") or request["model"], requested_model=request["model"],
                usd=usd, stop_reason=resp.get("stop_reason"))


def _tokens(u: dict) -> int:
    return (u["input_tokens"] + u["output_tokens"] + u["cache_creation_input_tokens"]
            + u["cache_read_input_tokens"])


def _with_cache_breakpoint(messages: list) -> list:
    """A copy of ``messages`` whose last user block carries a prompt-cache breakpoint (the
    conversation prefix is then read from the cache by the next request)."""
    out = [dict(m) for m in messages]
    last = out[-1]
    content = last["content"]
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    content = [dict(b) for b in content]
    content[-1]["cache_control"] = {"type": "ephemeral"}
    last["content"] = content
    return out


def _strip_cache(messages: list) -> list:
    out = []
    for m in messages:
        c = m["content"]
        if isinstance(c, list):
            c = [{k: v for k, v in b.items() if k != "cache_control"} for b in c]
        out.append({"role": m["role"], "content": c})
    return out


def _assistant_content(resp: dict) -> list:
    """The response's content as request blocks (text, tool_use, thinking kept as sent)."""
    keep = []
    for b in resp.get("content") or []:
        if not isinstance(b, dict):
            continue
        t = b.get("type")
        if t == "text":
            keep.append({"type": "text", "text": b.get("text", "")})
        elif t == "tool_use":
            keep.append({"type": "tool_use", "id": b["id"], "name": b["name"],
                         "input": b.get("input") or {}})
        elif t in ("thinking", "redacted_thinking"):
            keep.append({k: v for k, v in b.items() if k != "citations"})
    return keep or [{"type": "text", "text": "(no content)"}]


def run_explorer_round(agent_dir: Path, proposer, base: dict, user: str, tools: ExplorerTools,
                       budget: AgentBudget, max_submissions: int, submissions: Callable[[], int],
                       prices=None, progress=None) -> dict:
    """Run (or resume) one round's conversation; returns the ``done.json`` record.

    ``base``: request parameters without ``messages`` (``model``, ``max_tokens``, ``system``,
    optionally ``temperature``); ``user``: the first user message; ``submissions()``: how many
    candidates the round has so far."""
    progress = progress or (lambda event, **info: None)
    agent_dir = Path(agent_dir)
    done = read_json(agent_dir / "done.json")
    if done is not None:
        return done
    t0 = time.monotonic()
    user_text = (f"{user}\n\n# Budget of this round\nAt most {budget.tool_calls or 'unlimited'} tool "
                 f"calls, {budget.tokens or 'unlimited'} tokens"
                 + (f", ${budget.usd:.2f}" if budget.usd else "") + f"; up to {max_submissions} "
                 f"candidate(s) may be submitted.")
    messages: list = [{"role": "user", "content": user_text}]
    calls = tokens = 0
    usd = 0.0
    usd_known = True
    forced = False
    reason = None
    step = 0
    while True:
        sd = agent_dir / f"step_{step:04d}"
        resp = read_json(sd / "response.json")
        if resp is None:
            over = ((budget.tokens is not None and tokens >= budget.tokens)
                    or (budget.usd is not None and usd >= budget.usd))
            if over:
                reason = "budget"
                break
            request = read_json(sd / "request.json")
            if request is None:
                request = dict(base, tools=TOOLS, messages=_with_cache_breakpoint(messages))
                if forced:
                    request["tool_choice"] = {"type": "tool", "name": "submit"}
                write_json(sd / "request.json", request)
            progress("agent_request", step=step)
            t = time.monotonic()
            resp = proposer.request(request)
            write_json(sd / "response.json", resp)          # first thing after the paid call
            progress("agent_response", step=step, seconds=time.monotonic() - t)
        else:
            request = read_json(sd / "request.json")
        usage = read_json(sd / "usage.json")
        if usage is None:
            usage = _usage_record(resp, request, prices)
            write_json(sd / "usage.json", usage)
        tokens += _tokens(usage)
        if usage.get("usd") is None:
            usd_known = False
        else:
            usd += float(usage["usd"])
        messages = _strip_cache(request["messages"]) + [
            {"role": "assistant", "content": _assistant_content(resp)}]
        uses = [b for b in resp.get("content") or [] if isinstance(b, dict)
                and b.get("type") == "tool_use"]
        if not uses:
            reason = resp.get("stop_reason") or "end_turn"
            if submissions() == 0:      # code written as text instead of a submit call
                code, _ = extract_code(response_text(resp), resp.get("stop_reason"))
                if code is not None:
                    try:
                        tools.submit(code, "from the final message", None)
                    except ToolError:
                        pass
            break
        results = read_json(sd / "tools.json")
        if results is None:
            results = []
            for b in uses:
                name, args = b.get("name"), b.get("input")
                limit_hit = budget.tool_calls is not None and calls >= budget.tool_calls
                if submissions() >= max_submissions:
                    text, err = "the round's candidates are all submitted; no more tool calls", True
                elif limit_hit and name != "submit":
                    text, err = ("tool-call budget of this round exhausted: submit your best "
                                 "controller now"), True
                else:
                    t = time.monotonic()
                    text, err = tools.call(name, args)
                    progress("agent_tool", step=step, name=name, error=err,
                             seconds=time.monotonic() - t, text=text)
                calls += 1
                results.append({"tool_use_id": b["id"], "name": name, "is_error": err,
                                "content": text})
            write_json(sd / "tools.json", results)
        else:
            calls += len(results)
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": r["tool_use_id"], "content": r["content"],
             "is_error": bool(r["is_error"])} for r in results]})
        step += 1
        if forced:                       # the forced submit request has been answered
            reason = "budget"
            break
        if submissions() >= max_submissions:
            reason = "submitted"
            break
        if budget.tool_calls is not None and calls >= budget.tool_calls:
            if submissions() > 0:
                reason = "budget"
                break
            forced = True
    done = {"reason": reason, "requests": len(list(agent_dir.glob("step_*/response.json"))),
            "tool_calls": calls, "tokens": tokens, "usd": usd if usd_known else None,
            "submissions": submissions(), "seconds": time.monotonic() - t0}
    write_json(agent_dir / "done.json", done)
    progress("agent_done", **done)
    return done


def agent_usage(agent_dir: Path) -> dict:
    """Tokens and dollars of a round's conversation (summed over its saved steps)."""
    tot = sum_usage(Path(agent_dir).glob("step_*/usage.json"))
    if tot.pop("usd_unknown"):
        tot["usd"] = None
    return tot



def describe_tool_call(name: str, args: Any) -> str:
    """One line naming a tool call (progress display)."""
    if not isinstance(args, dict):
        return name
    if name == "evaluate_controller":
        b = args.get("betas")
        return (f"evaluate_controller({len(args.get('code') or '')} chars"
                + (f", betas={b}" if b else "") + (f", seeds={args['seeds']}" if "seeds" in args
                                                  else "") + ")")
    if name == "show_traces":
        return f"show_traces(draft {args.get('draft')})"
    if name == "read_history":
        return f"read_history({args.get('label') or ''})"
    if name == "submit":
        return f"submit({args.get('name') or ''})"
    return name


def summarize_result(text: str, limit: int = 100) -> str:
    """First line of a tool result, or its failure gist (progress display)."""
    first = (text or "").strip().splitlines()[:1]
    gist = error_gist(text) if "FAILED" in (text or "") else (first[0] if first else "")
    if gist.startswith("error: "):
        gist = gist[len("error: "):]
    return gist[:limit]
