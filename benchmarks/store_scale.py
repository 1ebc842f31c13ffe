"""Peak memory and time of large replay stores: load, SC@64 and CMC (100 seeds) at 1k, 10k, 100k questions.

Each case runs in a fresh subprocess, so its peak resident set size (``VmHWM``) is that of the
case alone: interpreter, numpy/numba/h5py, the loaded store and the evaluation. The stores are
synthetic (:func:`tts_gym.data.synthetic.synthesize_blocks`, 64 branches, probes every 500 tokens,
written with :func:`tts_gym.data.hdf5.write_store_blocks`) and cached under ``--dir``. Printed per
store: questions, file size, the in-memory size of the loaded store, then per case the wall time
and the peak RSS, with peak / file-size ratios side by side. Target: every 100k case under 2 GiB.

    python benchmarks/store_scale.py                         # 1k, 10k, 100k questions
    python benchmarks/store_scale.py --questions 1000 10000 --seeds 100 --dir /tmp/stores

A second table shows the streaming JSON import (``tts-gym data import``, :func:`tts_gym.data.autotts.
import_autotts_to_hdf5`) of the same kind of store written as AutoTTS JSON: its peak stays about
flat while the JSON grows, i.e. a JSON file larger than memory imports.

The evaluation is the reference protocol through :func:`tts_gym.evaluation.protocol.evaluate_compiled`
(what ``tts-gym eval`` runs); ``--api evaluate`` uses :func:`tts_gym.evaluate` instead. The numba
kernels are compiled (or loaded from the cache) in a warm-up subprocess first, so compile time and
memory are not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("load", "sc64", "cmc")

# the opening of every child script: its imports and peak_mib()
_CHILD_PRELUDE = r"""
import json, sys, time


def peak_mib():
    # VmHWM: this process's peak RSS (ru_maxrss would include the parent's RSS at fork)
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

"""

_CHILD = _CHILD_PRELUDE + r"""
from tts_gym.data.hdf5 import open_store
case, path, seeds, api = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
import numpy, numba, h5py  # noqa: F401  (the baseline every case pays)
from tts_gym.evaluation.protocol import evaluate_compiled
from tts_gym.evaluation.evaluate import evaluate
base = peak_mib()
t1 = time.perf_counter()
store = open_store(path)
t2 = time.perf_counter()
out = {"load_s": t2 - t1, "store_mb": store.nbytes / 2**20, "questions": store.num_questions}
if case != "load":
    policy, params = ("sc", {"n": 64}) if case == "sc64" else ("cmc", {"beta": 0.5})
    if api == "evaluate":
        res = evaluate((policy, params), store, seeds=range(seeds), progress=False)
        row = res.rows[0]
        out.update(accuracy=row["accuracy"], avg_tokens=row["avg_tokens"], episodes=row["episodes"])
    else:
        r = evaluate_compiled(store, policy, params, seeds=range(seeds))
        out.update(accuracy=r.accuracy, avg_tokens=r.avg_tokens, episodes=r.episodes)
    out["eval_s"] = time.perf_counter() - t2
out["baseline_mb"] = base
out["peak_mb"] = peak_mib()
print(json.dumps(out))
"""

_IMPORT_CHILD = _CHILD_PRELUDE + r"""
from tts_gym.data.autotts import import_autotts_to_hdf5
base = peak_mib()
t0 = time.perf_counter()
import_autotts_to_hdf5(sys.argv[1], sys.argv[2])
print(json.dumps({"import_s": time.perf_counter() - t0, "peak_mb": peak_mib(), "baseline_mb": base}))
"""


def make_json(path: Path, questions: int, branches: int, seed: int) -> None:
    """AutoTTS JSON of a synthetic store, written block by block."""
    from tts_gym.data.synthetic import synthesize_blocks
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w") as fh:
        fh.write("[")
        first = True
        for block in synthesize_blocks(questions, branches, seed, block_questions=2000):
            for rec in block.to_records():
                fh.write(("" if first else ",\n") + json.dumps(rec))
                first = False
        fh.write("]\n")
    os.replace(tmp, path)


def make_store(path: Path, questions: int, branches: int, seed: int) -> float:
    from tts_gym.data.hdf5 import write_store_blocks
    from tts_gym.data.synthetic import synthesize_blocks
    t0 = time.perf_counter()
    blocks = synthesize_blocks(questions, branches, seed, benchmark=f"scale{questions}")
    first = next(blocks)

    def all_blocks():
        yield first
        yield from blocks

    write_store_blocks(path, [(first.model, first.benchmark, first.attrs, all_blocks())])
    return time.perf_counter() - t0


def run_case(case: str, path: Path, seeds: int, api: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _CHILD, case, str(path), str(seeds), api],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--branches", type=int, default=64)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0, help="generator seed")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "tts_gym_store_scale")
    ap.add_argument("--api", choices=("compiled", "evaluate"), default="compiled")
    ap.add_argument("--import-questions", type=int, nargs="*", default=[1_000, 10_000],
                    help="sizes of the streamed JSON import measured (none: skip)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)

    smallest = args.dir / f"scale_{min(args.questions)}x{args.branches}_s{args.seed}.h5"
    paths = {}
    for q in args.questions:
        p = args.dir / f"scale_{q}x{args.branches}_s{args.seed}.h5"
        if not p.exists():
            print(f"generating {q:,} x {args.branches} -> {p} ...", file=sys.stderr, flush=True)
            dt = make_store(p, q, args.branches, args.seed)
            print(f"  {dt:.1f}s", file=sys.stderr, flush=True)
        paths[q] = p
    print("warming the kernel cache ...", file=sys.stderr, flush=True)
    for case in CASES[1:]:
        warm = run_case(case, smallest, 1, args.api)
        if "error" in warm:
            print(f"warm-up failed: {warm['error']}", file=sys.stderr)
            return 1

    print(f"{args.branches} branches per question, {args.seeds} seeds, evaluation API: {args.api}; "
          f"peak RSS of a fresh process per case (interpreter + libraries + store + evaluation)\n")
    head = (f"{'questions':>10} {'file MiB':>9} {'store MiB':>10} | " +
            " | ".join(f"{c + ' s':>9} {c + ' MiB':>10} {'/file':>6}" for c in CASES))
    print(head)
    print("-" * len(head))
    report = []
    for q in args.questions:
        p = paths[q]
        fmb = p.stat().st_size / 2**20
        cells, entry = [], {"questions": q, "file_mib": fmb}
        store_mb = None
        for case in CASES:
            r = run_case(case, p, args.seeds, args.api)
            entry[case] = r
            if "error" in r:
                cells.append(f"{'error: ' + r['error'][:30]:>28}")
                continue
            store_mb = r["store_mb"]
            secs = r["load_s"] if case == "load" else r["eval_s"]
            cells.append(f"{secs:9.2f} {r['peak_mb']:10.0f} {r['peak_mb'] / fmb:5.1f}x")
        print(f"{q:>10,} {fmb:9.1f} {store_mb or float('nan'):10.1f} | " + " | ".join(cells), flush=True)
        report.append(entry)
    base = next((r[c]["baseline_mb"] for r in report for c in CASES if "baseline_mb" in r.get(c, {})), None)
    if base is not None:
        print(f"\nbaseline of an empty case (python + numpy + numba + h5py + tts_gym): {base:.0f} MiB")
    big = [r for r in report if r["questions"] >= 100_000]
    for r in big:
        worst = max((r[c].get("peak_mb", float("inf")) for c in CASES), default=float("nan"))
        print(f"{r['questions']:,} questions: worst peak {worst:,.0f} MiB "
              f"({'under' if worst < 2048 else 'OVER'} the 2 GiB target)")
    imports = []
    if args.import_questions:
        print(f"\nstreamed JSON import (AutoTTS JSON -> HDF5, {args.branches} branches per question)\n")
        print(f"{'questions':>10} {'JSON MiB':>9} {'import s':>9} {'peak MiB':>9} {'peak - base':>12} {'/JSON':>6}")
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for q in args.import_questions:
            src = args.dir / "json" / f"m{q}" / f"scale{q}.json"
            src.parent.mkdir(parents=True, exist_ok=True)
            if not src.exists():
                print(f"writing {src} ...", file=sys.stderr, flush=True)
                make_json(src, q, args.branches, args.seed)
            out = args.dir / f"imported_{q}.h5"
            proc = subprocess.run([sys.executable, "-c", _IMPORT_CHILD, str(src), str(out)],
                                  capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(f"{q:>10,} error: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            jmb = src.stat().st_size / 2**20
            print(f"{q:>10,} {jmb:9.1f} {r['import_s']:9.2f} {r['peak_mb']:9.0f} "
                  f"{r['peak_mb'] - r['baseline_mb']:12.0f} {(r['peak_mb'] - r['baseline_mb']) / jmb:5.2f}x",
                  flush=True)
            imports.append({"questions": q, "json_mib": jmb, **r})
            out.unlink(missing_ok=True)
    if args.json:
        from tts_gym.files import atomic_write
        atomic_write(args.json, json.dumps({"stores": report, "imports": imports}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
