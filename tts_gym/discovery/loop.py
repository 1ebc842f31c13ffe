"""The discovery loop: propose a controller, evaluate it in the sandbox, feed the results back.

:func:`run_discovery` (driven by ``tts-gym discover`` and ``agents/discover.py``):

1. loads the search stores (default: AIME24 of the four Qwen3 models, through
   :func:`tts_gym.data.resolve.resolve_stores`; ``TTS_GYM_DATA`` or ``--data``) and, once, the built-in
   baselines' curves on them (compiled kernels, :func:`tts_gym.evaluation.protocol.evaluate_compiled`);
2. evaluates the seed controllers, if any (no API cost);
3. per round, with ``proposer="agent"`` (the default; the paper's explorer): runs the explorer
   conversation (:mod:`tts_gym.discovery.explorer`) -- the agent evaluates drafts in the sandbox,
   reads traces and the history through tools, within the round's budget, and submits up to ``K``
   candidates; with ``proposer="single"``: builds the prompt from the history
   (:func:`tts_gym.discovery.proposer.build_prompt`) and sends ``K`` requests. Either way every raw
   response is **saved before anything else happens**; then each candidate is evaluated in the
   sandbox over the beta sweep (one child per store and group of betas, on every core or as Ray
   tasks), scores and trace summaries are written, and the round is marked finished;
4. selects the best candidate (highest mean search accuracy at ``select_beta``; fewer tokens break
   ties) and reports it at ``final_seeds`` seeds on the search stores and, for the first time in
   the run, on the held-out stores, next to the baselines.

Held-out stores are loaded only in step 4: they never reach the proposer or a search-time sandbox.
Everything is written under the run directory (:mod:`tts_gym.discovery.history`); ``resume=True``
continues after a crash without redoing finished rounds or repeating a paid request.

Candidates run in the operating-system sandbox (:mod:`tts_gym.discovery.sandbox`). Where none can
be set up the run is refused before any request, unless ``allow_unsandboxed``; each session's
sandbox is recorded in ``config.json`` (``sandbox_sessions``) and reported in the summary
(``summary["sandbox"]``).
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tts_gym.data.catalog import HELDOUT_BENCHMARKS, MODELS, SEARCH_BENCHMARKS
from tts_gym.discovery.controller_eval import betas_per_job
from tts_gym.discovery.history import RunDir, read_json, write_atomic, write_json
from tts_gym.discovery.prices import Price, cost_usd, price_for
from tts_gym.discovery.proposer import (
    AGENT_TASK, Proposer, build_prompt, extract_code, response_text, response_usage,
)
from tts_gym.discovery.sandbox.confinement import require as require_sandbox
from tts_gym.discovery.sandbox.evaluation import (
    DEFAULT_BETAS, ControllerEvaluation, SearchSet, evaluate_controller,
)
from tts_gym.discovery.sandbox.runner import SandboxLimits

__all__ = ["DiscoveryConfig", "run_discovery", "baseline_curves", "select_best", "RESUME_KEYS"]

RESUME_KEYS = ("model", "candidates_per_round", "betas", "seeds", "select_beta", "models",
               "search_benchmarks", "data", "proposer")
"""Settings that identify a run; ``--resume`` refuses to continue with different values."""

_BEFORE_THE_SETTING = {"proposer": "single"}
"""Value of a resume key in the ``config.json`` of a run written before the key existed."""


@dataclass
class DiscoveryConfig:
    rounds: int = 10
    model: str = "claude-opus-5-5"
    candidates_per_round: int = 1
    betas: tuple = DEFAULT_BETAS
    seeds: int = 20
    final_seeds: int = 100
    select_beta: float = 0.5
    models: tuple = MODELS
    search_benchmarks: tuple = SEARCH_BENCHMARKS
    heldout_benchmarks: tuple = HELDOUT_BENCHMARKS
    data: str | None = None
    max_tokens: int = 16000
    temperature: float | None = None
    base_url: str | None = None
    max_retries: int = 2
    jobs: int = 0                      # 0: os.cpu_count()
    job_timeout_s: float | None = None  # None: 60 s + 0.5 s per episode of the job
    episode_timeout_s: float = 20.0
    memory_mb: int = 2048
    episodes_per_process: int = 256    # 1: a fresh process per episode (see SandboxLimits)
    trace_episodes: int = 3
    max_prompt_chars: int = 120_000
    max_usd: float | None = None
    seed_controllers: tuple = ()
    baselines: bool = True
    heldout: bool = True
    price_input: float | None = None
    price_output: float | None = None
    allow_unsandboxed: bool = False
    proposer: str = "agent"            # "agent" (explorer with tools) or "single" (one request)
    agent_tool_calls: int | None = 24  # per round
    agent_tokens: int | None = 1_500_000   # per round: input + cache + output tokens
    agent_usd: float | None = None     # per round
    backend: str = "local"             # sandbox jobs on this machine's cores, or "ray"
    address: str | None = None         # Ray cluster to join (backend="ray")

    def __post_init__(self) -> None:
        self.betas = tuple(sorted(float(b) for b in self.betas))
        self.models = tuple(self.models)
        self.search_benchmarks = tuple(self.search_benchmarks)
        self.heldout_benchmarks = tuple(self.heldout_benchmarks)
        self.seed_controllers = tuple(str(p) for p in self.seed_controllers)
        if self.select_beta not in self.betas:
            raise ValueError(f"select_beta={self.select_beta} must be one of the betas {self.betas}")
        if self.candidates_per_round < 1 or self.rounds < 0 or self.seeds < 1:
            raise ValueError("candidates_per_round and seeds must be >= 1, rounds >= 0")
        if self.proposer not in ("agent", "single"):
            raise ValueError(f"proposer must be 'agent' or 'single', got {self.proposer!r}")
        if self.backend not in ("local", "ray"):
            raise ValueError(f"backend must be 'local' or 'ray', got {self.backend!r}")
        overlap = set(self.search_benchmarks) & set(self.heldout_benchmarks)
        if overlap:
            raise ValueError(f"benchmarks {sorted(overlap)} are both search and held-out")

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    def limits(self, episodes_per_job: int) -> SandboxLimits:
        timeout = self.job_timeout_s or (60.0 + 0.5 * episodes_per_job)
        return SandboxLimits(timeout_s=float(timeout), episode_timeout_s=float(self.episode_timeout_s),
                             memory_mb=int(self.memory_mb), allow_unsandboxed=self.allow_unsandboxed,
                             episodes_per_process=int(self.episodes_per_process))

    def prices(self) -> dict | None:
        if self.price_input is None and self.price_output is None:
            return None
        base = price_for(self.model) or Price(0.0, 0.0)
        inp = self.price_input if self.price_input is not None else base.input_per_mtok
        out = self.price_output if self.price_output is not None else base.output_per_mtok
        return {self.model: Price(inp, out)}


Progress = Callable[..., None]


def _noop(event: str, **info: Any) -> None:
    pass


def _stores(models: Sequence[str], benchmarks: Sequence[str], data: str | None) -> list:
    """The replay stores ``models x benchmarks``, benchmark-major; every pair must exist."""
    from tts_gym.data.resolve import resolve_stores
    return [s for b in benchmarks for s in resolve_stores(data, models, b)]


BASELINE_CONFIGS = (
    ("SC@16", "sc", {"max_samples": 16}),
    ("SC@64", "sc", {"max_samples": 64}),
    ("ASC@64 (0.95)", "asc", {"max_samples": 64, "threshold": 0.95}),
    ("ESC@64 (w=8)", "esc", {"max_samples": 64, "window_size": 8}),
    ("Parallel-Probe@16", "parallel_probe", {"num_chains": 16}),
)


def baseline_curves(stores: Sequence, seeds: Sequence[int], betas: Sequence[float]) -> list[dict]:
    """Built-in baselines on ``stores`` (mean over the stores): CMC at each beta, SC, ASC, ESC,
    Parallel-Probe; compiled kernels (:func:`tts_gym.evaluation.protocol.evaluate_compiled`)."""
    from tts_gym.evaluation.protocol import evaluate_compiled, evaluate_grid_compiled
    out = []

    def row(label, policy, params, results):
        per = {r.store: {"accuracy": r.sumC * 100.0 / r.episodes, "tokens": r.avg_tokens}
               for r in results}
        out.append({"label": label, "policy": policy, "params": params,
                    "accuracy": sum(v["accuracy"] for v in per.values()) / len(per),
                    "tokens": sum(v["tokens"] for v in per.values()) / len(per), "stores": per})

    grid = evaluate_grid_compiled(list(stores), "cmc", [{"beta": float(b)} for b in betas], seeds)
    for b, res in zip(betas, grid):
        row(f"CMC beta={float(b):g}", "cmc", {"beta": float(b)}, res)
    for label, policy, params in BASELINE_CONFIGS:
        row(label, policy, params, evaluate_compiled(list(stores), policy, params, seeds))
    return out


def _score_at(scores: dict | None, beta: float):
    if not scores or not scores.get("ok"):
        return None
    for p in scores.get("per_beta", []):
        if abs(p["beta"] - beta) < 1e-12:
            return p
    return None


def select_best(records: Sequence[dict], beta: float) -> dict | None:
    """Highest mean search accuracy at ``beta`` (fewer tokens, then the earlier candidate, break ties)."""
    best, key = None, None
    for rec in records:
        p = _score_at(rec.get("scores"), beta)
        if p is None:
            continue
        k = (p["accuracy"], -p["tokens"])
        if key is None or k > key:
            best, key = rec, k
    return best


class _Evaluator:
    """Sandboxed evaluation on a fixed store set: one job per store and group of betas
    (:func:`tts_gym.discovery.controller_eval.betas_per_job`) on a shared pool."""

    def __init__(self, stores, seeds, cfg: DiscoveryConfig, pool, workers: int) -> None:
        self.search = SearchSet(stores, list(range(seeds)))
        self.per_store = [SearchSet([s], list(range(seeds))) for s in stores]
        self.cfg, self.pool = cfg, pool
        self.per_job = betas_per_job(len(cfg.betas), len(stores), workers)
        self.jobs = len(stores) * -(-len(cfg.betas) // self.per_job)
        self.limits = cfg.limits(self.per_job * seeds * max(s.num_questions for s in stores))

    def evaluate(self, code: str, progress: Progress = _noop, label: str = "") -> ControllerEvaluation:
        return evaluate_controller(code, self.search, self.cfg.betas, self.limits, self.pool,
                                   parts=self.per_store,
                                   on_job=lambda: progress("job_done", label=label),
                                   betas_per_job=self.per_job)


def _write_scores(d: Path, ev: ControllerEvaluation, search: SearchSet, cfg: DiscoveryConfig) -> dict:
    traces = ""
    if ev.ok and cfg.trace_episodes > 0:
        traces = ev.trace_summaries(search, cfg.select_beta, n=cfg.trace_episodes)
    write_atomic(d / "traces.md", traces)
    js = ev.to_json()
    write_json(d / "scores.json", js)
    return js


def run_discovery(cfg: DiscoveryConfig, out_dir: str | os.PathLike, *, resume: bool = False,
                  proposer: Proposer | None = None, progress: Progress = _noop) -> dict:
    """Run (or resume) a discovery run in ``out_dir``; returns the final summary dict."""
    t0 = time.monotonic()
    sandbox = require_sandbox(cfg.allow_unsandboxed)      # refused before any paid request
    session = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sandboxed": sandbox.sandboxed,
               "allow_unsandboxed": cfg.allow_unsandboxed, "confinement": sandbox.description}
    run = RunDir(out_dir, cfg.candidates_per_round)
    sessions: list = []
    if run.exists():
        if not resume:
            raise FileExistsError(f"{out_dir} already holds a discovery run; pass --resume to continue it")
        saved = read_json(run.config_path)
        saved = {**_BEFORE_THE_SETTING, **saved}
        diff = [k for k in RESUME_KEYS if _norm(saved.get(k)) != _norm(cfg.to_json().get(k))]
        if diff:
            raise ValueError("cannot resume with different settings: " + ", ".join(
                f"{k} (run: {saved.get(k)!r}, now: {cfg.to_json().get(k)!r})" for k in diff))
        elapsed_before = float(saved.get("_elapsed_s", 0.0))
        sessions = list(saved.get("sandbox_sessions") or [])
        run.remove_stale_temp_files()
    else:
        elapsed_before = 0.0
    sessions.append(session)
    jobs = cfg.jobs or os.cpu_count() or 1
    if cfg.backend == "ray":
        from tts_gym.discovery.controller_eval import RayExecutor
        pool = RayExecutor(cfg.address, cfg.jobs or None)
    else:
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sandbox")
    try:
        progress("load", what="search stores")
        stores = _stores(cfg.models, cfg.search_benchmarks, cfg.data)
        write_json(run.config_path, dict(cfg.to_json(), _elapsed_s=elapsed_before,
                                         sandbox_sessions=sessions))
        evaluator = _Evaluator(stores, cfg.seeds, cfg, pool, jobs)
        search = evaluator.search
        jobs_per_candidate = evaluator.jobs
        baselines = read_json(run.baselines_path)
        if baselines is None:
            baselines = []
            if cfg.baselines:
                progress("baselines")
                baselines = baseline_curves(stores, list(range(cfg.seeds)), cfg.betas)
            write_json(run.baselines_path, baselines)

        # seed controllers
        seed_names = []
        for path in cfg.seed_controllers:
            name = Path(path).stem
            seed_names.append(name)
            d = run.seed_dir(name)
            if (d / "scores.json").exists():
                continue
            code = Path(path).read_text()
            write_atomic(d / "controller.py", code)
            progress("seed_start", name=name, jobs=jobs_per_candidate)
            ev = evaluator.evaluate(code, progress, name)
            _write_scores(d, ev, search, cfg)
            progress("seed_done", name=name, scores=ev.to_json())

        search_info = {"stores": search.names, "seeds": cfg.seeds, "betas": list(cfg.betas),
                       "episode_timeout_s": cfg.episode_timeout_s, "memory_mb": cfg.memory_mb,
                       "episodes_per_process": cfg.episodes_per_process}
        prices = cfg.prices()
        for r in range(cfg.rounds):
            if run.round_done(r):
                progress("round_skipped", round=r)
                continue
            spent = run.usage_totals()["usd"]
            if cfg.max_usd is not None and spent >= cfg.max_usd:
                progress("budget_exhausted", spent=spent, round=r)
                break
            _run_round(r, run, cfg, search, evaluator, baselines, search_info, seed_names,
                       proposer, prices, progress, jobs_per_candidate, jobs)

        records = run.history(cfg.rounds)
        summary = _final(run, cfg, records, seed_names, evaluator, baselines, pool, progress, jobs)
    finally:
        pool.shutdown(wait=True)
    elapsed = elapsed_before + (time.monotonic() - t0)
    saved = read_json(run.config_path) or {}
    saved["_elapsed_s"] = elapsed
    write_json(run.config_path, saved)
    summary["elapsed_s"] = elapsed
    summary["usage"] = run.usage_totals()
    summary["sandbox"] = {"sessions": sessions,
                          "unsandboxed": any(not s.get("sandboxed", True) for s in sessions)}
    return summary


def _norm(v):
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _run_round(r, run: RunDir, cfg, search, evaluator, baselines, search_info, seed_names,
               proposer, prices, progress, jobs_per_candidate, workers) -> None:
    if cfg.proposer == "agent":
        return _run_agent_round(r, run, cfg, search, evaluator, baselines, search_info, seed_names,
                                proposer, prices, progress, jobs_per_candidate, workers)
    rd = run.round_dir(r)
    t_round = time.monotonic()
    request = read_json(rd / "request.json")
    if request is None:
        history = run.history(r, seed_names)
        system, user = build_prompt(history, search=search_info, baselines=baselines,
                                    select_beta=cfg.select_beta, max_chars=cfg.max_prompt_chars)
        if proposer is None:
            raise RuntimeError("no proposer configured")
        request = proposer.request_params(system, user)
        write_atomic(rd / "prompt.md", f"<!-- system -->\n{system}\n\n<!-- user -->\n{user}\n")
        write_json(rd / "request.json", request)
    progress("round_start", round=r, candidates=cfg.candidates_per_round,
             jobs=cfg.candidates_per_round * jobs_per_candidate)
    lock = threading.Lock()

    def candidate(k: int) -> dict:
        d = run.cand_dir(r, k)
        resp = read_json(d / "response.json")
        if resp is None:
            if proposer is None:
                raise RuntimeError("no proposer configured")
            progress("request", round=r, candidate=k)
            t = time.monotonic()
            resp = proposer.request(request)
            write_json(d / "response.json", resp)          # first thing after the paid call
            with lock:
                progress("response", round=r, candidate=k, seconds=time.monotonic() - t)
        usage = read_json(d / "usage.json")
        if usage is None:
            u = response_usage(resp)
            model = resp.get("model") or request.get("model")
            usd = cost_usd(request["model"], u["input_tokens"], u["output_tokens"],
                           u["cache_creation_input_tokens"], u["cache_read_input_tokens"], prices)
            usage = dict(u, model=model, requested_model=request["model"], usd=usd,
                         stop_reason=resp.get("stop_reason"))
            write_json(d / "usage.json", usage)
        scores = read_json(d / "scores.json")
        if scores is None:
            code, err = extract_code(response_text(resp), resp.get("stop_reason"))
            if code is None:
                ev = ControllerEvaluation(False, list(cfg.betas), search.names, "no_code", err)
                scores = _write_scores(d, ev, search, cfg)
                progress("skip_jobs", n=jobs_per_candidate)
            else:
                write_atomic(d / "controller.py", code)
                ev = evaluator.evaluate(code, progress, f"round {r}.{k}")
                scores = _write_scores(d, ev, search, cfg)
        else:
            progress("skip_jobs", n=jobs_per_candidate)
        progress("candidate_done", round=r, candidate=k, scores=scores, usage=usage)
        return {"candidate": k, "ok": bool(scores.get("ok")), "error_kind": scores.get("error_kind"),
                "at_select_beta": _score_at(scores, cfg.select_beta), "usage": usage}

    with ThreadPoolExecutor(max_workers=cfg.candidates_per_round, thread_name_prefix="candidate") as ex:
        results = list(ex.map(candidate, range(cfg.candidates_per_round)))
    tot_usd = [c["usage"].get("usd") for c in results]
    summary = {
        "round": r, "candidates": results,
        "input_tokens": sum(c["usage"]["input_tokens"] for c in results),
        "output_tokens": sum(c["usage"]["output_tokens"] for c in results),
        "usd": None if any(u is None for u in tot_usd) else sum(tot_usd),
        "seconds": time.monotonic() - t_round,
    }
    write_json(rd / "round.json", summary)
    progress("round_done", round=r, summary=summary)


def _evaluate_candidate(d: Path, code: str | None, err: str | None, cfg, search, evaluator,
                        progress, label: str, jobs_per_candidate: int) -> dict:
    """``scores.json`` of a candidate folder (evaluated now unless it is already there)."""
    scores = read_json(d / "scores.json")
    if scores is not None:
        progress("skip_jobs", n=jobs_per_candidate)
        return scores
    if code is None:
        ev = ControllerEvaluation(False, list(cfg.betas), search.names, "no_code", err)
        progress("skip_jobs", n=jobs_per_candidate)
    else:
        write_atomic(d / "controller.py", code)
        ev = evaluator.evaluate(code, progress, label)
    return _write_scores(d, ev, search, cfg)


def _run_agent_round(r, run: RunDir, cfg, search, evaluator, baselines, search_info, seed_names,
                     proposer, prices, progress, jobs_per_candidate, workers) -> None:
    from tts_gym.discovery.explorer import (AGENT_SYSTEM_PROMPT, AgentBudget, ExplorerTools,
                                            agent_usage, run_explorer_round)
    rd = run.round_dir(r)
    agent_dir = rd / "agent"
    t_round = time.monotonic()
    K = cfg.candidates_per_round
    history = run.history(r, seed_names)
    _, user = build_prompt(history, search=search_info, baselines=baselines,
                           select_beta=cfg.select_beta, max_chars=cfg.max_prompt_chars,
                           task=AGENT_TASK)
    if not (rd / "prompt.md").exists():
        write_atomic(rd / "prompt.md", f"<!-- system -->\n{AGENT_SYSTEM_PROMPT}\n\n<!-- user -->\n"
                                       f"{user}\n")
    progress("round_start", round=r, candidates=K, jobs=K * jobs_per_candidate)

    def count() -> int:
        return sum(1 for k in range(K) if (run.cand_dir(r, k) / "submission.json").exists())

    def submit(code: str, name, notes) -> str:
        k = count()
        if k >= K:
            return "the round's candidates are all submitted"
        d = run.cand_dir(r, k)
        write_atomic(d / "controller.py", code)
        write_json(d / "submission.json", {"name": name, "notes": notes})
        progress("agent_submit", round=r, candidate=k, name=name)
        return (f"submitted as candidate {k} of round {r}; it is evaluated on the full search "
                f"protocol (betas {', '.join(f'{b:g}' for b in cfg.betas)}, {cfg.seeds} seeds) "
                f"after the round" + (f"; {K - k - 1} more may be submitted" if k + 1 < K else ""))

    if read_json(agent_dir / "done.json") is None:
        if proposer is None:
            raise RuntimeError("no proposer configured")
        tools = ExplorerTools(search, cfg.betas, cfg.limits, agent_dir, history, baselines,
                              cfg.select_beta, submit, workers=workers, backend=cfg.backend)
        base = {"model": proposer.config.model, "max_tokens": int(proposer.config.max_tokens),
                "system": [{"type": "text", "text": AGENT_SYSTEM_PROMPT,
                            "cache_control": {"type": "ephemeral"}}]}
        if proposer.config.temperature is not None:
            base["temperature"] = float(proposer.config.temperature)
        budget = AgentBudget(cfg.agent_tool_calls, cfg.agent_tokens, cfg.agent_usd)
        run_explorer_round(agent_dir, proposer, base, user, tools, budget, K, count, prices,
                           lambda event, **info: progress(event, round=r, **info))
    n = count()

    def candidate(k: int) -> dict:
        d = run.cand_dir(r, k)
        if k < n:
            code, err = (d / "controller.py").read_text(), None
        else:
            code, err = None, "the explorer ended the round without submitting a controller"
        scores = _evaluate_candidate(d, code, err, cfg, search, evaluator, progress,
                                     f"round {r}.{k}", jobs_per_candidate)
        if code is None and scores.get("error_kind") == "no_code":
            scores["error_kind"] = "no_submission"
            write_json(d / "scores.json", scores)
        progress("candidate_done", round=r, candidate=k, scores=scores, usage=None)
        return {"candidate": k, "ok": bool(scores.get("ok")), "error_kind": scores.get("error_kind"),
                "at_select_beta": _score_at(scores, cfg.select_beta), "usage": None}

    with ThreadPoolExecutor(max_workers=max(1, n), thread_name_prefix="candidate") as ex:
        results = list(ex.map(candidate, range(max(1, n))))
    for k in range(max(1, n), K):
        progress("skip_jobs", n=jobs_per_candidate)
    usage = agent_usage(agent_dir)
    summary = {"round": r, "proposer": "agent", "candidates": results,
               "agent": read_json(agent_dir / "done.json"),
               "requests": usage["requests"], "input_tokens": usage["input_tokens"],
               "output_tokens": usage["output_tokens"],
               "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
               "cache_read_input_tokens": usage["cache_read_input_tokens"], "usd": usage["usd"],
               "seconds": time.monotonic() - t_round}
    write_json(rd / "round.json", summary)
    progress("round_done", round=r, summary=summary)


def _final(run: RunDir, cfg: DiscoveryConfig, records, seed_names, evaluator, baselines, pool,
           progress, workers) -> dict:
    best = select_best(records, cfg.select_beta)
    seeds_recs = run.history(0, seed_names)
    summary: dict[str, Any] = {
        "out": str(run.root), "rounds": run.finished_rounds(), "candidates": len(records),
        "failed": sum(1 for c in records if not (c.get("scores") or {}).get("ok")),
        "select_beta": cfg.select_beta, "baselines": baselines,
        "seeds": [{"label": c["label"], "at_select_beta": _score_at(c.get("scores"), cfg.select_beta)}
                  for c in seeds_recs],
        "best": None, "final": None}
    if best is None:
        return summary
    summary["best"] = {"label": best["label"], "dir": best["dir"], "scores": best["scores"]}
    write_atomic(run.root / "best_controller.py", best["code"])
    key = {"best": best["dir"], "final_seeds": cfg.final_seeds, "heldout": cfg.heldout,
           "heldout_benchmarks": list(cfg.heldout_benchmarks)}
    final = read_json(run.final_path)
    if final is not None and final.get("key") == key:
        summary["final"] = final
        return summary
    final = {"key": key, "label": best["label"]}
    progress("final_start", label=best["label"])
    stores = evaluator.search.stores
    groups = [("search", stores)]
    if cfg.heldout:
        for bench in cfg.heldout_benchmarks:
            progress("load", what=f"held-out {bench}")
            groups.append((bench, _stores(cfg.models, [bench], cfg.data)))
    for name, group in groups:
        ev_final = _Evaluator(group, cfg.final_seeds, cfg, pool, workers)
        progress("final_eval", group=name, jobs=ev_final.jobs)
        ev = ev_final.evaluate(best["code"], progress, f"final {name}")
        final[name] = ev.to_json()
        if cfg.baselines:
            final[f"{name}_baselines"] = baseline_curves(group, list(range(cfg.final_seeds)), cfg.betas)
    write_json(run.final_path, final)
    summary["final"] = final
    progress("final_done")
    return summary
