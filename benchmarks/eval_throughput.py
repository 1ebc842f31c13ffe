"""Evaluation throughput: the compiled baselines vs the pure-Python path.

Two measurements, both with a warm JIT cache (a warm-up call runs first):

1. **Main table** -- the six configurations of the paper's main table (SC@64, ASC@64 thr 0.95,
   ESC@64 w8, Parallel-Probe 64 (T 40, patience 7, warm-up 15), CMC beta=0.5 and beta=1.0) x every
   store of the shared AutoTTS replay (4 models x 3 benchmarks) x 100 seeds = 216,000 episodes, all
   stores packed into one :class:`~tts_gym.evaluation.protocol.ProtocolBatch` and each policy played in one
   compiled call (CMC's two betas in one grid). Reported: wall and CPU seconds per configuration
   and in total (target: < 10 s on 2 cores), episodes/s and env steps/s.
2. **Compiled vs Python, per baseline** -- the compiled kernels on every episode of the main
   table's batch (all stores x 100 seeds, repeated until ``--min-time`` seconds: a whole
   evaluation, which is how the compiled path is used) and the Python policies of
   :mod:`tts_gym.policies.baselines` played through the env
   (:func:`tts_gym.evaluation.rollout.evaluate_reference_python`) on seeds 0, 1, ... of the same stores
   (``--python-stores``; at least ``--python-seeds`` seeds and ``--python-min-time`` seconds), so both play the same questions (mean steps per
   episode of both are printed). Episodes/s of both and the ratio (target: >= 1000x), also per
   CPU second, i.e. per core: the compiled path runs one worker thread per core, the Python loop
   one thread. The per-episode results of the common episodes are checked to be identical. If
   the Python path is unavailable (older checkout), this part is skipped with a note.

    python benchmarks/eval_throughput.py                 # ~1 min on 2 cores (most of it Python)
    python benchmarks/eval_throughput.py --skip-python --reps 3
    python benchmarks/eval_throughput.py --json results.json

Machine load matters: CPU seconds are reported next to wall seconds (the compiled path runs one
worker thread per core, ``--workers``; default ``NUMBA_NUM_THREADS``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from machine import compare_with, cpu_model  # benchmarks/machine.py: a script's folder is on sys.path

from tts_gym.data.catalog import BENCHMARKS, MODELS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "autotts-replay"

# label, policy, grid (one compiled call per entry)
MAIN_TABLE = [
    ("SC@64", "sc", [{"n": 64}]),
    ("ASC@64 thr0.95", "asc", [{"max_samples": 64, "threshold": 0.95}]),
    ("ESC@64 w8", "esc", [{"max_samples": 64, "window_size": 8}]),
    ("Parallel-Probe@64", "parallel_probe",
     [{"num_chains": 64, "T": 40, "prune_patience": 7, "warm_up": 15}]),
    ("CMC b=0.5,1.0", "cmc", [{"beta": 0.5}, {"beta": 1.0}]),
]

PER_BASELINE = [
    ("SC@64", "sc", {"n": 64}),
    ("ASC@64 thr0.95", "asc", {"max_samples": 64, "threshold": 0.95}),
    ("ESC@64 w8", "esc", {"max_samples": 64, "window_size": 8}),
    ("Parallel-Probe@64", "parallel_probe",
     {"num_chains": 64, "T": 40, "prune_patience": 7, "warm_up": 15}),
    ("CMC b=0.5", "cmc", {"beta": 0.5}),
    ("CMC b=1.0", "cmc", {"beta": 1.0}),
]


def load_stores(data_dir: Path, models, benchmarks):
    from tts_gym.data.store import ReplayStore
    stores = []
    for m in models:
        for b in benchmarks:
            path = data_dir / m / f"{b}.json"
            with open(path) as fh:
                stores.append(ReplayStore.from_records(m, b, json.load(fh)))
    return stores


def timed(fn, *a, **kw):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*a, **kw)
    return out, time.perf_counter() - w, time.process_time() - c


def main_table(batch, workers, reps):
    from tts_gym.evaluation.protocol import evaluate_grid_compiled
    # warm-up: compile or load every kernel, build the confidence table
    for _label, policy, grid in MAIN_TABLE:
        evaluate_grid_compiled(batch, policy, grid[:1], workers=workers)
    best = None
    for _ in range(reps):
        rows = []
        tw, tc = 0.0, 0.0
        for label, policy, grid in MAIN_TABLE:
            res, w, c = timed(evaluate_grid_compiled, batch, policy, grid, workers=workers)
            episodes = len(grid) * batch.num_episodes
            steps = int(sum(int(r.steps.sum()) for per_store in res for r in per_store))
            rows.append({"config": label, "configs": len(grid), "episodes": episodes,
                         "steps": steps, "wall_s": w, "cpu_s": c,
                         "episodes_per_s": episodes / w, "steps_per_s": steps / w})
            tw += w
            tc += c
        if best is None or tw < best["wall_s"]:
            best = {"rows": rows, "wall_s": tw, "cpu_s": tc}
    return best


def python_available() -> str | None:
    try:
        from tts_gym.evaluation.rollout import evaluate_reference_python  # noqa: F401
        from tts_gym.policies import make_policy  # noqa: F401
    except ImportError as exc:  # pragma: no cover - older checkouts
        return f"Python path unavailable ({exc})"
    return None


def per_baseline(batch, py_seeds, workers, min_time, store_names=None, py_min_time=0.0):
    """Episodes/s of each baseline, compiled vs Python, on the same stores.

    Compiled: every episode of ``batch`` (all its stores x seeds), timed in a loop of at least
    ``min_time`` s -- a whole evaluation, as the compiled path is used. Python: the Python policy
    through the env on seeds 0, 1, ... of every store (``store_names``: a subset) -- at least
    ``py_seeds`` of them and until ``py_min_time`` seconds are spent -- the same stores and
    questions, so the episode mix matches (mean steps per episode of both are reported). The per-episode results of the common episodes must be identical."""
    from tts_gym.evaluation.protocol import evaluate_grid_compiled
    from tts_gym.evaluation.rollout import evaluate_reference_python, make_reference_env
    from tts_gym.policies import make_policy
    picked = [i for i, s in enumerate(batch.stores)
              if store_names is None or f"{s.model}/{s.benchmark}" in store_names]
    envs = {i: make_reference_env(batch.stores[i]) for i in picked}
    out = []
    for label, policy, params in PER_BASELINE:
        evaluate_grid_compiled(batch, policy, [params], workers=workers)  # warm
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while True:
            comp = evaluate_grid_compiled(batch, policy, [params], workers=workers)[0]
            n += 1
            if time.perf_counter() - t0 >= min_time:
                break
        cw, cc = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
        ce = sum(r.episodes for r in comp)
        csteps = sum(int(r.steps.sum()) for r in comp)
        pol = make_policy(policy, **params)
        pe = psteps = 0
        pw = pc = 0.0
        same = True
        played = 0
        # seed by seed over every picked store, at least py_seeds seeds and py_min_time seconds
        while played < len(batch.seeds) and (played < py_seeds or pw < py_min_time):
            s = batch.seeds[played]
            for i in picked:
                py, w, c = timed(evaluate_reference_python, batch.stores[i], pol, [s],
                                 env=envs[i])
                pw, pc = pw + w, pc + c
                pe += py.episodes
                psteps += int(py.steps.sum())
                same = same and all(
                    np.array_equal(getattr(py, f)[0], getattr(comp[i], f)[played])
                    for f in ("answers", "costs", "correct", "steps"))
            played += 1
        out.append({"config": label, "compiled_episodes": ce, "python_episodes": pe,
                    "compiled_steps_per_episode": csteps / ce,
                    "python_steps_per_episode": psteps / pe,
                    "compiled_wall_s": cw, "compiled_cpu_s": cc, "python_wall_s": pw,
                    "python_cpu_s": pc,
                    "compiled_eps_per_s": ce / cw, "compiled_cpu_eps_per_s": ce / cc,
                    "python_eps_per_s": pe / pw, "python_cpu_eps_per_s": pe / pc,
                    "ratio": (ce / cw) / (pe / pw), "ratio_cpu": (ce / cc) / (pe / pc),
                    "python_seeds": played, "identical": bool(same)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TTS_GYM_DATA", DEFAULT_DATA)),
                    help="directory of AutoTTS JSON <model>/<benchmark>.json (default ../shared/autotts-replay)")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--benchmarks", nargs="*", default=list(BENCHMARKS))
    ap.add_argument("--seeds", type=int, default=100, help="main table: seeds 0..N-1 (default 100)")
    ap.add_argument("--workers", type=int, default=None, help="compiled worker threads (default: all)")
    ap.add_argument("--reps", type=int, default=2, help="main table repetitions (best is kept)")
    ap.add_argument("--python-stores", nargs="*", default=["all"],
                    help="per-baseline comparison: stores (model/benchmark) the Python path plays "
                         "(default: all loaded stores)")
    ap.add_argument("--python-seeds", type=int, default=1,
                    help="per-baseline comparison: Python plays at least seeds 0..N-1 of those stores")
    ap.add_argument("--python-min-time", type=float, default=2.0,
                    help="... and more seeds until this many seconds are spent per configuration")
    ap.add_argument("--min-time", type=float, default=0.5, help="compiled timing loop, seconds")
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="then print this checkout's figures next to commit REV's, measured side by "
                         "side (benchmarks/layout_throughput.py)")
    args = ap.parse_args(argv)

    import numba

    from tts_gym.evaluation.protocol import ProtocolBatch
    report: dict = {"machine": {"cpu": cpu_model(), "cpus": os.cpu_count(),
                                "numba_threads": numba.get_num_threads(),
                                "python": platform.python_version(), "numba": numba.__version__,
                                "loadavg": os.getloadavg()},
              "workers": args.workers or numba.get_num_threads()}
    stores, w, c = timed(load_stores, args.data, args.models, args.benchmarks)
    batch, bw, _ = timed(ProtocolBatch, stores, range(args.seeds))
    print(f"{report['machine']['cpu']}, {os.cpu_count()} CPUs, {report['workers']} compiled workers")
    print(f"loaded {len(stores)} stores in {w:.2f}s, packed {batch.num_episodes} episodes in {bw:.2f}s "
          f"(load average {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    mt = main_table(batch, args.workers, args.reps)
    report["main_table"] = mt
    print(f"\nMain table: 6 configurations x {len(stores)} stores x {args.seeds} seeds "
          f"({6 * batch.num_episodes} episodes), workers={args.workers or numba.get_num_threads()}")
    print(f"{'config':20s} {'episodes':>9s} {'steps':>11s} {'wall s':>8s} {'cpu s':>8s} "
          f"{'episodes/s':>11s} {'steps/s':>12s}")
    for r in mt["rows"]:
        print(f"{r['config']:20s} {r['episodes']:9d} {r['steps']:11d} {r['wall_s']:8.3f} "
              f"{r['cpu_s']:8.3f} {r['episodes_per_s']:11.0f} {r['steps_per_s']:12.3e}")
    print(f"{'total':20s} {6 * batch.num_episodes:9d} {sum(r['steps'] for r in mt['rows']):11d} "
          f"{mt['wall_s']:8.3f} {mt['cpu_s']:8.3f}   (target < 10 s)")

    if not args.skip_python:
        note = python_available()
        if note:
            print(f"\n{note}: per-baseline comparison skipped")
            report["per_baseline"] = note
        else:
            names = None if args.python_stores == ["all"] else set(args.python_stores)
            rows = per_baseline(batch, args.python_seeds, args.workers, args.min_time, names,
                                args.python_min_time)
            report["per_baseline"] = rows
            where = "every store" if names is None else ", ".join(sorted(names))
            print(f"\nCompiled vs Python: compiled on all {batch.num_episodes} episodes "
                  f"({len(stores)} stores x {args.seeds} seeds), Python on the first seeds of "
                  f"{where} (>= {args.python_seeds} seeds and >= {args.python_min_time:g} s per "
                  f"config; episodes below); per-episode results of the common episodes checked "
                  f"identical")
            print(f"{'config':20s} {'py eps':>6s} {'steps/ep c|py':>13s} {'compiled eps/s':>15s} "
                  f"{'python eps/s':>13s} {'ratio':>8s} {'per CPU-s':>10s} {'identical':>9s}")
            for r in rows:
                steps = f"{r['compiled_steps_per_episode']:.0f}|{r['python_steps_per_episode']:.0f}"
                print(f"{r['config']:20s} {r['python_episodes']:6d} {steps:>13s} "
                      f"{r['compiled_eps_per_s']:15.0f} {r['python_eps_per_s']:13.1f} "
                      f"{r['ratio']:7.0f}x {r['ratio_cpu']:9.0f}x {str(r['identical']):>9s}")
            print(f"ratio = episodes/s compiled ({report['workers']} worker threads) / Python (one "
                  f"thread, the only way it runs); per CPU-s = the same per CPU second, i.e. per core")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.baseline:
        return compare_with(args.baseline, "eval", args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
