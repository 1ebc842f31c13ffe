"""``tts-gym collect``: sample a replay store from an OpenAI-compatible completions server.

Example (vLLM serving Qwen3-1.7B on port 8000)::

    tts-gym collect --base-url http://localhost:8000 --model Qwen/Qwen3-1.7B \\
        --questions aime25.jsonl --branches 128 --interval 500 -o qwen3-1.7b.h5

Interrupted runs resume from the per-question checkpoints in ``OUT.h5.ckpt/`` when rerun with the
same options. Trajectories are probed every --interval tokens for the answer the model would give
at that point, with an answer-forcing suffix; needs pip install 'tts_gym[collect]'.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from tts_gym.cli.args import add_command, float_in, int_in, positive_float, positive_int, run_standalone
from tts_gym.data.store import MAX_BRANCHES, MAX_PROBE_INTERVAL

HELP = "sample reasoning trajectories from an OpenAI-compatible server into a replay store"

DESCRIPTION = """\
Build a replay store from a live model: sample --branches trajectories per question from an
OpenAI-compatible completions server (vLLM, SGLang, llama.cpp), probe each one every --interval
tokens for the answer it would give at that point (an answer-forcing suffix), and write the store
in HDF5. Finished questions are checkpointed: an interrupted run resumes when rerun with the same
options. Needs pip install 'tts_gym[collect]'.
"""

EPILOG = """\
example (vLLM serving Qwen3-1.7B on port 8000):
  tts-gym collect --base-url http://localhost:8000 --model Qwen/Qwen3-1.7B \\
      --questions aime25.jsonl --branches 128 --interval 500 -o qwen3-1.7b.h5
"""


def add_server_arguments(p: argparse.ArgumentParser, *, concurrency: int = 64):
    """``--base-url``, ``--model``, ``--api-key``, ``--extra-body`` and the client's limits (shared by
    ``tts-gym collect`` and ``tts-gym run``); returns the argument group."""
    g = p.add_argument_group("server")
    g.add_argument("--base-url", required=True, help="server root, e.g. http://localhost:8000 (or .../v1)")
    g.add_argument("--model", required=True, help="model name as the server knows it")
    g.add_argument("--api-key", default=None,
                   help="bearer token (default: $TTS_GYM_API_KEY or $OPENAI_API_KEY if set)")
    g.add_argument("--extra-body", default=None, metavar="JSON",
                   help='extra request fields, e.g. \'{"skip_special_tokens": false}\'')
    g.add_argument("--concurrency", type=int_in(1, 100_000), default=concurrency,
                   help=f"max requests in flight (default {concurrency})")
    g.add_argument("--timeout", type=positive_float, default=600.0, help="per-request timeout in seconds (default 600)")
    g.add_argument("--max-retries", type=int_in(0, 1000), default=8,
                   help="retries on 5xx/429/timeouts/connection errors, exponential backoff (default 8)")
    g.add_argument("--backoff", type=float_in(0.0, 3600.0), default=0.5, help="first backoff delay in seconds (default 0.5)")
    return g


def add_sampling_arguments(p: argparse.ArgumentParser, *, branches: int = 128,
                           branches_help: str = "trajectories per question (default 128)"):
    """The sampling, prompt and probing options that make a :class:`CollectConfig` (shared by
    ``tts-gym collect`` and ``tts-gym run``; see :func:`config_from_args`); returns the probing
    argument group."""
    from tts_gym.collect.collector import (CHAT_TEMPLATES, DEFAULT_INSTRUCTION, DEFAULT_PROBE_SUFFIX,
                                           DEFAULT_PROBE_SUFFIX_AFTER_THINK, DEFAULT_TEMPLATE, FINAL_MODES)

    g = p.add_argument_group("sampling")
    g.add_argument("--branches", type=int_in(1, MAX_BRANCHES), default=branches, help=branches_help)
    g.add_argument("--interval", type=int_in(1, MAX_PROBE_INTERVAL), default=500, help="probe interval Δ in tokens (default 500)")
    g.add_argument("--max-tokens", type=int_in(1, 2**31 - 1), default=32768, help="token cap per trajectory (default 32768)")
    g.add_argument("--temperature", type=float_in(0.0, 100.0), default=0.6,
                   help="sampling temperature of the trajectories (default 0.6, Qwen3's thinking mode)")
    g.add_argument("--top-p", type=float_in(0.0, 1.0, low_open=True), default=0.95,
                   help="nucleus sampling top-p (default 0.95)")
    g.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0, help="base of the per-request seeds (default 0)")
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")

    g = p.add_argument_group("prompt")
    g.add_argument("--template", default=DEFAULT_TEMPLATE,
                   help=f"chat template: {', '.join(CHAT_TEMPLATES)}, or a file containing {{question}} "
                        f"(and optionally {{system}}); default {DEFAULT_TEMPLATE}")
    g.add_argument("--system", default="", help="system message (default none)")
    g.add_argument("--instruction", default=DEFAULT_INSTRUCTION,
                   help="text appended to every question (default: reason step by step, answer in \\boxed{})")

    g = p.add_argument_group("probing")
    g.add_argument("--probe-suffix", default=DEFAULT_PROBE_SUFFIX,
                   help="answer-forcing suffix while the model is still thinking (must end with \\boxed{)")
    g.add_argument("--probe-suffix-after-think", default=DEFAULT_PROBE_SUFFIX_AFTER_THINK,
                   help="suffix once the text holds --think-end")
    g.add_argument("--think-end", default="</think>", help="tag that closes the thinking section")
    g.add_argument("--probe-max-tokens", type=int_in(1, 1_000_000), default=16,
                   help="tokens decoded per probe (default 16)")
    g.add_argument("--probe-temperature", type=float_in(0.0, 100.0), default=0.0,
                   help="sampling temperature of the probes (default 0: greedy)")
    g.add_argument("--probe-unclosed", choices=("keep", "err"), default="keep",
                   help="a probe whose box is not closed within the decoded tokens: keep the text or ERR")
    g.add_argument("--final-answer", choices=FINAL_MODES, default="extract-or-force",
                   help="the final answer: extract = the last \\boxed{} of the trajectory (ERR if "
                        "none); force = an answer-forcing probe at its end; extract-or-force (default) "
                        "= extract, forcing for a trajectory cut at --max-tokens or without a box")
    return g


def config_from_args(args: argparse.Namespace, **extra):
    """The :class:`CollectConfig` of the parsed sampling options (``ValueError``/``CollectError`` on
    bad values)."""
    from tts_gym.collect.collector import CollectConfig

    body = json.loads(args.extra_body) if args.extra_body else {}
    if not isinstance(body, dict):
        raise ValueError("--extra-body must be a JSON object")
    return CollectConfig.with_template(
        args.model, args.template, branches=args.branches, interval=args.interval,
        max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed,
        system=args.system, instruction=args.instruction, stop=tuple(args.stop),
        probe_suffix=args.probe_suffix, probe_suffix_after_think=args.probe_suffix_after_think,
        think_end=args.think_end, probe_max_tokens=args.probe_max_tokens,
        probe_temperature=args.probe_temperature, probe_unclosed=args.probe_unclosed,
        final_answer=args.final_answer, extra_body=body, **extra)


def api_key_from(args: argparse.Namespace) -> str | None:
    return args.api_key or os.environ.get("TTS_GYM_API_KEY") or os.environ.get("OPENAI_API_KEY")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = add_server_arguments(p)
    g.add_argument("--questions-in-flight", type=int_in(1, 100_000), default=2,
                   help="questions sampled at once; finished ones are checkpointed (default 2)")

    g = p.add_argument_group("data")
    g.add_argument("--questions", required=True, metavar="FILE.jsonl",
                   help='one JSON object per line: {"question": ..., "gold_answer": ..., "id": optional}')
    g.add_argument("--limit", type=positive_int, default=None, help="only the first N questions")
    g.add_argument("-o", "--output", required=True, metavar="OUT.h5", help="HDF5 store file to write")
    g.add_argument("--store-model", default=None,
                   help="model name of the store (default: last path component of --model)")
    g.add_argument("--benchmark", default=None, help="benchmark name of the store (default: questions file stem)")
    g.add_argument("--append", action="store_true", help="keep the other stores already in OUT.h5")
    g.add_argument("--overwrite", action="store_true", help="replace an existing OUT.h5")
    g.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                   help="where finished questions are checkpointed (default: OUT.h5.ckpt next to the output)")
    g.add_argument("--restart", action="store_true", help="discard existing checkpoints")
    g.add_argument("--keep-checkpoints", action="store_true", help="keep the checkpoints after success")
    g.add_argument("--answer-merging", choices=("none", "math-verify"), default="none",
                   help="merge math-equivalent answers per question (needs tts_gym[answers]); default none")

    add_sampling_arguments(p).add_argument(
        "--append-final-probe", action="store_true",
        help="append the final answer as the last probe (AutoTTS convention)")

    g = p.add_argument_group("output")
    g.add_argument("--progress", choices=("auto", "rich", "plain", "none"), default="auto",
                   help="progress display: rich bars, plain log lines, or none; auto (default) = rich "
                        "on a terminal, plain lines otherwise")
    g.add_argument("--no-progress", dest="progress", action="store_const", const="none",
                   help="same as --progress none")


def run(args: argparse.Namespace) -> int:
    from tts_gym.collect.collector import (CollectError, collect, default_checkpoint_dir, format_summary,
                                           load_questions)

    out = Path(args.output)
    if args.overwrite and args.append:
        print("tts-gym collect: error: --overwrite and --append cannot be used together", file=sys.stderr)
        return 2
    from tts_gym.files import check_output_path
    check_output_path(out, what="output", create_parent=False)   # before any request
    if out.exists() and not (args.overwrite or args.append):
        print(f"tts-gym collect: error: {out} exists: pass --overwrite to replace it or --append to add to it",
              file=sys.stderr)
        return 2
    try:
        cfg = config_from_args(args, append_final_probe=args.append_final_probe)
        questions = load_questions(args.questions, args.limit)
    except (CollectError, ValueError) as exc:
        print(f"tts-gym collect: error: {exc}", file=sys.stderr)
        return 2
    if args.answer_merging == "math-verify":
        from tts_gym.data.answers import math_verify_available
        if not math_verify_available():
            print("tts-gym collect: --answer-merging math-verify needs math-verify: "
                  "pip install 'tts_gym[answers]'", file=sys.stderr)
            return 2
    api_key = api_key_from(args)
    ckpt = args.checkpoint_dir or default_checkpoint_dir(out)
    print(f"collect: {len(questions)} questions x {cfg.branches} branches, interval {cfg.interval}, "
          f"max {cfg.max_tokens} tokens, concurrency {args.concurrency}; checkpoints in {ckpt}",
          file=sys.stderr)
    try:
        result = collect(
            cfg, questions, base_url=args.base_url, output=out, store_model=args.store_model,
            benchmark=args.benchmark or Path(args.questions).stem, checkpoint_dir=ckpt,
            concurrency=args.concurrency, questions_in_flight=args.questions_in_flight, progress=args.progress,
            restart=args.restart, keep_checkpoints=args.keep_checkpoints, append=args.append,
            answer_merging=args.answer_merging,
            client_kwargs={"timeout": args.timeout, "max_retries": args.max_retries,
                           "backoff_base": args.backoff, "api_key": api_key})
    except CollectError as exc:
        print(f"tts-gym collect: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except Exception as exc:  # CompletionError, StoreFormatError, ...: the checkpoints stay
        from tts_gym.cli.errors import classify
        hit = classify(exc)
        if hit is None:
            raise
        print(f"tts-gym collect: error: {hit[1]} (finished questions are checkpointed in {ckpt}; rerun "
              f"the same command to resume)", file=sys.stderr)
        return 1
    for line in format_summary(result):
        print(line)
    print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    add_command(subparsers, "collect", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                add_arguments=add_arguments, run=run)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m tts_gym.cli.collect``), same as ``tts-gym collect``."""
    return run_standalone("tts-gym collect", argv, description=DESCRIPTION, epilog=EPILOG,
                          add_arguments=add_arguments, run=run,
                          interrupted="finished questions are checkpointed; rerun to resume")


if __name__ == "__main__":
    sys.exit(main())
