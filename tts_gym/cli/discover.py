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
request -- also inside an explorer round. The summary at the end shows the best controller's
accuracy/token curve next to the baselines, its held-out results, the total API cost and the time
taken. The best controller is copied to ``DIR/best_controller.py``; evaluate it like any controller file
(``tts-gym eval --controller DIR/best_controller.py``, sandboxed).

Candidates run in an operating-system sandbox (bubblewrap: Debian/Ubuntu
``apt-get install bubblewrap``, Fedora ``dnf install bubblewrap``, Arch ``pacman -S bubblewrap``).
Without one the run is refused; ``--allow-unsandboxed`` runs LLM-written code without it, which is
recorded in the run's ``config.json`` and printed in every summary.
"""
from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2

DESCRIPTION = """\
Controller discovery, the AutoTTS loop: an LLM (Anthropic Messages API, key in ANTHROPIC_API_KEY;
--base-url or ANTHROPIC_BASE_URL for a proxy) proposes a controller with one knob beta; each
proposal is scored over a sweep of beta on the search stores in a sandbox, and its accuracy/token
curve and a few execution traces go back to the LLM for the next round. Controllers never see a
gold answer, and the proposer never sees the held-out stores. With --proposer agent (default)
the LLM works each round as an explorer with tools (evaluate drafts in the sandbox, show traces,
read the history, submit) within the --agent-* budgets; --proposer single asks for one file per
candidate.

Every round is saved under --out; after a crash or kill, the same command with --resume continues
without redoing finished rounds or repeating a paid request. The end summary shows the best
controller's curve next to the built-in baselines, its held-out results, the API cost and the
time taken; the best controller is copied to OUT/best_controller.py (evaluate it with
`tts-gym eval --controller`). Needs pip install 'tts_gym[llm]'.
"""

EPILOG = """\
examples:
  tts-gym discover --rounds 5 --model claude-opus-5-5 --out runs/disc
  tts-gym discover --rounds 5 --model claude-opus-5-5 --out runs/disc --resume
  tts-gym discover --rounds 0 --seed-controller agents/controllers/cmc.py --out runs/cmc
"""


def register(sub) -> None:
    from tts_gym.cli.args import (float_in, int_in, non_negative_float, positive_float, probability,
                                  seeds_type)
    from tts_gym.data.catalog import HELDOUT_BENCHMARKS, MODELS, SEARCH_BENCHMARKS
    from tts_gym.discovery.sandbox import DEFAULT_BETAS
    p = sub.add_parser("discover", help="discover test-time-scaling controllers with an LLM proposer",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int_in(0, 100_000), default=10, metavar="N", help="proposal rounds (default 10)")
    p.add_argument("--model", default="claude-opus-5-5", help="Claude model id of the proposer")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory (history, scores, final report)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--proposer", choices=("agent", "single"), default="agent",
                   help="agent: an explorer with tools per round (default); single: one request "
                        "per candidate")
    p.add_argument("--agent-tool-calls", type=_optional_int, default=24, metavar="N",
                   help="explorer: tool calls per round (default 24; 'none': no limit)")
    p.add_argument("--agent-tokens", type=_optional_int, default=1_500_000, metavar="N",
                   help="explorer: input + cache + output tokens per round (default 1500000)")
    p.add_argument("--agent-usd", type=positive_float, default=None, metavar="USD",
                   help="explorer: dollars per round (default: no per-round limit)")
    p.add_argument("--candidates-per-round", "-K", type=int_in(1, 1000), default=1, dest="candidates_per_round",
                   metavar="K", help="controllers proposed per round (default 1)")
    p.add_argument("--betas", type=probability, nargs="+", default=list(DEFAULT_BETAS), metavar="BETA",
                   help=f"values of the knob each candidate is scored at (default "
                        f"{' '.join(f'{b:g}' for b in DEFAULT_BETAS)})")
    p.add_argument("--select-beta", type=probability, default=0.5, metavar="BETA",
                   help="beta at which candidates are ranked (one of --betas; default 0.5)")
    p.add_argument("--seeds", type=seeds_type, default=20, metavar="N",
                   help="shuffle seeds 0..N-1 during the search (default 20)")
    p.add_argument("--final-seeds", type=seeds_type, default=100, metavar="N",
                   help="shuffle seeds of the final report (default 100)")
    p.add_argument("--models", nargs="+", default=list(MODELS), metavar="NAME",
                   help=f"models whose stores are used (default: {' '.join(MODELS)})")
    p.add_argument("--search-benchmarks", nargs="+", default=list(SEARCH_BENCHMARKS), metavar="NAME",
                   help="benchmarks the proposals are scored on (default: aime24)")
    p.add_argument("--heldout-benchmarks", nargs="+", default=list(HELDOUT_BENCHMARKS), metavar="NAME",
                   help="benchmarks of the final held-out report, never shown to the proposer "
                        "(default: aime25 hmmt25)")
    p.add_argument("--no-heldout", action="store_true", help="skip the held-out report")
    p.add_argument("--no-baselines", action="store_true", help="skip the built-in baselines")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="replay data (a directory of AutoTTS JSON or an .h5 file); "
                        "default: $TTS_GYM_DATA or the fetched stores")
    p.add_argument("--seed-controller", action="append", default=[], dest="seed_controllers",
                   metavar="FILE", help="controller file evaluated before round 0 and shown to the "
                                        "proposer (repeatable), e.g. agents/controllers/cmc.py")
    p.add_argument("--max-tokens", type=int_in(1, 10_000_000), default=16000, metavar="N",
                   help="maximum output tokens of each request (default 16000)")
    p.add_argument("--temperature", type=float_in(0.0, 2.0), default=None,
                   help="sampling temperature of the proposer (default: the API's)")
    p.add_argument("--base-url", default=None, metavar="URL",
                   help="Messages API base URL (default: the SDK's)")
    p.add_argument("--max-retries", type=int_in(0, 100), default=2, metavar="N",
                   help="retries of a failed request (default 2)")
    p.add_argument("--max-usd", type=positive_float, default=None, metavar="USD",
                   help="start no new round once the API cost exceeds this")
    p.add_argument("--price-input", type=non_negative_float, default=None, metavar="USD",
                   help="$ per million input tokens (default: the built-in price of --model)")
    p.add_argument("--price-output", type=non_negative_float, default=None, metavar="USD",
                   help="$ per million output tokens (default: the built-in price of --model)")
    p.add_argument("--jobs", type=int_in(0, 4096), default=0, metavar="N",
                   help="parallel sandbox processes (default: one per CPU)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="sandbox jobs on this machine (default) or as Ray tasks")
    p.add_argument("--address", default=None, metavar="ADDRESS",
                   help="Ray cluster to join (default: a local instance)")
    p.add_argument("--job-timeout", type=positive_float, default=None, metavar="SECONDS",
                   help="wall-clock seconds per sandbox job (one beta x one store; default "
                        "60 + 0.5 per episode)")
    p.add_argument("--episode-timeout", type=positive_float, default=20.0, metavar="SECONDS",
                   help="seconds a controller may take per question (default 20)")
    p.add_argument("--memory-mb", type=int_in(64, 1 << 22), default=2048, metavar="MB",
                   help="memory budget per sandbox in MB (default 2048)")
    p.add_argument("--isolate-episodes", action="store_true",
                   help="a fresh sandbox process for every episode (strict; 5-10x slower). By "
                        "default a process plays 256 episodes, each with fresh controller globals, "
                        "and a random sample is re-run alone and compared: a controller whose "
                        "decisions depend on an earlier episode fails as 'state'")
    p.add_argument("--trace-episodes", type=int_in(0, 10_000), default=3, metavar="N",
                   help="execution traces per candidate shown to the proposer (default 3)")
    p.add_argument("--max-prompt-chars", type=int_in(1000, 10**9), default=120_000, metavar="N",
                   help="cap on the characters of a prompt: beyond it, traces and code of earlier "
                        "candidates are shortened (default 120000)")
    p.add_argument("--allow-unsandboxed", action="store_true",
                   help="run candidates even where no operating-system sandbox (bubblewrap) can be "
                        "set up: LLM-written code then sees this machine's files; recorded in the "
                        "run and printed in every summary")
    p.add_argument("--quiet", "--no-progress", action="store_true", dest="quiet",
                   help="no progress display (it is only drawn when stderr is a terminal)")
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
        episodes_per_process=1 if args.isolate_episodes else 256,
        trace_episodes=args.trace_episodes, max_prompt_chars=args.max_prompt_chars,
        max_usd=args.max_usd, seed_controllers=tuple(args.seed_controllers),
        baselines=not args.no_baselines, heldout=not args.no_heldout,
        price_input=args.price_input, price_output=args.price_output, proposer=args.proposer,
        agent_tool_calls=args.agent_tool_calls, agent_tokens=args.agent_tokens,
        agent_usd=args.agent_usd, backend=args.backend, address=args.address,
        allow_unsandboxed=args.allow_unsandboxed)


class _Display:
    """Rich progress: one bar for rounds, one for sandbox jobs, one line per finished candidate."""

    def __init__(self, console, rounds: int, quiet: bool) -> None:
        self.console, self.quiet = console, quiet
        self.progress = None
        if not quiet and console.is_terminal:  # never progress bars in a log
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
    mark = " [bold red](UNSANDBOXED)[/]" if (scores.get("sandbox") or {}).get("unsandboxed") else ""
    if not scores.get("ok"):
        err = (scores.get("error") or "").strip().splitlines()
        return f"[red]failed ({scores.get('error_kind')})[/]{mark} {err[-1][:120] if err else ''}"
    pts = scores.get("per_beta", [])
    curve = "  ".join(f"b={p['beta']:g}: {p['accuracy']:.1f}%/{p['tokens'] / 1000:.0f}k" for p in pts)
    mono = "" if scores.get("monotone", {}).get("ok", True) else " [yellow](tokens not monotone)[/]"
    return f"[green]ok[/]{mark} {curve}{mono}"


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
    print_sandbox(console, summary.get("sandbox") or {})
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


def print_sandbox(console, sandbox: dict) -> None:
    """How the run's candidates were confined (a warning for any unsandboxed session)."""
    sessions = sandbox.get("sessions") or []
    unsafe = [s for s in sessions if not s.get("sandboxed", True)]
    if unsafe:
        console.print(f"[bold red]WARNING: {len(unsafe)} of {len(sessions)} session(s) of this run "
                      f"ran LLM-written code WITHOUT the operating-system sandbox "
                      f"(--allow-unsandboxed): {unsafe[-1].get('confinement')}[/]")
    elif sessions:
        console.print(f"[dim]sandbox: {sessions[-1].get('confinement')}[/]")


def cmd_discover(args: argparse.Namespace) -> int:
    from tts_gym.cli import output
    from tts_gym.discovery.loop import run_discovery
    from tts_gym.discovery.proposer import MissingAPIKey, Proposer, ProposerConfig
    from tts_gym.discovery.sandbox.confinement import SandboxUnavailable, require
    console = output.console(stderr=True)
    try:
        from tts_gym.files import check_output_dir
        cfg = _config(args)
        require(cfg.allow_unsandboxed)             # refused before anything is written
        check_output_dir(args.out, what="--out")   # before any evaluation or request
    except SandboxUnavailable as exc:
        print(f"tts-gym discover: error: {exc} (or pass --allow-unsandboxed to run it anyway, "
              f"recorded in the run)", file=sys.stderr)
        return EXIT_USAGE
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
        print(f"tts-gym discover: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)
        return EXIT_USAGE
    print_summary(console, summary, cfg.select_beta)
    return 0
