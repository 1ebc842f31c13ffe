"""Evaluation speed against the AutoTTS authors' own code, in one run, on the same stores and seeds.

The reference side is the authors' code itself -- ``data_loader.py`` (``Question``) and the search
round r0004 ``method_r0004.py`` (``ASCMethod``, ``ESCMethod``, ``Parallel_Probe`` and the discovered
``OptimalController``, i.e. CMC) -- *imported at run time* from ``../shared/reference/autotts-code``
(never copied into this repository) and run unmodified: a bare loop over shuffle seeds and questions,
``Question(record, seed=s).solve(method)``, as the authors' ``ModelandTask.evaluate`` does it (a
question object is built per seed and question there too). Where ``../shared`` is absent the
benchmark prints a note and exits without measuring.

The tts_gym side is what a user runs: one ``tts_gym.evaluation.evaluate.evaluate`` call with the
reference protocol on a store loaded from the same JSON file (warm JIT cache; the store is loaded
once, outside the timing, as the reference's ``json.load`` is).

Two measurements:

1. **Single store** (default Qwen3-1.7B/aime25, 100 seeds = 3,000 episodes per evaluation): the six
   configurations of the main table -- SC@64 (the reference's ``ASCMethod`` with threshold 1.01),
   ASC@64 thr 0.95, ESC@64 w8, Parallel-Probe 64 (T 40, patience 7, warm-up 15), CMC beta=0.5 and
   beta=1.0. tts_gym evaluates all 3,000 episodes, repeated for ``--min-time`` seconds. The reference
   is slow (hundreds of episodes per second), so it is timed on the first seeds only: seeds 0, 1, ...
   until ``--ref-min-time`` seconds of CPU are spent (at least one seed; the number of seeds is
   printed). Reported: episodes per wall second and per CPU second of both, and the per-CPU-second
   ratio (the reference runs on one thread, tts_gym on ``--workers`` threads; per CPU second is the
   fair comparison).
2. **Main table** (the six configurations x the 12 shared stores x 100 seeds = 216,000 episodes):
   tts_gym in one ``evaluate`` call (wall and CPU seconds, best of ``--reps``); the reference on the
   first seeds of every store (``--ref-table-min-time`` CPU seconds per configuration), its wall time
   for the whole table extrapolated from its episodes per second.

Results are compared episode by episode on every episode the reference played: correctness and
tokens of each (question, seed) must be equal (printed as ``equal``; any difference is listed and
the exit status is 1).

    python benchmarks/reference_speed.py                       # ~1-2 min on 2 cores
    python benchmarks/reference_speed.py --skip-table --ref-min-time 5
    python benchmarks/reference_speed.py --json runs/reference_speed.json

CPU seconds are ``time.process_time()`` (all threads of this process). The machine's load average is
printed: figures measured on a loaded machine are noisy; the ratios are measured in the same run.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from machine import cpu_model  # benchmarks/machine.py: a script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_DATA = Path(os.environ.get("TTS_GYM_DATA", SHARED / "autotts-replay"))
REFERENCE_CODE = SHARED / "reference" / "autotts-code"
MODELS = ("Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B")
BENCHMARKS = ("aime24", "aime25", "hmmt25")

# (label, tts_gym family and parameters, reference constructor over the method module)
CONFIGS = [
    ("SC@64", ("sc", {"max_samples": 64}),
     lambda m: m.ASCMethod(max_samples=64, threshold=1.01)),
    ("ASC@64 thr 0.95", ("asc", {"max_samples": 64, "threshold": 0.95}),
     lambda m: m.ASCMethod(max_samples=64, threshold=0.95)),
    ("ESC@64 w8", ("esc", {"max_samples": 64, "window_size": 8}),
     lambda m: m.ESCMethod(max_samples=64, window_size=8)),
    ("Parallel-Probe 64", ("parallel_probe",
                           {"num_chains": 64, "T": 40, "prune_patience": 7, "warm_up": 15}),
     lambda m: m.Parallel_Probe(num_chains=64, T=40, prune_patience=7, warm_up=15)),
    ("CMC β=0.5", ("cmc", {"beta": 0.5}), lambda m: m.OptimalController(config={"beta": 0.5})),
    ("CMC β=1.0", ("cmc", {"beta": 1.0}), lambda m: m.OptimalController(config={"beta": 1.0})),
]


def import_reference(code_dir: Path):
    """The authors' ``data_loader`` and ``method_r0004`` modules, imported from ``code_dir``."""
    mods = []
    for name in ("data_loader", "method_r0004"):
        spec = importlib.util.spec_from_file_location(f"autotts_reference_{name}", code_dir / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods.append(mod)
    return tuple(mods)


def load(data_dir: Path, model: str, benchmark: str):
    """``(records, store)``: the JSON records the reference reads and the tts_gym store built from them."""
    from tts_gym.data.store import ReplayStore
    with open(data_dir / model / f"{benchmark}.json") as fh:
        records = json.load(fh)
    return records, ReplayStore.from_records(model, benchmark, records)


# ---------------------------------------------------------------------------------------------
# the two sides
# ---------------------------------------------------------------------------------------------

def run_reference(question_cls, method, records, seeds, min_cpu: float):
    """The reference loop on seeds ``seeds[0], seeds[1], ...`` until ``min_cpu`` CPU seconds are spent
    (whole seeds, at least one). Returns ``(played seeds, correct [S, Q], tokens [S, Q], wall, cpu)``."""
    correct, tokens, played = [], [], []
    w0, c0 = time.perf_counter(), time.process_time()
    for s in seeds:
        row_c, row_t = [], []
        for record in records:
            ok, cost = question_cls(record, seed=s).solve(method)
            row_c.append(bool(ok))
            row_t.append(int(cost))
        correct.append(row_c)
        tokens.append(row_t)
        played.append(int(s))
        if time.process_time() - c0 >= min_cpu:
            break
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return played, np.asarray(correct, np.bool_), np.asarray(tokens, np.int64), wall, cpu


def run_tts_gym(policies, stores, seeds, workers, min_time: float, reps: int = 1):
    """``evaluate(policies, stores)`` with the reference protocol, repeated until ``min_time`` seconds
    (and at least ``reps`` times) after a warm-up call. Returns ``(result, wall, cpu)`` per call (best
    wall of the repetitions, CPU of that repetition)."""
    from tts_gym.evaluation.evaluate import evaluate
    kw = dict(protocol="reference", seeds=list(seeds), workers=workers, progress=False)
    evaluate(policies, stores, **kw)                          # warm-up: compile / load the kernels
    best = None
    t_end = time.perf_counter() + min_time
    n = 0
    while n < reps or time.perf_counter() < t_end:
        w0, c0 = time.perf_counter(), time.process_time()
        res = evaluate(policies, stores, **kw)
        w, c = time.perf_counter() - w0, time.process_time() - c0
        if best is None or w < best[1]:
            best = (res, w, c)
        n += 1
    return best


def timed_batch(policies, stores, seeds, workers, min_time: float):
    """Mean wall and CPU seconds of one ``evaluate`` call over a timing loop of ``min_time`` seconds
    (the single-store figures: short calls, so a mean over many is steadier than the best)."""
    from tts_gym.evaluation.evaluate import evaluate
    kw = dict(protocol="reference", seeds=list(seeds), workers=workers, progress=False)
    res = evaluate(policies, stores, **kw)
    n = 0
    w0, c0 = time.perf_counter(), time.process_time()
    while True:
        res = evaluate(policies, stores, **kw)
        n += 1
        if time.perf_counter() - w0 >= min_time:
            break
    return res, (time.perf_counter() - w0) / n, (time.process_time() - c0) / n


def compare(label: str, store_name: str, played, ref_correct, ref_tokens, outcome, seeds) -> list[str]:
    """Differences between the reference's and tts_gym's episodes (questions in store order)."""
    index = {int(s): i for i, s in enumerate(seeds)}
    problems = []
    for si, s in enumerate(played):
        row = index[s]
        got_c = outcome.correct[row]
        got_t = outcome.cost[row]
        for q in np.flatnonzero((got_c != ref_correct[si]) | (got_t != ref_tokens[si])):
            problems.append(f"{store_name} {label} seed {s} question {q}: reference "
                            f"({bool(ref_correct[si, q])}, {int(ref_tokens[si, q])}), tts_gym "
                            f"({bool(got_c[q])}, {int(got_t[q])})")
    return problems


# ---------------------------------------------------------------------------------------------
# the two measurements
# ---------------------------------------------------------------------------------------------

def single_store(ref_mods, data_dir, model, benchmark, seeds, workers, min_time, ref_min_time):
    data_loader, methods = ref_mods
    records, store = load(data_dir, model, benchmark)
    rows, problems = [], []
    for label, (family, params), make_ref in CONFIGS:
        res, tw, tc = timed_batch((family, params), store, seeds, workers, min_time)
        outcome = next(iter(res.outcomes.values()))
        played, rc, rt, rw, rcpu = run_reference(data_loader.Question, make_ref(methods), records,
                                                 seeds, ref_min_time)
        problems += compare(label, store.name, played, rc, rt, outcome, seeds)
        n_tts, n_ref = outcome.correct.size, rc.size
        rows.append({"config": label, "tts_episodes": int(n_tts), "tts_wall_s": tw, "tts_cpu_s": tc,
                     "tts_eps_per_s": n_tts / tw, "tts_cpu_eps_per_s": n_tts / tc,
                     "ref_seeds": len(played), "ref_episodes": int(n_ref), "ref_wall_s": rw,
                     "ref_cpu_s": rcpu, "ref_eps_per_s": n_ref / rw, "ref_cpu_eps_per_s": n_ref / rcpu,
                     "ratio_wall": (n_tts / tw) / (n_ref / rw),
                     "ratio_cpu": (n_tts / tc) / (n_ref / rcpu),
                     "steps_per_episode": float(outcome.steps.mean())})
    return {"store": store.name, "rows": rows, "problems": problems}


def main_table(ref_mods, data_dir, seeds, workers, reps, ref_min_time):
    data_loader, methods = ref_mods
    loaded = [load(data_dir, m, b) for m in MODELS for b in BENCHMARKS]
    stores = [s for _, s in loaded]
    from tts_gym.evaluation.evaluate import Sweep
    policies = [Sweep(fam, grid=[params], labels=[label]) for label, (fam, params), _ in CONFIGS]
    res, tw, tc = run_tts_gym(policies, stores, seeds, workers, 0.0, reps)
    episodes = sum(o.correct.size for o in res.outcomes.values())
    rows, problems = [], []
    ref_eps_total = ref_cpu_total = ref_wall_total = 0.0
    for label, _cfg, make_ref in CONFIGS:
        method = make_ref(methods)
        n, rw, rcpu, played_seeds = 0, 0.0, 0.0, 0
        # seed by seed over every store until the CPU budget of this configuration is spent
        for s in seeds:
            for (records, store) in loaded:
                played, rc, rt, w, c = run_reference(data_loader.Question, method, records, [s], 0.0)
                problems += compare(label, store.name, played, rc, rt, res.outcome(label, store),
                                    seeds)
                n += rc.size
                rw += w
                rcpu += c
            played_seeds += 1
            if rcpu >= ref_min_time:
                break
        full = len(seeds) * sum(s.num_questions for s in stores)
        rows.append({"config": label, "ref_seeds": played_seeds, "ref_episodes": n, "ref_wall_s": rw,
                     "ref_cpu_s": rcpu, "ref_eps_per_s": n / rw,
                     "ref_wall_full_s_estimated": full * rw / n})
        ref_eps_total += n
        ref_cpu_total += rcpu
        ref_wall_total += full * rw / n
    return {"episodes": int(episodes), "tts_wall_s": tw, "tts_cpu_s": tc,
            "ref_wall_full_s_estimated": ref_wall_total, "ref_episodes": int(ref_eps_total),
            "ref_cpu_s": ref_cpu_total, "rows": rows, "problems": problems}


def verdict(problems) -> str:
    return "equal, episode for episode" if not problems else f"{len(problems)} DIFFERENCES"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="directory of AutoTTS JSON <model>/<benchmark>.json (default ../shared/autotts-replay)")
    ap.add_argument("--reference-code", type=Path, default=REFERENCE_CODE,
                    help="the authors' code (default ../shared/reference/autotts-code)")
    ap.add_argument("--model", default="Qwen3-1.7B")
    ap.add_argument("--benchmark", default="aime25")
    ap.add_argument("--seeds", type=int, default=100, help="shuffle seeds 0..N-1 (default 100)")
    ap.add_argument("--workers", type=int, default=None, help="tts_gym worker threads (default: numba's)")
    ap.add_argument("--min-time", type=float, default=1.0,
                    help="single store: tts_gym timing loop per configuration, seconds")
    ap.add_argument("--ref-min-time", type=float, default=1.0,
                    help="single store: the reference plays seeds until this many CPU seconds")
    ap.add_argument("--reps", type=int, default=3, help="main table: tts_gym repetitions (best kept)")
    ap.add_argument("--ref-table-min-time", type=float, default=2.0,
                    help="main table: reference CPU seconds per configuration (whole seeds x 12 stores)")
    ap.add_argument("--skip-table", action="store_true", help="single-store measurement only")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    missing = [p for p in (args.reference_code / "data_loader.py", args.reference_code / "method_r0004.py",
                           args.data / args.model / f"{args.benchmark}.json") if not p.exists()]
    if missing:
        print(f"reference_speed: skipped -- needs the shared material beside the repository "
              f"(missing: {', '.join(map(str, missing))}); the authors' code is imported from there "
              f"at run time, never copied into the project")
        return 0
    ref_mods = import_reference(args.reference_code)

    import numba
    workers = args.workers or numba.get_num_threads()
    seeds = list(range(args.seeds))
    report: dict = {"machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
                                "numba": numba.__version__, "loadavg_start": os.getloadavg()},
                    "workers": workers}
    print(f"{report['machine']['cpu']}, {os.cpu_count()} CPUs, tts_gym workers={workers}, "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"reference: the authors' data_loader.py + method_r0004.py imported from {args.reference_code}")

    single = single_store(ref_mods, args.data, args.model, args.benchmark, seeds, workers,
                          args.min_time, args.ref_min_time)
    report["single_store"] = single
    n_ep = single["rows"][0]["tts_episodes"]
    print(f"\nSingle store {single['store']}: tts_gym evaluate() on {n_ep} episodes ({args.seeds} seeds), "
          f"the reference on its first seeds (>= {args.ref_min_time:g} CPU-s per configuration)")
    print(f"{'configuration':18s} {'steps/ep':>8s} {'ref seeds':>9s} {'ref ep/s':>9s} {'ref ep/CPU-s':>12s} "
          f"{'tts ms/call':>11s} {'tts ep/s':>11s} {'tts ep/CPU-s':>12s} {'wall x':>8s} {'per CPU-s':>9s}")
    for r in single["rows"]:
        print(f"{r['config']:18s} {r['steps_per_episode']:8.1f} {r['ref_seeds']:9d} {r['ref_eps_per_s']:9.0f} "
              f"{r['ref_cpu_eps_per_s']:12.0f} {1e3 * r['tts_wall_s']:11.3f} {r['tts_eps_per_s']:11.0f} "
              f"{r['tts_cpu_eps_per_s']:12.0f} {r['ratio_wall']:7.0f}x {r['ratio_cpu']:8.0f}x")
    print(f"results on the reference's episodes: {verdict(single['problems'])}")

    problems = list(single["problems"])
    if not args.skip_table:
        mt = main_table(ref_mods, args.data, seeds, workers, args.reps, args.ref_table_min_time)
        report["main_table"] = mt
        problems += mt["problems"]
        print(f"\nMain table: 6 configurations x 12 stores x {args.seeds} seeds = {mt['episodes']} episodes")
        print(f"  tts_gym, one evaluate() call: {mt['tts_wall_s']:.3f} s wall, {mt['tts_cpu_s']:.3f} CPU-s "
              f"(best of {args.reps}; target < 1 s wall on 2 cores)")
        print(f"  reference: {mt['ref_episodes']} episodes played ({mt['ref_cpu_s']:.1f} CPU-s); "
              f"whole table estimated {mt['ref_wall_full_s_estimated']:.0f} s wall "
              f"({mt['ref_wall_full_s_estimated'] / mt['tts_wall_s']:.0f}x tts_gym's wall time)")
        for r in mt["rows"]:
            print(f"    {r['config']:18s} reference on {r['ref_seeds']} seed(s) x 12 stores: "
                  f"{r['ref_eps_per_s']:7.0f} ep/s -> {r['ref_wall_full_s_estimated']:6.0f} s for 36,000 episodes")
        print(f"  results on the reference's episodes: {verdict(mt['problems'])}")
    for p in problems[:20]:
        print("  DIFFERENCE:", p)
    report["machine"]["loadavg_end"] = os.getloadavg()
    print(f"\nload average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
