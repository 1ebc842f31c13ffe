"""The proposer: prompt building and the Anthropic Messages API client.

:func:`build_prompt` turns the search history into a ``(system, user)`` prompt:

* the task and the controller interface (:data:`CONTROLLER_INTERFACE`), with the sandbox's rules;
* the search set (stores, seeds, betas, selection criterion) and the built-in baselines' curves;
* previous candidates: code, beta-sweep accuracy/token curves per store, the token-monotonicity
  verdict, failure messages, and compact execution traces of representative episodes. Within a
  character budget the best candidate and the latest ones are shown in full, older ones as one line.

No held-out data ever enters a prompt (the loop only evaluates held-out stores after the search).

:class:`Proposer` sends one request with the official ``anthropic`` SDK
(``anthropic.Anthropic(api_key=..., base_url=...)``) and returns the raw response as a JSON-ready
dict (saved to disk before anything else happens); :func:`response_text`, :func:`response_usage`
and :func:`extract_code` read it.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["ProposerConfig", "Proposer", "CONTROLLER_INTERFACE", "build_prompt", "extract_code",
           "response_text", "response_usage", "format_curve_table", "MissingAPIKey", "error_gist",
           "candidate_block", "AGENT_TASK"]

CONTROLLER_INTERFACE = '''\
A controller is one Python file that defines a class `Controller`:

```python
class Controller:
    def __init__(self, beta: float):
        """beta in [0, 1] is the single accuracy/cost knob: 0 = cheapest, 1 = most accurate.
        Token use must grow with beta."""

    def solve(self, question) -> str | None:
        """Play one question and return the chosen answer string (or None to abstain)."""
```

`question` gives access to the pre-sampled reasoning branches of one problem (128 branches, in a
random order; a branch is addressed by its index = the order in which you opened it, 0, 1, ...):

* `question.probe_new()` -> `(answer, index, finished)`: open the next branch and read its first
  intermediate answer (costs `question.probe_freq` = 500 tokens). Returns `None` when every branch
  is already opened.
* `question.probe_more(index)` -> `(answer, finished)`: advance an opened, unfinished branch by one
  probe interval (500 tokens) and read its new intermediate answer. When the branch has no
  intermediate probes left, this call finishes it: it costs the remaining tokens of the trajectory
  (possibly 0), returns its final answer and `finished=True`. Calling it on a branch that is not
  opened or already finished is an *inadmissible action* and disqualifies the controller.
* `question.get_new_branch_final_answer()` -> `answer`: open the next branch and read only its final
  answer, at the cost of the whole trajectory (often 10k-40k tokens). `None` when none is left.
* `question.get_seq_and_total_tokens()` -> `(0, tokens_spent_so_far)`;
  `question.get_cost_per_branch_active()` -> tokens charged to each opened branch.
* `question.probe_freq` (500) and `question.num_branches` (128) are plain ints.

The AutoTTS reference's `method.py` format is accepted too: a file without `Controller` that
defines `class OptimalController(LLMDesignedMethod)`, constructed as
`OptimalController(config={"beta": beta})`. Its base class, helpers and seed algorithms can be
imported from `tts_gym.discovery.reference_api`: `LLMDesignedMethod`, `MethodTraceRecorder`,
`_majority_answer`, `_vote_stats` (-> `(winner, top1, top2, total)`), `_beta_majority_confidence`
(`1 - BetaCDF(0.5; top1 + 1, top2 + 1)`), `_weighted_vote`, `_safe_probe_new`, `_safe_probe_more`,
`_safe_full_read`, `ASCMethod`, `ESCMethod`, `Parallel_Probe`. In that format the question's
methods raise the reference's exceptions instead of returning `None` (`ValueError` from
`probe_new`, `IndexError` from `get_new_branch_final_answer` when no branch is left); the
`_safe_*` helpers turn them into `None`.

Answers are exact strings (e.g. "204", "\\\\frac{1}{576}", or "ERR" for an unparseable answer); two
answers are equal iff the strings are equal. `solve` must return the *latest* revealed answer of
some opened branch (or None); any other string is an inadmissible action. Each question is solved
by a fresh module and a fresh `Controller(beta)`: nothing can be kept between questions (state
left on an imported module or class is detected, by re-running a sample of questions alone, and
fails the candidate).

Cost = all tokens charged in the episode. Accuracy = share of questions whose returned answer equals
the gold answer. Intermediate answers are the model's current guess after every 500 tokens of
reasoning; early guesses are noisy, and branches that agree late are more reliable.

Sandbox rules (checked before the code runs; a violation fails the candidate):
* imports only from: math, random, collections, itertools, functools, heapq, bisect, statistics,
  numpy, dataclasses, typing, abc, scipy.stats, tts_gym.discovery.reference_api (no os, sys, io,
  time, ...); no `import *`;
* no `__dunder__` attributes or names except `__init__`, `__name__` and the usual operator methods;
  no `open`, `eval`, `exec`, `compile`, `globals`, `vars`, `str.format` (use f-strings), no
  metaclasses, and `type(x)` with one argument only;
* a time limit per question and a memory limit (see the search setting); exceptions, time-outs
  and inadmissible actions fail the whole candidate, and the error is reported back to you;
* `print` output is collected (first few kB) and shown to you after the evaluation;
* the code must not depend on specific answer strings or on the identity of questions: the final
  controller is also evaluated on other, held-out benchmarks.
'''

SYSTEM_PROMPT = '''\
You are an expert in test-time scaling of reasoning language models, designing controllers that
decide, per question, how many reasoning branches to sample, how deep to continue each of them,
which to stop early, and when to stop and answer. The branches were pre-sampled from a reasoning
model, with the model's intermediate answer recorded every 500 tokens, so a controller is a
program that is replayed exactly against this data.

The goal is a controller whose accuracy/token trade-off (swept with its single `beta` knob) beats
the baselines: higher accuracy at equal tokens, or equal accuracy with fewer tokens. Candidates
are compared by mean accuracy over the search benchmarks at the selection beta; token use must be
non-decreasing in beta.

''' + CONTROLLER_INTERFACE + '''
Reply with a short explanation of the idea (a few sentences), then exactly one ```python code
block holding the complete controller file.
'''

AGENT_TASK = ("# Your task\nDevelop this round's controller with your tools: evaluate drafts on the "
              "search benchmarks, inspect traces, then submit the controller(s) that improve on the "
              "best candidate so far (accuracy at the selection beta, and the whole accuracy/token "
              "curve). Fix the failures reported above if you build on a failed candidate.")


class MissingAPIKey(RuntimeError):
    pass


@dataclass(frozen=True)
class ProposerConfig:
    model: str
    max_tokens: int = 16000
    temperature: float | None = None
    base_url: str | None = None
    timeout_s: float = 900.0
    max_retries: int = 2


class Proposer:
    """One Messages API request per call of :meth:`request`.

    The API key comes from ``api_key`` or ``$ANTHROPIC_API_KEY``; the base URL from ``base_url`` or
    the SDK's default (which honours ``$ANTHROPIC_BASE_URL``)."""

    def __init__(self, config: ProposerConfig, api_key: str | None = None) -> None:
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise MissingAPIKey("set ANTHROPIC_API_KEY (the proposer calls the Anthropic Messages API)")
        self.config = config
        self._kwargs: dict[str, Any] = {"api_key": key, "timeout": config.timeout_s,
                                        "max_retries": config.max_retries}
        if config.base_url:
            self._kwargs["base_url"] = config.base_url
        self._client = None
        self._lock = threading.Lock()

    @property
    def client(self):
        """The ``anthropic.Anthropic`` client, created on first use (the SDK takes seconds to
        import; a resumed run whose responses are all saved never needs it)."""
        with self._lock:
            if self._client is None:
                import anthropic
                self._client = anthropic.Anthropic(**self._kwargs)
            return self._client

    def request_params(self, system: str, user: str) -> dict:
        """Exactly what :meth:`request` sends (saved next to the prompt, reused on resume)."""
        params: dict[str, Any] = {"model": self.config.model, "max_tokens": int(self.config.max_tokens),
                                  "system": system,
                                  "messages": [{"role": "user", "content": user}]}
        if self.config.temperature is not None:
            params["temperature"] = float(self.config.temperature)
        return params

    def request(self, params: dict) -> dict:
        """Send one request; returns the raw Message as a JSON-ready dict."""
        message = self.client.messages.create(**params)
        return message.model_dump(mode="json")


def response_text(response: dict) -> str:
    """Concatenated text blocks of a raw Message dict (thinking and tool blocks are skipped)."""
    parts = [b.get("text", "") for b in response.get("content") or []
             if isinstance(b, dict) and b.get("type") == "text"]
    return "\n".join(parts)


def response_usage(response: dict) -> dict:
    """Token counts of a raw Message dict (missing fields as 0)."""
    u = response.get("usage") or {}
    return {"input_tokens": int(u.get("input_tokens") or 0),
            "output_tokens": int(u.get("output_tokens") or 0),
            "cache_creation_input_tokens": int(u.get("cache_creation_input_tokens") or 0),
            "cache_read_input_tokens": int(u.get("cache_read_input_tokens") or 0)}


_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_PY_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(text: str, stop_reason: str | None = None) -> tuple[str | None, str | None]:
    """``(code, error)``: the ```python block of a response that defines ``class Controller`` or
    ``class OptimalController`` (the last such block when there are several; any fenced block as a
    fall-back)."""
    blocks = _PY_FENCE.findall(text) or _FENCE.findall(text)
    if not blocks:
        open_fence = re.search(r"```[ \t]*(?:python|py|python3)[ \t]*\n(.*)\Z", text, re.DOTALL)
        if open_fence and stop_reason == "max_tokens":
            return None, ("the response was cut off by max_tokens inside the code block; "
                          "write a shorter controller")
        return None, "the response contains no ```python code block"
    with_class = [b for b in blocks
                  if re.search(r"^class\s+(Optimal)?Controller\b", b, re.MULTILINE)]
    code = (with_class or blocks)[-1]
    return code.strip("\n") + "\n", None


# ------------------------------------------------------------------------------------------------
# prompt building
# ------------------------------------------------------------------------------------------------

def format_curve_table(per_beta: Sequence[dict], stores: Sequence[str] | None = None) -> str:
    """Markdown table: one row per beta, mean accuracy/tokens then per-store columns."""
    if not per_beta:
        return "(no scores)"
    stores = list(stores if stores is not None else per_beta[0].get("stores", {}))
    head = "| beta | mean acc % | mean tokens |" + "".join(f" {s} acc / tokens |" for s in stores)
    sep = "|---|---|---|" + "---|" * len(stores)
    rows = [head, sep]
    for p in sorted(per_beta, key=lambda p: p["beta"]):
        cells = "".join(f" {p['stores'][s]['accuracy']:.2f} / {p['stores'][s]['tokens']:,.0f} |"
                        for s in stores if s in p.get("stores", {}))
        rows.append(f"| {p['beta']:g} | {p['accuracy']:.2f} | {p['tokens']:,.0f} |{cells}")
    return "\n".join(rows)


def _baseline_table(baselines: Sequence[dict]) -> str:
    if not baselines:
        return ""
    rows = ["| baseline | mean acc % | mean tokens |", "|---|---|---|"]
    for b in baselines:
        rows.append(f"| {b['label']} | {b['accuracy']:.2f} | {b['tokens']:,.0f} |")
    return "\n".join(rows)


def error_gist(err: str | None, limit: int = 200) -> str:
    """One line of a failure message: its last ``...Error: ...`` line, else its first line(s)."""
    lines = [ln.strip() for ln in (err or "").strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    errs = [ln for ln in lines if re.match(r"\w+(Error|Exception|Exit|Timeout)\b", ln)]
    if errs:
        gist = errs[-1]
    elif lines[0].endswith(":") and len(lines) > 1:
        gist = f"{lines[0]} {lines[1]}"
    else:
        gist = lines[0]
    return gist if len(gist) <= limit else gist[:limit - 3] + "..."


def _headline(c: dict, beta: float) -> str:
    sc = c.get("scores") or {}
    if not sc.get("ok"):
        return f"FAILED ({sc.get('error_kind') or 'error'}): {error_gist(sc.get('error'))}"
    pt = next((p for p in sc.get("per_beta", []) if abs(p["beta"] - beta) < 1e-12), None)
    if pt is None:
        return "ok"
    mono = "" if (sc.get("monotone") or {}).get("ok", True) else "; tokens NOT monotone in beta"
    return f"{pt['accuracy']:.2f}% at {pt['tokens']:,.0f} tokens (beta={beta:g}){mono}"


def candidate_block(c: dict, beta: float, full: bool, code_chars: int, trace_chars: int) -> str:
    """One candidate of the history as markdown: its headline, and in ``full`` its curves,
    failure, printed output, code (up to ``code_chars``) and traces (up to ``trace_chars``)."""
    sc = c.get("scores") or {}
    lines = [f"## {c['label']}: {_headline(c, beta)}"]
    if not full:
        return lines[0]
    if c.get("note"):
        lines.append(c["note"])
    if sc.get("ok"):
        lines.append(format_curve_table(sc.get("per_beta", []), sc.get("stores")))
        mono = sc.get("monotone") or {}
        if mono.get("ok", True):
            lines.append("Token use is monotone in beta.")
        else:
            lines.append("Token use is NOT monotone in beta: " + "; ".join(mono.get("violations", [])[:6]))
    else:
        err = (sc.get("error") or "unknown error").strip()
        lines.append(f"Failure ({sc.get('error_kind')}):\n```\n{err[:3000]}\n```")
        if sc.get("failed_episode"):
            fe = sc["failed_episode"]
            lines.append(f"(first failing episode: beta={fe.get('beta')}, {fe.get('store')}, "
                         f"question {fe.get('question')})")
    if sc.get("stdout"):
        lines.append(f"Printed output (truncated):\n```\n{sc['stdout'][:1500]}\n```")
    code = c.get("code")
    if code:
        if len(code) > code_chars:
            code = code[:code_chars] + "\n# [... truncated]\n"
        lines.append(f"```python\n{code.rstrip()}\n```")
    traces = (c.get("traces") or "").strip()
    if traces and trace_chars > 0:
        if len(traces) > trace_chars:
            traces = traces[:trace_chars].rsplit("\n", 1)[0] + "\n[... traces truncated]"
        lines.append("Execution traces of representative episodes:\n" + traces)
    return "\n\n".join(lines)


def _score_key(c: dict, beta: float):
    sc = c.get("scores") or {}
    if not sc.get("ok"):
        return None
    pt = next((p for p in sc.get("per_beta", []) if abs(p["beta"] - beta) < 1e-12), None)
    if pt is None:
        return None
    return (pt["accuracy"], -pt["tokens"])


def build_prompt(history: Sequence[dict], *, search: dict, baselines: Sequence[dict] = (),
                 select_beta: float = 0.5, max_chars: int = 120_000, full_recent: int = 3,
                 code_chars: int = 14_000, trace_chars: int = 5_000,
                 task: str | None = None) -> tuple[str, str]:
    """``(system, user)`` prompt for the next proposal.

    ``history``: candidate records in chronological order, each a dict with ``label``, ``code``
    (or ``None``), ``scores`` (:meth:`ControllerEvaluation.to_json`), ``traces`` (text) and
    optionally ``note``. ``search``: ``{"stores": [...], "seeds": int, "betas": [...]}`` and
    optionally ``episode_timeout_s`` / ``memory_mb`` (shown as the sandbox limits).
    ``baselines``: ``[{"label", "accuracy", "tokens"}]`` (mean over the search stores).
    ``task``: the closing task paragraph (default: the single-shot proposal task; the explorer
    passes :data:`AGENT_TASK`).
    """
    intro = [
        "# Search setting",
        f"Search benchmarks: {', '.join(search['stores'])} (30 questions each, 128 pre-sampled "
        f"branches per question). Each candidate is evaluated at beta in "
        f"{{{', '.join(f'{b:g}' for b in search['betas'])}}} on {search['seeds']} random branch orders "
        f"per question; reported: accuracy in % and mean tokens per question. Candidates are ranked by "
        f"mean accuracy at beta={select_beta:g}.",
    ]
    if search.get("episode_timeout_s") or search.get("memory_mb"):
        intro.append(f"Sandbox limits: {search.get('episode_timeout_s', '?'):g} s per question, "
                     f"about {search.get('memory_mb', '?')} MB of memory.")
    if baselines:
        intro += ["", "Built-in baselines on the same benchmarks and branch orders (mean over the "
                      "benchmarks):", _baseline_table(baselines)]
    head = "\n".join(intro)
    task_override = task
    task = ("# Your task\nPropose a new controller that improves on the best candidate so far "
            "(accuracy at the selection beta, and the whole accuracy/token curve). Fix the failures "
            "reported above if you build on a failed candidate. Reply with a short explanation, then "
            "exactly one ```python block with the complete file.")
    if not history:
        task = ("# Your task\nThere are no previous candidates yet. Propose a first controller. Reply "
                "with a short explanation, then exactly one ```python block with the complete file.")
    if task_override is not None:
        task = task_override
    keyed = [(i, _score_key(c, select_beta)) for i, c in enumerate(history)]
    ranked = sorted((k for k in keyed if k[1] is not None), key=lambda k: k[1], reverse=True)
    best = {ranked[0][0]} if ranked else set()
    recent = set(range(max(0, len(history) - full_recent), len(history)))
    full = best | recent

    def render(tc: int, cc: int, fullset: set) -> str:
        blocks = [candidate_block(c, select_beta, i in fullset, cc, tc) for i, c in enumerate(history)]
        parts = [head]
        if history:
            best_line = (f"Best so far: {history[ranked[0][0]]['label']}." if ranked
                         else "No candidate has succeeded yet.")
            parts += ["# Previous candidates (chronological)", best_line, *blocks]
        parts.append(task)
        return "\n\n".join(parts)

    user = render(trace_chars, code_chars, full)
    # shrink to the budget: traces first, then code, then fewer full entries
    for tc, cc in ((trace_chars // 2, code_chars), (0, code_chars), (0, code_chars // 2)):
        if len(user) <= max_chars:
            break
        user = render(tc, cc, full)
    fullset = set(full)
    while len(user) > max_chars and len(fullset) > 1:
        fullset.discard(min(fullset - best) if fullset - best else min(fullset))
        user = render(0, code_chars // 2, fullset)
    return SYSTEM_PROMPT, user
