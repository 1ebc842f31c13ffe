"""Collection throughput of ``tts-gym collect``: concurrent vs sequential requests.

Starts the loopback OpenAI-compatible server of the tests (``tests/loopback_server.py``) in its own
process, with a simulated serving latency of
``latency + latency_per_token * completion_tokens`` seconds per request (asyncio sleeps, so
concurrent requests overlap as on a batching server) -- and collects the same questions twice:
with one request in flight (sequential), then with ``--concurrency`` requests in flight. Prints
requests/s and tokens/s side by side with the ratio, and checks that both runs produced the same
store (sampling is seeded per request, so concurrency must not change the data).

Backends: ``hash`` (default; characters from a keyed hash, negligible compute, so the simulated
latency models a GPU server whose per-request latency barely depends on the load) and
``tiny-gpt2`` (the tests' real 2-layer GPT-2; its forward passes run on one server thread, so on a
small CPU the server itself is the bottleneck -- about 70 ms of compute per 16-token request here --
and concurrency gains little: that measures the server, not the collector).

    python benchmarks/collect_throughput.py                       # ~15 s on 2 cores
    python benchmarks/collect_throughput.py --backend tiny-gpt2   # ~75 s, compute-bound server

Everything stays on 127.0.0.1; the server stops by itself after ``--max-seconds``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def start_server(args) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, str(REPO / "tests" / "loopback_server.py"), "--port", "0", "--backend", args.backend,
           "--model-name", "tiny", "--latency", str(args.latency), "--latency-per-token",
           str(args.latency_per_token), "--max-seconds", str(args.max_seconds)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("loopback server failed to start")
    return proc, json.loads(line)["url"]


def run_once(url: str, questions, cfg, concurrency: int, questions_in_flight: int, workdir: Path, tag: str):
    from tts_gym.collect import collect

    t0 = time.perf_counter()
    res = collect(cfg, questions, base_url=url, output=workdir / f"{tag}.h5", benchmark="bench",
                  concurrency=concurrency, questions_in_flight=questions_in_flight, progress="none", restart=True)
    wall = time.perf_counter() - t0
    u = res.run_usage
    return {"wall_s": wall, "requests": u.requests, "completion_tokens": u.completion_tokens,
            "trajectory_tokens": int(res.store.branch_tokens.sum()), "prompt_tokens": u.prompt_tokens,
            "req_per_s": u.requests / wall, "tok_per_s": u.completion_tokens / wall,
            "traj_tok_per_s": int(res.store.branch_tokens.sum()) / wall, "store": res.store}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("hash", "tiny-gpt2"), default="hash")
    p.add_argument("--questions", type=int, default=4)
    p.add_argument("--branches", type=int, default=16)
    p.add_argument("--interval", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--probe-max-tokens", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--questions-in-flight", type=int, default=2)
    p.add_argument("--latency", type=float, default=0.01, help="simulated seconds per request")
    p.add_argument("--latency-per-token", type=float, default=0.002, help="simulated seconds per generated token")
    p.add_argument("--max-seconds", type=float, default=900.0, help="the server's lifetime")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    from tts_gym.collect import CollectConfig, Question

    questions = [Question(i, f"b{i}", f"[qid:b{i}] Compute {i} times {i + 3}.", str(i * (i + 3)))
                 for i in range(args.questions)]
    cfg = CollectConfig.with_template("tiny", "raw", branches=args.branches, interval=args.interval,
                                      max_tokens=args.max_tokens, instruction="", temperature=1.0, top_p=0.95,
                                      probe_max_tokens=args.probe_max_tokens, seed=0)
    proc, url = start_server(args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            seq = run_once(url, questions, cfg, 1, 1, work, "sequential")
            par = run_once(url, questions, cfg, args.concurrency, args.questions_in_flight, work, "concurrent")
    finally:
        proc.terminate()
        proc.wait(10)
    same = seq["store"].equals(par["store"])
    print(f"collect throughput: backend {args.backend}, {args.questions} questions x {args.branches} branches, "
          f"interval {args.interval}, max {args.max_tokens} tokens, probes of {args.probe_max_tokens} tokens; "
          f"simulated latency {args.latency * 1000:.0f} ms + {args.latency_per_token * 1000:.1f} ms/token")
    rows = [("requests", "requests", "{:,.0f}"), ("completion tokens (all requests)", "completion_tokens", "{:,.0f}"),
            ("trajectory tokens", "trajectory_tokens", "{:,.0f}"), ("wall time (s)", "wall_s", "{:.2f}"),
            ("requests/s", "req_per_s", "{:,.1f}"), ("completion tokens/s", "tok_per_s", "{:,.0f}"),
            ("trajectory tokens/s", "traj_tok_per_s", "{:,.0f}")]
    head = f"{'':34s} {'sequential':>12s} {f'concurrency {args.concurrency}':>16s} {'ratio':>8s}"
    print(head)
    print("-" * len(head))
    for label, key, fmt in rows:
        ratio = par[key] / seq[key] if seq[key] else float("nan")
        if key == "wall_s":
            ratio = seq[key] / par[key]
        show_ratio = f"{ratio:.2f}x" if key not in ("requests", "completion_tokens", "trajectory_tokens") else ""
        print(f"{label:34s} {fmt.format(seq[key]):>12s} {fmt.format(par[key]):>16s} {show_ratio:>8s}")
    print(f"identical stores: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "store"}
                                               for k, v in (("sequential", seq), ("concurrent", par))}, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
