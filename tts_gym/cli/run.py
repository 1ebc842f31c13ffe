"""``tts-gym run``: play a policy live against an OpenAI-compatible completions server.

The policy objects that ``tts-gym eval`` replays act on live requests instead (``tts_gym.online``):
BRANCH starts a new sampled trajectory, CONTINUE(i) generates its next Δ tokens, PROBE asks for the
intermediate answer with the collector's answer-forcing continuation, SAMPLE reads a branch to its
end. Tokens are charged exactly as the replay charges them. Examples (vLLM serving Qwen3-1.7B)::

    tts-gym run --base-url http://localhost:8000 --model Qwen/Qwen3-1.7B \\
        --questions aime25.jsonl --policy cmc --param beta=0.5 -o runs/aime25-cmc
    tts-gym run ... --controller agents/controllers/cmc.py --param beta=0.5
    tts-gym run ... --agent maskable_ppo_aime24 --param cost_weight=0.01

Writes ``PREFIX.json`` (summary, per-question results, configuration), ``PREFIX.csv`` (one row per
question) and ``PREFIX.h5``, the replay store of what the run sampled (``--record-mode``; ``--no-record``
to skip it). Finished questions are checkpointed in ``PREFIX.ckpt/``: a run stopped by a dead server
or Ctrl-C resumes when the same command is rerun.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tts_gym.cli.args import add_command, run_standalone

HELP = "play a policy live against an OpenAI-compatible server (answers, tokens, a replay store)"

DESCRIPTION = """\
Play a policy live: the policies that eval replays act on a running model instead. BRANCH starts a
new sampled trajectory, CONTINUE generates its next --interval tokens, PROBE asks for the answer it
would give at that point (the answer-forcing suffix of collect), SAMPLE reads a trajectory to its
end. Tokens are counted exactly as the replay counts them; answer-forcing tokens are reported apart.

Writes PREFIX.json (summary, answers, tokens, requests, wall time per question), PREFIX.csv (one row
per question) and PREFIX.h5, the replay store of what the run sampled (--no-record skips it).
Answered questions are checkpointed in PREFIX.ckpt/: a run stopped by a dead server or Ctrl-C
resumes when the same command is rerun. Needs pip install 'tts_gym[collect]'.
"""

EPILOG = """\
examples (vLLM serving Qwen3-1.7B on port 8000):
  tts-gym run --base-url http://localhost:8000 --model Qwen/Qwen3-1.7B --template chatml-think \\
      --questions aime25.jsonl --policy cmc --param beta=0.5 -o runs/aime25-cmc
  tts-gym run ... --controller agents/controllers/cmc.py --param beta=0.5
  tts-gym run ... --agent maskable_ppo_aime24 --param cost_weight=0.01
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from tts_gym.cli.collect import add_sampling_arguments, add_server_arguments

    g = add_server_arguments(p, concurrency=16)
    g.add_argument("--questions-in-flight", type=int, default=1,
                   help="questions played at once, each with a copy of the policy (default 1)")

    g = p.add_argument_group("policy (one of --policy, --controller, --agent)")
    g.add_argument("--policy", default=None,
                   help="a built-in policy: sc, asc, esc, parallel_probe (pp), cmc")
    g.add_argument("--controller", default=None, metavar="FILE",
                   help="a controller file with solve(question) (as written by tts-gym discover); --param beta=B")
    g.add_argument("--agent", default=None, metavar="NAME",
                   help="a trained RL agent (a shipped one by name, or the path of its .zip); --param cost_weight=W, greedy=true, seed=S")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="policy parameter (repeatable), e.g. --param beta=0.5")
    g.add_argument("--params", default=None, metavar="JSON", help="policy parameters as a JSON object")

    g = p.add_argument_group("questions and episodes")
    g.add_argument("--questions", required=True, metavar="FILE.jsonl",
                   help='one JSON object per line: {"question": ..., "gold_answer": optional, "id": optional}')
    g.add_argument("--limit", type=int, default=None, help="only the first N questions")
    g.add_argument("--token-budget", type=int, default=None,
                   help="tokens per question after which only answering actions remain (default none)")
    g.add_argument("--unfused", action="store_true",
                   help="CONTINUE does not reveal the answer; PROBE(i) asks for it (default: fused, as the replay)")
    g.add_argument("--shuffle-seed", type=int, default=None,
                   help="position p plays trajectory perm[p] of this reference shuffle seed instead of p")
    g.add_argument("--no-prefetch", action="store_true",
                   help="request only what the policy's action needs (default: also the next interval of every "
                        "live branch and the next --lookahead new ones)")
    g.add_argument("--lookahead", type=int, default=8, help="unopened positions requested ahead (default 8)")

    add_sampling_arguments(p, branches=64, branches_help="positions a policy may open per question (default 64)")

    g = p.add_argument_group("output")
    g.add_argument("-o", "--output", default=None, metavar="PREFIX",
                   help="writes PREFIX.json, PREFIX.csv, PREFIX.h5 (default: <questions stem>.<policy> here)")
    g.add_argument("--no-record", action="store_true", help="do not write the replay store PREFIX.h5")
    g.add_argument("--record-mode", choices=("finished", "complete"), default="finished",
                   help="store the trajectories that reached their end (default), or finish every opened one first")
    g.add_argument("--store-model", default=None, help="model name of the store (default: last part of --model)")
    g.add_argument("--benchmark", default=None, help="benchmark name of the store (default: questions file stem)")
    g.add_argument("--append", action="store_true", help="keep the other stores already in PREFIX.h5")
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    g.add_argument("--restart", action="store_true", help="discard the checkpoints of an interrupted run")
    g.add_argument("--keep-checkpoints", action="store_true", help="keep PREFIX.ckpt/ after success")
    g.add_argument("--progress", choices=("auto", "rich", "plain", "none"), default="auto",
                   help="progress display: a rich bar, one line per question, or none; auto (default) = rich "
                        "on a terminal, lines otherwise")
    g.add_argument("--no-progress", dest="progress", action="store_const", const="none",
                   help="same as --progress none")


def _agent_policy(name: str, params: dict):
    unknown = sorted(set(params) - {"cost_weight", "greedy", "seed"})
    if unknown:
        raise ValueError(f"an agent takes --param cost_weight=W / greedy=true / seed=S, got {unknown}")
    try:
        from tts_gym.rl import load_agent_policy
    except ImportError as exc:
        raise ValueError(f"--agent needs the rl extra (pip install 'tts_gym[rl]'): {exc}") from None
    weight = params.get("cost_weight", params.get("gamma"))
    try:
        # the agent's operating point (its cost weight) is load_agent_policy's second argument
        return load_agent_policy(name, weight, deterministic=bool(params["greedy"]) if "greedy" in params else None,
                                 seed=int(params.get("seed", 0)))
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None


def build_policy(args: argparse.Namespace):
    """``(policy object, label)`` from ``--policy`` / ``--controller`` / ``--agent`` and the params."""
    from tts_gym.cli.eval import _controller_params, parse_params

    given = [x for x in (args.policy, args.controller, args.agent) if x]
    if len(given) != 1:
        raise ValueError("give exactly one of --policy NAME, --controller FILE or --agent NAME")
    params = parse_params(args.param, args.params)
    if args.agent:
        return _agent_policy(args.agent, params), Path(args.agent).stem
    if args.controller:
        from tts_gym.discovery.sandbox import load_controller_policy
        if not Path(args.controller).is_file():
            raise ValueError(f"{args.controller}: no such controller file")
        return load_controller_policy(args.controller, **_controller_params(params)), Path(args.controller).stem
    from tts_gym.policies.baselines import make_policy
    return make_policy(args.policy, **params), args.policy


def run(args: argparse.Namespace) -> int:
    from tts_gym.cli.collect import api_key_from, config_from_args
    from tts_gym.collect.collector import CollectError
    from tts_gym.online import LiveRunError, Server, as_questions
    from tts_gym.online import run as run_live

    prog = "tts-gym run"
    try:
        policy, label = build_policy(args)
        cfg = config_from_args(args)
        questions = as_questions(args.questions, args.limit)
    except (ValueError, TypeError, CollectError, LiveRunError, SyntaxError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    prefix = Path(args.output) if args.output else Path(f"{Path(args.questions).stem}.{label}")
    out_json, out_csv, out_h5 = (prefix.with_name(prefix.name + ext) for ext in (".json", ".csv", ".h5"))
    ckpt = prefix.with_name(prefix.name + ".ckpt")
    if not prefix.parent.is_dir():
        print(f"{prog}: error: {prefix.parent}: output directory does not exist", file=sys.stderr)
        return 2
    clash = [p for p in (out_json, out_csv) + (() if args.no_record else (out_h5,)) if p.exists()]
    if clash and not (args.overwrite or (args.append and clash == [out_h5])):
        print(f"{prog}: error: {clash[0]} exists: pass --overwrite to replace the outputs"
              + ("" if args.no_record else " (or --append to add the store to it)"), file=sys.stderr)
        return 2
    server = Server(args.base_url, args.model, api_key=api_key_from(args), concurrency=args.concurrency,
                    timeout=args.timeout, max_retries=args.max_retries, backoff=args.backoff)
    print(f"run: {label} on {args.questions} against {args.base_url} ({args.model}); interval {cfg.interval}, "
          f"max {cfg.max_tokens} tokens, up to {cfg.branches} branches; checkpoints in {ckpt}", file=sys.stderr)
    try:
        result = run_live(policy, questions, server, config=cfg, fused=not args.unfused,
                          token_budget=args.token_budget, shuffle_seed=args.shuffle_seed,
                          prefetch=not args.no_prefetch, lookahead=args.lookahead,
                          questions_in_flight=args.questions_in_flight,
                          record=None if args.no_record else out_h5, record_mode=args.record_mode,
                          append=args.append, store_model=args.store_model,
                          benchmark=args.benchmark or Path(args.questions).stem, checkpoint_dir=ckpt,
                          restart=args.restart, keep_checkpoints=args.keep_checkpoints, progress=args.progress)
    except (LiveRunError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a failing controller, a store that does not validate, ...: checkpoints stay
        print(f"{prog}: error: {type(exc).__name__}: {exc} (answered questions are checkpointed in {ckpt}; rerun the "
              f"same command to resume)", file=sys.stderr)
        return 1
    result.write_json(out_json)
    result.write_csv(out_csv)
    for line in result.format_summary():
        print(line)
    print(f"wrote {out_json}, {out_csv}" + (f", {result.record_path}" if result.record_path else ""))
    return 0


def register(subparsers) -> None:
    add_command(subparsers, "run", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                add_arguments=add_arguments, run=run)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m tts_gym.cli.run``), same as ``tts-gym run``."""
    return run_standalone("tts-gym run", argv, description=DESCRIPTION, epilog=EPILOG,
                          add_arguments=add_arguments, run=run,
                          interrupted="answered questions are checkpointed; rerun to resume")


if __name__ == "__main__":
    sys.exit(main())
