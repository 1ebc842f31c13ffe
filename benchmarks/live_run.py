"""Live runs (``tts_gym.online``): SC@N vs CMC on the same questions, concurrent vs sequential branches.

Plays SC@N (``sc``, ``max_samples=N``) and CMC (``beta``) live on the same questions against one
server, each twice: with requests made ahead of the policy (``prefetch``, the default: the next
interval of every live branch and the next new positions are requested concurrently) and with one
request at a time (``--no-prefetch``: exactly the requests the policy's actions need, in order).
Prints, side by side, the wall time per question (first action to committed answer; the runs do not
record a store), the tokens charged (the replay's accounting), the
answer-forcing tokens, the requests and the tokens generated ahead and never read, per question,
with the ratios CMC / SC and concurrent / sequential. The two modes must give the same answers and
charged tokens (checked).

Servers:

* ``--server llama`` (default): the real llama.cpp server of the tests (``python -m llama_cpp.server``
  with Gemma 3 270M, ``tests/llama_cpp_server.py``; needs the ``llamacpp`` extra), started on a free
  loopback port. llama-cpp-python's server decodes one request at a time, so concurrent branches
  cannot overlap there; what concurrency changes is only the order of the requests (and so what
  its single-sequence prompt cache can reuse).
* ``--server loopback``: the tests' loopback server with a simulated serving latency of
  ``latency + latency_per_token * tokens`` per request, overlapping like a batching server (vLLM,
  SGLang): a model of what concurrency buys on such a server, not a measurement of one.
* ``--base-url URL --model NAME``: any running OpenAI-compatible server (vLLM, SGLang, llama.cpp).

    python benchmarks/live_run.py                          # real llama.cpp, ~15-30 min on 2 busy cores
    python benchmarks/live_run.py --server loopback        # seconds
    python benchmarks/live_run.py --base-url http://localhost:8000 --model Qwen/Qwen3-1.7B --interval 500 \\
        --max-tokens 8192 --branches 64 --template chatml-think
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

QUESTIONS = [("What is 7 + 5?", "12"), ("What is 3 * 4?", "12"), ("What is 20 - 6?", "14"),
             ("What is 9 + 8?", "17"), ("What is 6 * 7?", "42"), ("What is 100 - 37?", "63")]


def play(policy, params, questions, server, cfg, prefetch: bool):
    from tts_gym.online import run

    t0 = time.perf_counter()
    res = run(policy, questions, server, config=cfg, params=params, prefetch=prefetch, shuffle_seed=0, record=False)
    wall = time.perf_counter() - t0
    s = res.summary()
    return {"policy": policy, "params": params, "prefetch": prefetch, "wall_s_per_q": s["wall_s_per_question"],
            "run_wall_s": wall,
            "tokens_per_q": s["tokens_per_question"], "probe_tokens_per_q": s["probe_tokens_per_question"],
            "requests_per_q": s["requests_per_question"],
            "speculative_tokens_per_q": s["speculative_tokens_per_question"], "accuracy": s["accuracy"],
            "answers": [r.answer for r in res.results], "tokens": [r.tokens for r in res.results],
            "max_in_flight": None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", choices=("llama", "loopback"), default="llama")
    p.add_argument("--base-url", default=None, help="an external server instead (with --model)")
    p.add_argument("--model", default=None)
    p.add_argument("--questions", type=int, default=3, help=f"questions (at most {len(QUESTIONS)} built in)")
    p.add_argument("--questions-file", default=None, help="a JSONL questions file instead")
    p.add_argument("--branches", type=int, default=8, help="N of SC@N, and the positions CMC may open")
    p.add_argument("--beta", type=float, default=0.5, help="CMC's beta")
    p.add_argument("--interval", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--probe-max-tokens", type=int, default=8)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--template", default=None, help="default: gemma (llama), raw (loopback), chatml (external)")
    p.add_argument("--concurrency", type=int, default=16, help="client requests in flight at most")
    p.add_argument("--latency", type=float, default=0.05, help="loopback: simulated seconds per request")
    p.add_argument("--latency-per-token", type=float, default=0.01, help="loopback: simulated seconds per token")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    from tts_gym.collect import CollectConfig
    from tts_gym.online import Server, as_questions

    if args.questions_file:
        questions = as_questions(args.questions_file, args.questions)
    else:
        questions = as_questions([{"id": f"q{i}", "question": q, "answer": a}
                                  for i, (q, a) in enumerate(QUESTIONS[:args.questions])])
    cleanup = None
    if args.base_url:
        if not args.model:
            p.error("--base-url needs --model")
        url, model, kind, template = args.base_url, args.model, "external", args.template or "chatml"
    elif args.server == "llama":
        from llama_cpp_server import LlamaServer, gguf_path
        log = Path(tempfile.mkdtemp(prefix="live_run_")) / "llama_server.log"
        srv = LlamaServer(gguf_path(), log).start()
        cleanup = srv.stop
        url, model, kind, template = srv.url, srv.model, "llama.cpp (llama-cpp-python server, Gemma 3 270M Q4_K_M)", \
            args.template or "gemma"
    else:
        from loopback_server import HashLM, LoopbackServer
        srv = LoopbackServer(HashLM(seed=1, p_eos=0.02), model_name="tiny", latency=args.latency,
                             latency_per_token=args.latency_per_token).start()
        cleanup = srv.stop
        url, model, kind, template = srv.url, "tiny", (f"loopback (simulated batching server: {args.latency} s + "
                                                     f"{args.latency_per_token} s/token per request)"), args.template or "raw"
    cfg = CollectConfig.with_template(model, template, branches=args.branches, interval=args.interval,
                                      max_tokens=args.max_tokens, probe_max_tokens=args.probe_max_tokens,
                                      temperature=args.temperature, top_p=0.95, seed=0,
                                      **({"instruction": ""} if template == "raw" else {}))
    server = Server(url, model, concurrency=args.concurrency)
    rows = []
    try:
        print(f"server: {kind}; {len(questions)} questions, SC@{args.branches} vs CMC(beta={args.beta}), "
              f"interval {args.interval}, max {args.max_tokens} tokens, {os.cpu_count()} CPUs "
              f"({platform.processor() or platform.machine()})", flush=True)
        for policy, params in (("sc", {"max_samples": args.branches}), ("cmc", {"beta": args.beta})):
            for prefetch in (False, True):
                r = play(policy, params, questions, server, cfg, prefetch)
                rows.append(r)
                print(f"  {policy:>3} {'concurrent' if prefetch else 'sequential':>10}: {r['wall_s_per_q']:8.2f} s/q  "
                      f"{r['tokens_per_q']:9.1f} tok/q  {r['probe_tokens_per_q']:7.1f} probe tok/q  "
                      f"{r['requests_per_q']:6.1f} req/q  {r['speculative_tokens_per_q']:7.1f} unread tok/q", flush=True)
    finally:
        if cleanup is not None:
            cleanup()
    by = {(r["policy"], r["prefetch"]): r for r in rows}
    for policy in ("sc", "cmc"):
        seq, con = by[(policy, False)], by[(policy, True)]
        if (seq["answers"], seq["tokens"]) != (con["answers"], con["tokens"]):
            print(f"MISMATCH: {policy} concurrent and sequential runs differ", file=sys.stderr)
            return 1
    print()
    print(f"{'':24s}{'SC@' + str(args.branches):>14s}{'CMC':>14s}{'CMC / SC':>12s}")
    for key, label in (("tokens_per_q", "tokens / question"), ("wall_s_per_q", "wall s / question (conc.)")):
        a, b = by[("sc", True)][key], by[("cmc", True)][key]
        print(f"{label:24s}{a:14.2f}{b:14.2f}{(b / a if a else float('nan')):12.3f}")
    for policy in ("sc", "cmc"):
        seq, con = by[(policy, False)], by[(policy, True)]
        print(f"{policy + ' concurrent speed-up':24s}{seq['wall_s_per_q']:12.2f} s{con['wall_s_per_q']:12.2f} s"
              f"{seq['wall_s_per_q'] / con['wall_s_per_q']:11.2f}x")
    acc = {pol: by[(pol, True)]["accuracy"] for pol in ("sc", "cmc")}
    print(f"accuracy: SC {acc['sc']:.1f} %, CMC {acc['cmc']:.1f} %  (answers identical in both modes)")
    if args.json:
        Path(args.json).write_text(json.dumps({"server": kind, "config": cfg.to_dict(), "rows": rows,
                                               "cpus": os.cpu_count()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
