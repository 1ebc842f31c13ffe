"""Run a policy live over a list of questions: answers, costs, a report, and a replay store.

:func:`run` plays every question with a :class:`~tts_gym.online.episode.LiveEpisode` (the policy
object that runs on replay, unchanged), and

* reports per question the committed answer, correctness when a gold answer is given, the tokens
  charged (the replay's accounting), the answer-forcing tokens (probes and forced finals) apart,
  the tokens generated ahead of the policy that it never read, requests and wall time
  (:class:`QuestionResult`, :class:`RunResult` with JSON and CSV writers);
* records what it sampled as a replay store (:attr:`RunResult.store`; ``record=PATH`` also writes
  it, HDF5): every trajectory that reached
  its end, with the answers at all of its boundaries (boundaries the policy did not probe, e.g. of
  ``SAMPLE``\\ d branches, are probed after the question is answered, counted apart as
  ``record``); ``record_mode="complete"`` also finishes the branches the policy left unfinished,
  so the store holds every trajectory the run opened;
* checkpoints every finished question (``checkpoint_dir``; the collector's
  :class:`~tts_gym.collect.collector.CheckpointDir`): a run stopped by a dead server or an
  interrupt resumes from there when rerun with the same settings.

The server is any OpenAI-compatible ``/v1/completions`` endpoint (vLLM, SGLang, llama.cpp);
:class:`Server` holds where it is and the client's limits (in-flight requests, timeout, retries).
"""
from __future__ import annotations

import asyncio
import copy
import csv
import hashlib
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from tts_gym.collect.client import CompletionError, CompletionsClient, Usage
from tts_gym.collect.collector import (DEFAULT_TEMPLATE, CheckpointDir, CollectConfig, ProgressDisplay, Question,
                                       load_questions, run_concurrently)
from tts_gym.collect.trajectory import CollectError
from tts_gym.online.episode import LiveActionError, LiveEpisode

__all__ = ["Server", "QuestionResult", "RunResult", "LiveRunError", "run", "run_async", "resolve_policy",
           "as_questions", "RECORD_MODES"]

RECORD_MODES = ("finished", "complete", "none")
_PLAY_KINDS = ("generate", "probe", "final")


class LiveRunError(RuntimeError):
    """A live run cannot start or go on (bad input, a server that stopped answering)."""


@dataclass
class Server:
    """An OpenAI-compatible completions server and the client's limits towards it."""
    base_url: str
    model: str
    api_key: str | None = None
    concurrency: int = 16          # requests in flight at most
    timeout: float = 600.0         # seconds per request
    max_retries: int = 8           # on connection errors, timeouts, 5xx, 408, 429
    backoff: float = 0.5           # first backoff delay (s), doubled per retry, with jitter

    def client(self, extra_body: dict | None = None) -> CompletionsClient:
        return CompletionsClient(self.base_url, self.model, concurrency=self.concurrency, timeout=self.timeout,
                                 max_retries=self.max_retries, backoff_base=self.backoff, api_key=self.api_key,
                                 extra_body=extra_body)


@dataclass
class QuestionResult:
    index: int
    id: str
    answer: str | None
    gold: str | None
    correct: bool | None           # None without a gold answer
    tokens: int                    # charged as the replay charges them (generated tokens the policy read)
    probe_tokens: int              # answer-forcing tokens (probes, forced finals) of the answers it was shown
    generated_tokens: int          # completion tokens of every request made while playing
    speculative_tokens: int        # ... of which the policy read nothing (requested ahead of it)
    requests: int                  # requests made while playing
    prompt_tokens: int
    wall_s: float                  # from the first action to the committed answer
    steps: int
    opened: int
    finished: int
    pruned: int
    recorded_branches: int = 0
    record_requests: int = 0
    record_tokens: int = 0         # completion tokens of the recording requests
    usage: dict = field(default_factory=dict)   # play usage by kind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QuestionResult":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


CSV_FIELDS = ("index", "id", "answer", "gold", "correct", "tokens", "probe_tokens", "generated_tokens",
              "speculative_tokens", "requests", "prompt_tokens", "wall_s", "steps", "opened", "finished",
              "pruned", "recorded_branches")


@dataclass
class RunResult:
    policy: str
    params: dict
    config: CollectConfig
    results: list[QuestionResult]
    elapsed: float
    resumed: int
    usage: Usage                   # this run's requests (playing and recording)
    store: Any = None              # the recorded ReplayStore (None without record)
    record_path: Path | None = None
    options: dict = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        r = self.results
        n = len(r)
        graded = [x for x in r if x.correct is not None]
        mean = (lambda xs: sum(xs) / n if n else 0.0)  # noqa: E731
        out = {"policy": self.policy, "params": self.params, "questions": n,
               "answered": sum(x.answer is not None for x in r),
               "graded": len(graded), "correct": sum(bool(x.correct) for x in graded),
               "accuracy": (100.0 * sum(bool(x.correct) for x in graded) / len(graded)) if graded else None,
               "tokens": sum(x.tokens for x in r), "tokens_per_question": mean([x.tokens for x in r]),
               "probe_tokens_per_question": mean([x.probe_tokens for x in r]),
               "speculative_tokens_per_question": mean([x.speculative_tokens for x in r]),
               "requests_per_question": mean([x.requests for x in r]),
               "wall_s_per_question": mean([x.wall_s for x in r]),
               "elapsed_s": self.elapsed, "resumed": self.resumed,
               "recorded_branches": sum(x.recorded_branches for x in r),
               "record": str(self.record_path) if self.record_path else None}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "config": self.config.to_dict(), "options": self.options,
                "usage": self.usage.to_dict(), "questions": [x.to_dict() for x in self.results]}

    def write_json(self, path: str | os.PathLike) -> Path:
        return _atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def write_csv(self, path: str | os.PathLike) -> Path:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(CSV_FIELDS)
        for x in self.results:
            d = x.to_dict()
            w.writerow(["" if d[k] is None else (f"{d[k]:.3f}" if k == "wall_s" else d[k]) for k in CSV_FIELDS])
        return _atomic_write_text(Path(path), buf.getvalue())

    def format_summary(self) -> list[str]:
        s = self.summary()
        acc = f"accuracy {s['accuracy']:.2f} % ({s['correct']}/{s['graded']})" if s["graded"] else "no gold answers"
        u = self.usage
        lines = [f"{self.policy}: {s['questions']} questions, {acc}",
                 f"per question: {s['tokens_per_question']:,.1f} tokens charged, "
                 f"{s['probe_tokens_per_question']:,.1f} answer-forcing tokens, "
                 f"{s['speculative_tokens_per_question']:,.1f} generated ahead and unread, "
                 f"{s['requests_per_question']:,.1f} requests, {s['wall_s_per_question']:.2f} s",
                 f"this run: {u.requests:,} requests, {u.completion_tokens:,} completion tokens, "
                 f"{u.retries} retries, {self.elapsed:.1f} s ({self.resumed} questions from checkpoints)"]
        if self.record_path:
            lines.append(f"recorded {s['recorded_branches']} trajectories to {self.record_path}")
        return lines


def _atomic_write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


# -- inputs ----------------------------------------------------------------------------------------
def as_questions(questions, limit: int | None = None) -> list[Question]:
    """A JSONL path (:func:`~tts_gym.collect.collector.load_questions`, gold answers optional), a list
    of :class:`~tts_gym.collect.collector.Question`, of strings, or of dicts with ``question`` (and
    optionally ``gold_answer``/``answer``, ``id``)."""
    if isinstance(questions, (str, os.PathLike)):
        try:
            return load_questions(questions, limit, require_gold=False)
        except CollectError as exc:
            raise LiveRunError(str(exc)) from None
    out: list[Question] = []
    for i, q in enumerate(questions):
        if isinstance(q, Question):
            q = Question(index=len(out), id=q.id, question=q.question, gold_answer=q.gold_answer)
        elif isinstance(q, str):
            q = Question(index=len(out), id=str(i), question=q, gold_answer=None)
        elif isinstance(q, dict):
            text = next((q[k] for k in ("question", "problem", "prompt") if k in q), None)
            if not isinstance(text, str) or not text.strip():
                raise LiveRunError(f"question {i}: no question text (keys question, problem, prompt)")
            g = next((q[k] for k in ("gold_answer", "answer", "gold") if k in q), None)
            q = Question(index=len(out), id=str(q.get("id", i)), question=text,
                         gold_answer=None if g is None else str(g).strip())
        else:
            raise LiveRunError(f"question {i}: expected a Question, a string or a dict, got {type(q).__name__}")
        out.append(q)
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise LiveRunError("no questions")
    ids = [q.id for q in out]
    if len(set(ids)) != len(ids):
        raise LiveRunError("question ids are not unique")
    return out


def resolve_policy(policy, params: dict | None = None):
    """A policy object for live play: a :class:`~tts_gym.policies.base.Policy` (as is), a registry
    name of a baseline (``"cmc"``, with ``params``), an AutoTTS controller (``solve``) or a trained
    agent policy. Raw stable-baselines3 models are refused: they act on the env's observation,
    whose normalisers a live episode cannot know (wrap them as an agent, :mod:`tts_gym.rl.agent`)."""
    from tts_gym.policies import SB3Policy, as_policy
    if isinstance(policy, str):
        from tts_gym.policies.baselines import make_policy
        return make_policy(policy, **dict(params or {}))
    if params:
        raise ValueError("params apply to a policy given by name only")
    pol = as_policy(policy)
    if isinstance(pol, SB3Policy):
        raise ValueError("a raw stable-baselines3 model acts on the env's normalised observation, which a live "
                         "episode cannot build; save it as an agent (tts_gym.rl.save_agent) and run it with "
                         "tts_gym.rl.load_agent_policy")
    return pol


def _policy_width(policy) -> int | None:
    """The most positions the policy opens, when its parameters say it (caps the prefetch of unopened
    positions; never what the policy may do)."""
    sched = getattr(policy, "schedule", None)
    if isinstance(sched, dict) and "max_branch_use" in sched:
        return int(sched["max_branch_use"])
    params = getattr(policy, "params", None) or {}
    for k in ("max_samples", "num_chains"):
        if k in params:
            return int(params[k])
    return None


def _policy_identity(policy) -> tuple[str, dict]:
    name = str(getattr(policy, "name", None) or type(policy).__name__)
    params = getattr(policy, "params", None)
    params = dict(params) if isinstance(params, dict) else {}
    return name, json.loads(json.dumps(params, default=str))


class _RunSpec:
    """What decides a live run's results (checkpoints are only reused under the same spec)."""

    def __init__(self, config: CollectConfig, options: dict):
        self.config = config
        self.options = options

    def to_dict(self) -> dict:
        return {"collect_config": self.config.to_dict(), "live": self.options}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- progress ----------------------------------------------------------------------------------------
class _Progress(ProgressDisplay):
    """Bar over the questions; the plain lines give each answered question's answer and tokens."""

    def __init__(self, mode: str, total: int, client: CompletionsClient, stream=None):
        super().__init__(mode, client, stream, unit="questions", total=total, eta=False)
        self.done = 0
        self.correct = 0
        self.graded = 0
        self.tokens = 0
        self.total = total

    def _rates(self) -> str:
        u = self.client.usage
        dt = self.elapsed()
        acc = f"acc {100.0 * self.correct / self.graded:.1f}% | " if self.graded else ""
        return (f"{acc}{self.tokens / max(self.done, 1):,.0f} tok/q | {u.requests:,} req | "
                f"{u.completion_tokens / dt:,.0f} tok/s | {self.client.in_flight} in flight")

    def question_done(self, r: QuestionResult) -> None:
        self.done += 1
        self.tokens += r.tokens
        if r.correct is not None:
            self.graded += 1
            self.correct += bool(r.correct)
        if self.mode == "plain":
            mark = "" if r.correct is None else (" correct" if r.correct else " wrong")
            print(f"run: question {r.id} ({self.done}/{self.total}): answer {r.answer!r}{mark}, {r.tokens:,} tokens, "
                  f"{r.requests} requests, {r.wall_s:.1f} s | {self._rates()}", file=self.stream, flush=True)
        elif self._bar is not None:
            self._bar.update(self._task, advance=1, description=self._rates())


# -- one question --------------------------------------------------------------------------------------
def _play_usage(usage: Usage) -> dict:
    return {k: dict(v) for k, v in usage.by_kind.items() if k in _PLAY_KINDS}


async def _record(ep: LiveEpisode, mode: str, usage: Usage) -> list[list]:
    """The ended trajectories of ``ep`` as store branch triples (position order), after asking for the
    answers they still lack; ``mode="complete"`` first finishes the opened, unfinished ones."""
    trajs = ep.trajectories
    for t in trajs.values():
        t.usage = usage
    if mode == "complete":
        await asyncio.gather(*(trajs[p].run_to_end() for p in ep.opened() if p in trajs and not trajs[p].ended))
    ended = [p for p in sorted(trajs) if trajs[p].ended]

    async def branch(p: int) -> list:
        t = trajs[p]
        probes = await asyncio.gather(*(t.probe(k) for k in range(1, t.boundaries + 1)))
        return [list(probes), int(t.tokens), await t.final()]

    return list(await asyncio.gather(*(branch(p) for p in ended))), ended


async def _play_question(client: CompletionsClient, config: CollectConfig, q: Question, policy, opts: dict,
                         record_mode: str) -> tuple[QuestionResult, dict | None]:
    from tts_gym.core.orders import reference_permutation
    M = opts["max_branches"]
    branch_ids = None
    if opts["shuffle_seed"] is not None:
        branch_ids = reference_permutation(int(opts["shuffle_seed"]), M)
    usage = Usage()
    ep = LiveEpisode(client, config, q, max_branches=M, branch_ids=branch_ids, fused=opts["fused"],
                     token_budget=opts["token_budget"], prefetch=opts["prefetch"], lookahead=opts["lookahead"],
                     open_limit=_policy_width(policy), usage=usage)
    t0 = time.perf_counter()
    try:
        answer = await ep.play(policy, max_steps=opts["max_steps"])
        wall = time.perf_counter() - t0
        played = Usage()
        played.merge(usage)
        record = None
        rec_usage = Usage()
        if record_mode != "none":
            branches, positions = await _record(ep, record_mode, rec_usage)
            if branches:
                record = {"question": q.question, "gold_answer": q.gold_answer if q.gold_answer is not None else "",
                          "probe_freq": config.interval, "each_branch": branches,
                          "final_answers_trace": [b[2] for b in branches],
                          "branch_ids": [ep.branch_ids[p] for p in positions]}
    finally:
        ep.cancel_pending(everything=True)
    generated = played.completion_tokens
    s = ep.summary()
    gold = q.gold_answer
    res = QuestionResult(
        index=q.index, id=q.id, answer=answer, gold=gold, correct=None if gold is None else (answer == gold),
        tokens=ep.cost, probe_tokens=ep.revealed_forcing_tokens, generated_tokens=generated,
        speculative_tokens=generated - ep.cost - ep.revealed_forcing_tokens, requests=played.requests,
        prompt_tokens=played.prompt_tokens, wall_s=wall, steps=s["steps"], opened=s["opened"],
        finished=s["finished"], pruned=s["pruned"],
        recorded_branches=len(record["each_branch"]) if record else 0, record_requests=rec_usage.requests,
        record_tokens=rec_usage.completion_tokens, usage=_play_usage(played))
    return res, record


# -- the run ---------------------------------------------------------------------------------------------
async def run_async(policy, questions: list[Question], server: Server, config: CollectConfig, *,
                    options: dict, questions_in_flight: int = 1, record_mode: str = "finished",
                    checkpoint_dir=None, restart: bool = False, progress: str = "none",
                    on_question: Callable[[QuestionResult], None] | None = None):
    """The event-loop part of :func:`run`: returns ``(results, records, resumed, run usage)``."""
    # prefetching changes the wall time only: a run may resume with other prefetch settings
    spec = _RunSpec(config, {k: v for k, v in options.items() if k not in ("prefetch", "lookahead")})
    done: dict[int, dict] = {}
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = CheckpointDir(checkpoint_dir)
        try:
            ckpt.open(spec, restart=restart)
            done = ckpt.load(questions)
        except CollectError as exc:
            raise LiveRunError(str(exc)) from None
    pending = [q for q in questions if q.index not in done]
    slots = max(1, int(questions_in_flight))
    policies = [policy]
    for _ in range(1, min(slots, len(pending))):
        try:
            policies.append(copy.deepcopy(policy))
        except Exception as exc:  # noqa: BLE001 - any failure to copy means: one question at a time
            raise LiveRunError(f"questions_in_flight={slots} plays questions with copies of the policy, and "
                               f"{type(policy).__name__} cannot be copied ({exc}); use questions_in_flight=1") from None
    async with server.client(config.extra_body) as client:
        free: asyncio.Queue = asyncio.Queue()
        for p in policies:
            free.put_nowait(p)
        with _Progress(progress, len(pending), client) as prog:
            async def one(q: Question) -> None:
                pol = await free.get()
                try:
                    res, record = await _play_question(client, config, q, pol, options, record_mode)
                finally:
                    free.put_nowait(pol)
                entry = {"result": res.to_dict(), "record": record}
                if ckpt is not None:
                    ckpt.save(q, entry, Usage.from_dict({"by_kind": res.usage}), {})
                done[q.index] = {"record": entry}
                prog.question_done(res)
                if on_question is not None:
                    on_question(res)

            await run_concurrently(one(q) for q in pending)
        run_usage = client.usage
    results, records = [], []
    for q in questions:
        entry = done[q.index]["record"]
        results.append(QuestionResult.from_dict(entry["result"]))
        records.append(entry["record"])
    return results, records, len(questions) - len(pending), run_usage


def _config_from(model: str, config: CollectConfig | None, sampling: dict) -> CollectConfig:
    if config is not None:
        if sampling:
            raise ValueError(f"give either config or sampling options ({', '.join(sorted(sampling))}), not both")
        return config
    template = sampling.pop("template", DEFAULT_TEMPLATE)
    return CollectConfig.with_template(model, template, **sampling)


def run(policy, questions, server: Server | str, *, model: str | None = None, config: CollectConfig | None = None,
        params: dict | None = None, max_branches: int | None = None, fused: bool = True,
        token_budget: int | None = None, shuffle_seed: int | None = None, prefetch: bool = True,
        lookahead: int = 8, questions_in_flight: int = 1, record: str | os.PathLike | bool | None = True,
        record_mode: str = "finished", append: bool = False, store_model: str | None = None,
        benchmark: str = "live", checkpoint_dir: str | os.PathLike | None = None, restart: bool = False,
        keep_checkpoints: bool = False, progress: str = "none", max_steps: int | None = 1_000_000,
        limit: int | None = None, **sampling) -> RunResult:
    """Play ``policy`` live on ``questions`` against ``server``; see the module docstring.

    ``policy``: a policy object (the one that runs on replay), a baseline's registry name with
    ``params`` (``run("cmc", qs, server, params={"beta": 0.5})``), an AutoTTS controller or a
    trained agent policy. ``questions``: a JSONL path or a list (:func:`as_questions`). ``server``:
    a :class:`Server` or a base URL (then ``model`` names the served model). Sampling: ``config``
    (a :class:`~tts_gym.collect.collector.CollectConfig`) or its fields as keyword arguments
    (``interval``, ``max_tokens``, ``temperature``, ``seed``, ``template``, ...; ``branches`` is the
    number of positions a policy may open). ``shuffle_seed``: position ``p`` plays trajectory
    ``reference_permutation(shuffle_seed, M)[p]`` instead of ``p`` (the episode
    ``(question, shuffle_seed)`` of a store collected with the same configuration). ``prefetch``,
    ``lookahead``: request ahead of the policy (wall time only; see
    :mod:`tts_gym.online.episode`). ``record``: the run's replay store is built (``True``, the
    default: :attr:`RunResult.store`), also written to this HDF5 path, or not built (``False``);
    ``record_mode``: ``"finished"`` or ``"complete"``. ``checkpoint_dir``: resumable
    per-question checkpoints (default ``RECORD.ckpt`` when recording; removed after success unless
    ``keep_checkpoints``). ``progress``: ``"auto"``, ``"rich"``, ``"plain"`` or ``"none"``.
    """
    from tts_gym.data.autotts import records_to_store
    from tts_gym.data.hdf5 import save_stores

    if record_mode not in RECORD_MODES[:2]:
        raise ValueError(f"record_mode must be one of {RECORD_MODES[:2]}, got {record_mode!r}")
    if isinstance(server, str):
        if not model:
            raise ValueError("server given as a URL: pass model= (the name the server serves)")
        server = Server(server, model)
    cfg = _config_from(server.model, config, dict(sampling))
    qs = as_questions(questions, limit)
    pol = resolve_policy(policy, params)
    name, pparams = _policy_identity(pol)
    M = int(max_branches if max_branches is not None else cfg.branches)
    options = {"policy": name, "params": pparams, "max_branches": M, "fused": bool(fused),
               "token_budget": int(token_budget) if token_budget else None,
               "shuffle_seed": None if shuffle_seed is None else int(shuffle_seed),
               "record_mode": record_mode if record not in (None, False) else "none", "max_steps": max_steps}
    run_opts = dict(options, prefetch=bool(prefetch), lookahead=int(lookahead))
    record_path = Path(record) if isinstance(record, (str, os.PathLike)) else None
    if checkpoint_dir is None and record_path is not None:
        checkpoint_dir = record_path.with_name(record_path.name + ".ckpt")
    t0 = time.perf_counter()
    try:
        results, records, resumed, usage = asyncio.run(run_async(
            pol, qs, server, cfg, options=run_opts, questions_in_flight=questions_in_flight,
            record_mode=options["record_mode"], checkpoint_dir=checkpoint_dir, restart=restart,
            progress=progress))
    except CompletionError as exc:
        where = (f"; the questions answered so far are checkpointed in {checkpoint_dir}: rerun the same "
                 f"command to resume" if checkpoint_dir is not None else "")
        raise LiveRunError(f"the server stopped answering: {exc}{where}") from None
    except LiveActionError as exc:
        raise LiveRunError(f"policy {name}: {exc}") from None
    elapsed = time.perf_counter() - t0
    store = None
    if options["record_mode"] != "none":
        kept = [r for r in records if r is not None]
        if kept:
            from tts_gym import __version__
            model_name = store_model or cfg.model.rstrip("/").split("/")[-1]
            ids = {}
            clean = []
            for r in kept:
                r = dict(r)
                ids[len(clean)] = r.pop("branch_ids")
                clean.append(r)
            attrs = {"source": "tts-gym run", "tts_gym_version": __version__, "server_model": cfg.model,
                     "collect_config": json.dumps(cfg.to_dict(), sort_keys=True, ensure_ascii=False),
                     "live_run": json.dumps(options, sort_keys=True, default=str),
                     "branch_ids": json.dumps(ids), "answer_merging": "none"}
            store = records_to_store(clean, model_name, benchmark, file=str(record_path or "<live run>"), attrs=attrs)
            if record_path is not None:
                save_stores(record_path, store, append=append)
        else:
            record_path = None
    if checkpoint_dir is not None and not keep_checkpoints:
        CheckpointDir(checkpoint_dir).remove()
    return RunResult(policy=name, params=pparams, config=cfg, results=results, elapsed=elapsed, resumed=resumed,
                     usage=usage, store=store, record_path=record_path, options=run_opts)
