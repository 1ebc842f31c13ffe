"""This checkout's evaluation and env throughput next to another commit's, in one run.

    python benchmarks/layout_throughput.py                    # against bd33643 (before the staged layout)
    python benchmarks/layout_throughput.py --baseline HEAD~1 --reps 5
    python benchmarks/eval_throughput.py --baseline bd33643   # its own figures, then this comparison
    python benchmarks/env_throughput.py --baseline bd33643    # (the evaluation or the env part)

The other commit is exported with ``git archive`` into a temporary folder; the same measurement
script then runs in a fresh interpreter per checkout (``PYTHONPATH`` pointing at it), through the
public API both have, alternating checkouts ``--reps`` times and keeping each figure's best run
(the machine is shared; the best run is the least disturbed):

* **evaluation**: ``tts_gym.evaluate`` on the main table (SC@64, ASC@64 thr 0.95, ESC@64 w8,
  Parallel-Probe@64, CMC beta 0.5 and 1.0; the 12 stores x 100 reference seeds, 216,000
  episodes), wall seconds per method and in all, plus the one-store call (Qwen3-1.7B/aime25, 3,000
  episodes) per method;
* **env**: ``gymnasium.make("tts_gym/Replay-v0")`` stepped by a masked random policy (the mask
  from ``info["action_mask"]``), env-steps/s of env time (the policy's draw excluded); and the
  vector env (``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``, E = 1024,
  ``copy=False`` and ``copy=True``), masked random actions from ``action_masks()``, env-steps/s of
  ``step`` time.

Both checkouts' results are checked equal (accuracy and tokens per method and store). The last
column is this checkout's figure relative to the other's (> 1: faster here).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "autotts-replay"

MEASURE = r'''
import json, sys, time
import numpy as np
data, what = sys.argv[1], sys.argv[2]
import tts_gym
root = sys.argv[3]
assert tts_gym.__file__.startswith(root), (tts_gym.__file__, root)
# the flat layout first: an editable install's finder would otherwise serve this checkout's
# tts_gym.data to the other one
try:
    from tts_gym.datasets import resolve_store
except ImportError:
    from tts_gym.data.resolve import resolve_store
from tts_gym.evaluation.evaluate import evaluate

MAIN = [("SC@64", "sc", {"n": 64}), ("ASC@64 thr0.95", "asc", {"max_samples": 64, "threshold": 0.95}),
        ("ESC@64 w8", "esc", {"max_samples": 64, "window_size": 8}),
        ("PP@64", "parallel_probe", {"num_chains": 64, "T": 40, "prune_patience": 7, "warm_up": 15}),
        ("CMC b=0.5", "cmc", {"beta": 0.5}), ("CMC b=1.0", "cmc", {"beta": 1.0})]
MODELS = ("Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B")
out = {}
if what == "eval":
    stores = [resolve_store(data, m, b) for m in MODELS for b in ("aime24", "aime25", "hmmt25")]
    one = [s for s in stores if (s.model, s.benchmark) == ("Qwen3-1.7B", "aime25")]
    for label, fam, params in MAIN:                 # warm: compile or load every kernel
        evaluate(fam, one, params=params, seeds=range(2), progress=False)
    for label, fam, params in MAIN:
        t = time.perf_counter()
        res = evaluate(fam, stores, params=params, seeds=range(100), progress=False)
        out["main " + label] = time.perf_counter() - t
        out["rows " + label] = sorted((r["store"], round(r["accuracy"], 6), round(r["avg_tokens"], 4))
                                      for r in res.rows)
        best = None
        for _ in range(5):
            t = time.perf_counter()
            evaluate(fam, one, params=params, seeds=range(100), progress=False)
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
        out["one " + label] = best
else:
    import gymnasium as gym
    import tts_gym  # noqa: F401  (registers the env)
    store = resolve_store(data, "Qwen3-1.7B", "aime25")
    rng = np.random.default_rng(0)
    env = gym.make("tts_gym/Replay-v0", store=store, max_branches=64)
    obs, info = env.reset(seed=0)
    env_t, steps, t_end = 0.0, 0, time.perf_counter() + 3.0
    while time.perf_counter() < t_end:
        ids = np.flatnonzero(info["action_mask"])
        a = int(ids[rng.integers(len(ids))])
        t = time.perf_counter()
        obs, r, term, trunc, info = env.step(a)
        if term or trunc:
            obs, info = env.reset()
        env_t += time.perf_counter() - t
        steps += 1
    out["single env steps/s"] = steps / env_t
    for copy in (False, True):
        venv = gym.make_vec("tts_gym/Replay-v0", num_envs=1024, vectorization_mode="vector_entry_point",
                            store=store, max_branches=64, copy=copy)
        venv.reset(seed=0)
        step_t, steps, t_end = 0.0, 0, time.perf_counter() + 3.0
        while time.perf_counter() < t_end:
            m = venv.action_masks()
            u = rng.random(m.shape, dtype=np.float32)
            u[~m] = -1.0
            a = u.argmax(1)
            t = time.perf_counter()
            venv.step(a)
            step_t += time.perf_counter() - t
            steps += 1024
        out[f"vector E=1024 copy={copy} steps/s"] = steps / step_t
        venv.close()
print("RESULT " + json.dumps(out))
'''


def export(rev: str, dest: Path) -> Path:
    """``rev`` of this repository, as files under ``dest``."""
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", rev + "^{commit}"],
                         check=True, capture_output=True, text=True).stdout.strip()
    tar = dest / "src.tar"
    with open(tar, "wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", sha], check=True, stdout=fh)
    root = dest / sha[:12]
    with tarfile.open(tar) as tf:
        tf.extractall(root, filter="data")
    tar.unlink()
    return root


def measure(root: Path, data: Path, what: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root), NUMBA_CACHE_DIR=str(root / ".numba-cache"))
    proc = subprocess.run([sys.executable, "-c", MEASURE, str(data), what, str(root)], cwd=root, env=env,
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"measurement in {root} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default="bd33643", help="the other commit (default: bd33643, the "
                    "last commit before the staged layout)")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TTS_GYM_DATA", DEFAULT_DATA)))
    ap.add_argument("--reps", type=int, default=3, help="alternating runs per checkout (best kept)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--only", choices=("eval", "env"), default=None,
                    help="measure only the evaluation figures or only the env figures")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no replay stores at {args.data} (set TTS_GYM_DATA or --data): nothing measured")
        return 0
    with tempfile.TemporaryDirectory(prefix="tts-gym-layout-") as tmp:
        other = export(args.baseline, Path(tmp))
        sides = {"this": REPO, args.baseline: other}
        best: dict = {k: {} for k in sides}
        rows: dict = {}
        for what in ((args.only,) if args.only else ("eval", "env")):
            for name, root in sides.items():      # untimed first run: numba compiles into the cache
                measure(root, args.data, what)
            for rep in range(args.reps):
                for name, root in sides.items():
                    res = measure(root, args.data, what)
                    for k, v in res.items():
                        if k.startswith("rows "):
                            rows.setdefault(k, {})[name] = v
                            continue
                        old = best[name].get(k)
                        lower_is_better = k.startswith(("main", "one"))   # seconds, else rates
                        if old is None or (v < old if lower_is_better else v > old):
                            best[name][k] = v
                print(f"  {what}: run {rep + 1}/{args.reps} done", file=sys.stderr)
    differ = [k for k, v in rows.items() if len({json.dumps(x) for x in v.values()}) != 1]
    print(f"this checkout ({REPO.name}) vs {args.baseline}; best of {args.reps} alternating runs each; "
          f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    print(f"{'figure':38s} {'this':>12s} {args.baseline:>12s} {'ratio':>7s}")
    report = []
    for k in best["this"]:
        a, b = best["this"][k], best[args.baseline].get(k)
        if b is None:
            continue
        ratio = (b / a) if k.startswith(("main", "one")) else (a / b)
        unit = "s" if k.startswith(("main", "one")) else ""
        fa = f"{a:.4f}{unit}" if unit else f"{a:,.0f}"
        fb = f"{b:.4f}{unit}" if unit else f"{b:,.0f}"
        print(f"{k:38s} {fa:>12s} {fb:>12s} {ratio:7.3f}")
        report.append({"figure": k, "this": a, "baseline": b, "speed_ratio": ratio})
    main_a = sum(v for k, v in best["this"].items() if k.startswith("main"))
    main_b = sum(v for k, v in best[args.baseline].items() if k.startswith("main"))
    print(f"{'main table, all six (s)':38s} {main_a:11.3f}s {main_b:11.3f}s {main_b / main_a:7.3f}")
    print("results equal in both checkouts" if not differ else f"RESULTS DIFFER: {differ}")
    if args.json:
        from tts_gym.files import atomic_write
        atomic_write(args.json, json.dumps({"baseline": args.baseline, "figures": report,
                                            "equal_results": not differ}, indent=1))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
