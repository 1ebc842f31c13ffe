"""Controller discovery in one readable file (CleanRL style): propose -> sandbox -> feed back.

    ANTHROPIC_API_KEY=... python agents/discover.py --rounds 5 --model claude-opus-4-5 \
        --out runs/discover-demo --seeds 20

Every step of the loop is spelled out below; the pieces it calls are the library's:

* :class:`tts_gym.discovery.sandbox.SearchSet` / :func:`~tts_gym.discovery.sandbox.evaluate_controller`
  -- the sandboxed beta sweep (no gold answers or API key in the child; costs re-played here);
* :func:`tts_gym.discovery.proposer.build_prompt` and :class:`~tts_gym.discovery.proposer.Proposer`
  -- the prompt from the history, and one Messages API request;
* :mod:`tts_gym.discovery.history` -- atomic writes in the same ``round_XXXX/`` layout as
  ``tts-gym discover``, so a run is resumable by either program (``--resume``).

``tts-gym discover`` is the full-featured version (several candidates per round, parallel sandbox
jobs per store, built-in baselines, held-out report, rich progress). This script keeps to one
candidate per round and the search stores, and prints one line per round.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

from tts_gym.cli.dataclass_args import parse_dataclass
from tts_gym.data.catalog import MODELS, SEARCH_BENCHMARKS
from tts_gym.data.resolve import resolve_stores


@dataclass
class Args:
    rounds: int = 5
    """proposal rounds"""
    model: str = "claude-opus-4-5"
    """Claude model id of the proposer"""
    out: str = "runs/discover"
    """run directory (history, scores, the best controller)"""
    resume: bool = False
    """continue the run in --out"""
    models: tuple[str, ...] = MODELS
    """models whose search stores score a controller"""
    benchmark: str = SEARCH_BENCHMARKS[0]
    """the search set; the held-out benchmarks are never loaded here"""
    data: str | None = None
    """replay data (default: $TTS_GYM_DATA or the cache of `tts-gym data fetch`)"""
    betas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    """the beta sweep a controller is scored over"""
    select_beta: float = 0.5
    """the beta at which candidates are ranked"""
    seeds: int = 20
    """reference shuffle seeds 0..S-1 of the search"""
    seed_controller: str | None = str(Path(__file__).parent / "controllers" / "cmc.py")
    """a controller file scored before round 0, so the first proposal has something to improve on"""
    max_tokens: int = 16000
    """output-token limit of one proposal"""
    base_url: str | None = None
    """Messages API endpoint (default: Anthropic's)"""
    episode_timeout: float = 20.0
    """seconds a controller may spend on one episode"""
    memory_mb: int = 2048
    """memory limit of the sandboxed child"""


def main(argv=None) -> None:
    from tts_gym.discovery.history import RunDir, read_json, write_atomic, write_json
    from tts_gym.discovery.loop import select_best
    from tts_gym.discovery.prices import cost_usd
    from tts_gym.discovery.proposer import (Proposer, ProposerConfig, build_prompt, extract_code,
                                            response_text, response_usage)
    from tts_gym.discovery.sandbox import (ControllerEvaluation, SandboxLimits, SearchSet,
                                           evaluate_controller)

    args = parse_dataclass(Args, argv, __doc__)
    run = RunDir(args.out)
    if run.exists() and not args.resume:
        raise SystemExit(f"{args.out} holds a run; pass --resume")
    write_json(run.config_path, dataclasses.asdict(args))

    # 1. the search set: the stores a controller is scored on (gold answers stay in this process)
    stores = resolve_stores(args.data, args.models, args.benchmark)
    search = SearchSet(stores, seeds=range(args.seeds))
    limits = SandboxLimits(timeout_s=60 + 0.5 * search.num_episodes,
                           episode_timeout_s=args.episode_timeout, memory_mb=args.memory_mb)
    proposer = Proposer(ProposerConfig(model=args.model, max_tokens=args.max_tokens,
                                       base_url=args.base_url))
    search_info = {"stores": search.names, "seeds": args.seeds, "betas": args.betas}

    def evaluate_into(folder: Path, code: str) -> dict:
        """Sandboxed beta sweep; scores.json + traces.md (trace summaries for the proposer)."""
        ev = evaluate_controller(code, search, args.betas, limits)
        traces = ev.trace_summaries(search, args.select_beta) if ev.ok else ""
        write_atomic(folder / "traces.md", traces)
        write_json(folder / "scores.json", ev.to_json())
        return ev.to_json()

    # 2. a seed controller (e.g. CMC), so the first proposal has something to improve on
    seed_names = []
    if args.seed_controller:
        name = Path(args.seed_controller).stem
        seed_names.append(name)
        folder = run.seed_dir(name)
        if not (folder / "scores.json").exists():
            code = Path(args.seed_controller).read_text()
            write_atomic(folder / "controller.py", code)
            print(f"seed {name}: {headline(evaluate_into(folder, code), args.select_beta)}")

    # 3. the loop
    t0 = time.monotonic()
    for r in range(args.rounds):
        folder = run.round_dir(r)
        if run.round_done(r):
            continue
        # 3a. prompt from the history (code, curves, failures, traces of every earlier candidate)
        request = read_json(folder / "request.json")
        if request is None:
            system, user = build_prompt(run.history(r, seed_names), search=search_info,
                                        select_beta=args.select_beta)
            request = proposer.request_params(system, user)
            write_atomic(folder / "prompt.md", f"<!-- system -->\n{system}\n\n<!-- user -->\n{user}\n")
            write_json(folder / "request.json", request)
        # 3b. one paid request; the raw response hits the disk before anything else
        response = read_json(folder / "response.json")
        if response is None:
            response = proposer.request(request)
            write_json(folder / "response.json", response)
        usage = response_usage(response)
        usage["usd"] = cost_usd(args.model, usage["input_tokens"], usage["output_tokens"],
                                usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"])
        write_json(folder / "usage.json", usage)
        # 3c. the code, evaluated in the sandbox (or the reason there is none)
        scores = read_json(folder / "scores.json")
        if scores is None:
            code, error = extract_code(response_text(response), response.get("stop_reason"))
            if code is None:
                scores = ControllerEvaluation(False, args.betas, search.names, "no_code", error).to_json()
                write_json(folder / "scores.json", scores)
                write_atomic(folder / "traces.md", "")
            else:
                write_atomic(folder / "controller.py", code)
                scores = evaluate_into(folder, code)
        # 3d. the round is finished only now
        write_json(folder / "round.json", {"round": r, "ok": scores["ok"], "usd": usage["usd"],
                                           "input_tokens": usage["input_tokens"],
                                           "output_tokens": usage["output_tokens"]})
        cost = f"${usage['usd']:.3f}" if usage["usd"] is not None else "$?"
        print(f"round {r}: {headline(scores, args.select_beta)}  [{cost}, {time.monotonic() - t0:.0f} s]")

    # 4. the best candidate by search accuracy at the selection beta
    best = select_best(run.history(args.rounds), args.select_beta)
    totals = run.usage_totals()
    print(f"{totals['requests']} requests, ${totals['usd']:.2f}")
    if best is None:
        print("no candidate succeeded")
        return
    write_atomic(run.root / "best_controller.py", best["code"])
    print(f"best: {best['label']}: {headline(best['scores'], args.select_beta)} -> "
          f"{run.root / 'best_controller.py'}")


def headline(scores: dict, beta: float) -> str:
    if not scores["ok"]:
        return f"FAILED ({scores['error_kind']}): {(scores['error'] or '').strip().splitlines()[-1][:100]}"
    return "  ".join(f"b={p['beta']:g}: {p['accuracy']:.1f}% / {p['tokens'] / 1e3:.0f}k"
                     + ("*" if p["beta"] == beta else "") for p in scores["per_beta"])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
