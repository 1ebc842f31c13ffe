"""``tts-gym discover``: LLM-driven controller discovery (propose -> sandboxed evaluation -> feedback).

    tts-gym discover --rounds N --model claude-... --out DIR [--resume]
                     [--proposer agent|single] [--agent-tool-calls 24] [--agent-tokens 1500000]
                     [--agent-usd D] [--candidates-per-round K] [--betas 0 0.25 0.5 0.75 1]
                     [--seeds S] [--final-seeds 100] [--select-beta 0.5] [--seed-controller FILE ...]
                     [--backend local|ray]

``--proposer agent`` (default): per round an explorer agent with tools (evaluate drafts in the
sandbox on the search stores, show traces, read the history, submit) within a budget of tool
calls, tokens and dollars; ``--proposer single``: one request per candidate, one file back.

Needs ``ANTHROPIC_API_KEY`` (and ``--base-url`` or ``ANTHROPIC_BASE_URL`` for a proxy). Every
round is written under ``DIR`` (see :mod:`tts_gym.discovery.history`); after a crash or ``kill -9``,
the same command with ``--resume`` continues without redoing finished rounds or repeating a paid
request -- also inside an explorer round. The summary at the end shows the best controller's accuracy/token curve next to the
baselines, its held-out results, the total API cost and the time taken. The best controller is
copied to ``DIR/best_controller.py``; evaluate it like any controller file.
"""
from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


def register(sub) -> None:
    from tts_gym.discovery.loop import DEFAULT_MODELS
    from tts_gym.discovery.sandbox import DEFAULT_BETAS
    p = sub.add_parser("discover", help="discover test-time-scaling controllers with an LLM proposer",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=10, help="proposal rounds (default 10)")
    p.add_argument("--model", default="claude-opus-5-5", help="Claude model id of the proposer")
    p.add_argument("--out", required=True, help="run directory (history, scores, final report)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--proposer", choices=("agent", "single"), default="agent",
                   help="agent: an explorer with tools per round (default); single: one request "
                        "per candidate")
    p.add_argument("--agent-tool-calls", type=_optional_int, default=24, metavar="N",
                   help="explorer: tool calls per round (default 24; 'none': no limit)")
    p.add_argument("--agent-tokens", type=_optional_int, default=1_500_000, metavar="N",
                   help="explorer: input + cache + output tokens per round (default 1500000)")
    p.add_argument("--agent-usd", type=float, default=None, metavar="D",
                   help="explorer: dollars per round (default: no per-round limit)")
    p.add_argument("--candidates-per-round", "-K", type=int, default=1, dest="candidates_per_round")
    p.add_argument("--betas", type=float, nargs="+", default=list(DEFAULT_BETAS))
    p.add_argument("--select-beta", type=float, default=0.5,
                   help="beta at which candidates are ranked (one of --betas; default 0.5)")
    p.add_argument("--seeds", type=int, default=20, help="shuffle seeds 0..S-1 during the search (20)")
    p.add_argument("--final-seeds", type=int, default=100, help="seeds of the final report (100)")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--search-benchmarks", nargs="+", default=["aime24"])
    p.add_argument("--heldout-benchmarks", nargs="+", default=["aime25", "hmmt25"])
    p.add_argument("--no-heldout", action="store_true", help="skip the held-out report")
    p.add_argument("--no-baselines", action="store_true", help="skip the built-in baselines")
    p.add_argument("--data", default=None, help="replay data (directory of AutoTTS JSON or .h5); "
                                                "default: $TTS_GYM_DATA or the fetched cache")
    p.add_argument("--seed-controller", action="append", default=[], dest="seed_controllers",
                   metavar="FILE", help="controller file evaluated before round 0 and shown to the "
                                        "proposer (repeatable), e.g. agents/controllers/cmc.py")
    p.add_argument("--max-tokens", type=int, default=16000, help="max_tokens of each request")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--base-url", default=None, help="Messages API base URL (default: the SDK's)")
    p.add_argument("--max-retries", type=int, default=2, help="SDK retries of a failed request")
    p.add_argument("--max-usd", type=float, default=None, help="stop starting rounds beyond this cost")
    p.add_argument("--price-input", type=float, default=None, help="$ per million input tokens "
                                                                   "(overrides the price table)")
    p.add_argument("--price-output", type=float, default=None, help="$ per million output tokens")
    p.add_argument("--jobs", type=int, default=0, help="parallel sandbox processes (default: CPUs)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="sandbox jobs on this machine (default) or as Ray tasks")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: a local instance)")
    p.add_argument("--job-timeout", type=float, default=None,
                   help="wall-clock seconds per sandbox job (one beta x one store; default "
                        "60 + 0.5 per episode)")
    p.add_argument("--episode-timeout", type=float, default=20.0, help="seconds per question (20)")
    p.add_argument("--memory-mb", type=int, default=2048, help="memory budget per sandbox (MB)")
    p.add_argument("--trace-episodes", type=int, default=3, help="trace summaries per candidate")
    p.add_argument("--max-prompt-chars", type=int, default=120_000)
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_discover)


def _optional_int(text: str):
    if text.strip().lower() in ("none", "inf", "unlimited"):
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1 (or 'none')")
    return value


def _config(args):
    from tts_gym.discovery.loop import DiscoveryConfig
    return DiscoveryConfig(
        rounds=args.rounds, model=args.model, candidates_per_round=args.candidates_per_round,
        betas=tuple(args.betas), seeds=args.seeds, final_seeds=args.final_seeds,
        select_beta=args.select_beta, models=tuple(args.models),
        search_benchmarks=tuple(args.search_benchmarks),
        heldout_benchmarks=tuple(args.heldout_benchmarks), data=args.data,
        max_tokens=args.max_tokens, temperature=args.temperature, base_url=args.base_url,
        max_retries=args.max_retries, jobs=args.jobs, job_timeout_s=args.job_timeout,
        episode_timeout_s=args.episode_timeout, memory_mb=args.memory_mb,
        trace_episodes=args.trace_episodes, max_prompt_chars=args.max_prompt_chars,
        max_usd=args.max_usd, seed_controllers=tuple(args.seed_controllers),
        baselines=not args.no_baselines, heldout=not args.no_heldout,
        price_input=args.price_input, price_output=args.price_output, proposer=args.proposer,
        agent_tool_calls=args.agent_tool_calls, agent_tokens=args.agent_tokens,
        agent_usd=args.agent_usd, backend=args.backend, address=args.address)


class _Display:
    """Rich progress: one bar for rounds, one for sandbox jobs, one line per finished candidate."""

    def __init__(self, console, rounds: int, quiet: bool) -> None:
        self.console, self.quiet = console, quiet
        self.progress = None
        if not quiet:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                     transient=False)
            self.rounds = self.progress.add_task("rounds", total=rounds)
            self.jobs = self.progress.add_task("sandbox jobs", total=0)

    def __enter__(self):
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def log(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def __call__(self, event: str, **info) -> None:
        p = self.progress
        if event == "load":
            self.log(f"[dim]loading {info['what']}[/]")
        elif event == "baselines":
            self.log("[dim]evaluating the built-in baselines[/]")
        elif event in ("seed_start", "round_start", "final_eval"):
            if p is not None:
                t = p.tasks[self.jobs]
                p.update(self.jobs, total=(t.total or 0) + info["jobs"])
            if event == "seed_start":
                self.log(f"seed controller [bold]{info['name']}[/]")
            elif event == "final_eval":
                self.log(f"final report: {info['group']}")
        elif event == "job_done" and p is not None:
            p.advance(self.jobs)
        elif event == "skip_jobs" and p is not None:
            p.advance(self.jobs, info["n"])
        elif event == "round_skipped":
            if p is not None:
                p.advance(self.rounds)
        elif event == "request":
            self.log(f"round {info['round']}: requesting a proposal"
                     + (f" (candidate {info['candidate']})" if info.get("candidate") else ""))
        elif event == "agent_request":
            if info.get("step", 0) == 0:
                self.log(f"round {info['round']}: explorer started")
        elif event == "agent_tool":
            from tts_gym.discovery.explorer import summarize_result
            mark = "[red]error[/] " if info.get("error") else ""
            self.log(f"  round {info['round']} step {info['step']}: {info['name']} "
                     f"({info['seconds']:.0f} s) {mark}[dim]{summarize_result(info.get('text'))}[/]")
        elif event == "agent_submit":
            self.log(f"  round {info['round']}: candidate {info['candidate']} submitted"
                     + (f" ({info['name']})" if info.get("name") else ""))
        elif event == "agent_done":
            usd = info.get("usd")
            self.log(f"  round {info['round']}: explorer done ({info['reason']}): "
                     f"{info['requests']} requests, {info['tool_calls']} tool calls, "
                     f"{info['tokens']:,} tokens, " + (f"${usd:.4f}" if usd is not None else "$?"))
        elif event == "candidate_done":
            self.log(f"round {info['round']}.{info['candidate']}: " + _headline(info["scores"])
                     + _usage_text(info["usage"]))
        elif event == "seed_done":
            self.log(f"seed {info['name']}: " + _headline(info["scores"]))
        elif event == "round_done":
            if p is not None:
                p.advance(self.rounds)
        elif event == "budget_exhausted":
            self.log(f"[yellow]cost limit reached (${info['spent']:.2f}); no more rounds[/]")
        elif event == "final_start":
            self.log(f"selected: [bold]{info['label']}[/]")


def _headline(scores: dict) -> str:
    if not scores.get("ok"):
        err = (scores.get("error") or "").strip().splitlines()
        return f"[red]failed ({scores.get('error_kind')})[/] {err[-1][:120] if err else ''}"
    pts = scores.get("per_beta", [])
    curve = "  ".join(f"b={p['beta']:g}: {p['accuracy']:.1f}%/{p['tokens'] / 1000:.0f}k" for p in pts)
    mono = "" if scores.get("monotone", {}).get("ok", True) else " [yellow](tokens not monotone)[/]"
    return f"[green]ok[/] {curve}{mono}"


def _usage_text(u: dict | None) -> str:
    if not u:
        return ""
    usd = u.get("usd")
    cost = f"${usd:.4f}" if usd is not None else "$?"
    return f"  [dim]({u.get('input_tokens', 0):,} in / {u.get('output_tokens', 0):,} out tokens, {cost})[/]"


def print_summary(console, summary: dict, select_beta: float) -> None:
    from rich.table import Table
    u = summary.get("usage") or {}
    usd = f"${u.get('usd', 0.0):.2f}" + (f" (+{u['usd_unknown']} requests without a price)"
                                        if u.get("usd_unknown") else "")
    console.print(f"\n[bold]Discovery run[/] {summary.get('out')}: {len(summary.get('rounds', []))} "
                  f"round(s), {summary.get('candidates', 0)} candidate(s), {summary.get('failed', 0)} "
                  f"failed; {u.get('requests', 0)} API request(s), {u.get('input_tokens', 0):,} input + "
                  f"{u.get('output_tokens', 0):,} output tokens, {usd}; "
                  f"{summary.get('elapsed_s', 0.0):.0f} s")
    best = summary.get("best")
    if best is None:
        console.print("[yellow]No candidate succeeded.[/]")
        return
    console.print(f"Best controller: [bold]{best['label']}[/] -> {summary['out']}/best_controller.py")
    final = summary.get("final") or {}
    groups = [("search (search seeds)", best["scores"], summary.get("baselines") or [])]
    for key, val in final.items():
        if key in ("key", "label") or key.endswith("_baselines") or not isinstance(val, dict):
            continue
        title = f"{key} ({final['key']['final_seeds']} seeds)"
        groups.append((title, val, final.get(f"{key}_baselines") or []))
    for title, scores, baselines in groups:
        t = Table(title=title, show_lines=False)
        t.add_column("controller")
        t.add_column("mean acc %", justify="right")
        t.add_column("mean tokens", justify="right")
        if scores.get("ok"):
            for p in scores.get("per_beta", []):
                mark = " *" if abs(p["beta"] - select_beta) < 1e-12 else ""
                t.add_row(f"best, beta={p['beta']:g}{mark}", f"{p['accuracy']:.2f}", f"{p['tokens']:,.0f}")
        else:
            t.add_row("best", f"failed: {scores.get('error_kind')}", "")
        for b in baselines:
            t.add_row(f"[dim]{b['label']}[/]", f"[dim]{b['accuracy']:.2f}[/]", f"[dim]{b['tokens']:,.0f}[/]")
        console.print(t)


def cmd_discover(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tts_gym.discovery.loop import run_discovery
    from tts_gym.discovery.proposer import MissingAPIKey, Proposer, ProposerConfig
    console = Console(stderr=True)
    try:
        cfg = _config(args)
    except ValueError as exc:
        print(f"tts-gym discover: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    proposer = None
    if cfg.rounds > 0:
        try:
            proposer = Proposer(ProposerConfig(model=cfg.model, max_tokens=cfg.max_tokens,
                                               temperature=cfg.temperature, base_url=cfg.base_url,
                                               max_retries=cfg.max_retries))
        except MissingAPIKey as exc:
            print(f"tts-gym discover: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        with _Display(console, cfg.rounds, args.quiet) as display:
            summary = run_discovery(cfg, args.out, resume=args.resume, proposer=proposer,
                                    progress=display)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"tts-gym discover: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print_summary(console, summary, cfg.select_beta)
    return 0
