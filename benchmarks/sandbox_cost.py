"""Cost of confining untrusted controllers: start-up and per-episode cost of one evaluation job,
confined vs unconfined, side by side in one run.

Three ways to run the same controller file over the same episodes:

* ``in-process``   -- ``tts-gym eval --controller FILE --trusted``: the file in this process (no
                     processes, no operating-system boundary), scores from the kernels' re-play;
* ``worker``       -- the sandbox's worker without bubblewrap (``SandboxLimits(os_sandbox=False)``):
                     256 episodes per forked process and a 2 % sample re-run alone, seccomp
                     filters, limits, audit hook, re-play in the parent; no namespaces;
* ``bubblewrap``   -- the full sandbox (``tts-gym eval --controller FILE``, ``tts-gym discover``);
* ``isolated``     -- the full sandbox with one fresh process per episode (``--isolate-episodes``).

Start-up = wall time of a job of one episode; per episode = (wall time of a job of N episodes -
start-up) / (N - 1). Best of ``--repeat`` runs, after one warm-up job per path (the parent's numba
cache). Two controllers: ``one-probe`` (opens one branch and answers: pure overhead) and ``cmc``
(agents/controllers/cmc.py, the reference CMC, beta 0.5: realistic work per episode).

    python benchmarks/sandbox_cost.py                 # Qwen3-1.7B/aime24 from ../shared
    python benchmarks/sandbox_cost.py --seeds 4 --repeat 3
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "autotts-replay"
sys.path.insert(0, str(REPO / "tests"))          # tests/sandbox_inputs.py: the store cut short

ONE_PROBE = '''
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        return question.probe_new()[0]
'''


def job_sandbox(code: str, store, seeds, limits):
    from tts_gym.discovery.sandbox.evaluation import SearchSet, evaluate_controller
    search = SearchSet([store], list(seeds))
    t = time.perf_counter()
    ev = evaluate_controller(code, search, [0.5], limits)
    wall = time.perf_counter() - t
    if not ev.ok:
        raise SystemExit(f"the controller failed: {ev.error_kind}: {ev.error}")
    return wall, ev.point(0.5)["stores"][store.name]["total_tokens"]


def job_in_process(path: Path, store, seeds):
    """What ``tts-gym eval --controller FILE --trusted`` runs."""
    from tts_gym.discovery.controller_eval import ControllerCode, evaluate_in_process
    t = time.perf_counter()
    res = evaluate_in_process(ControllerCode.from_file(path), [store], [0.5], list(seeds))
    return time.perf_counter() - t, int(res.results[0.5][0].sumTT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TTS_GYM_DATA", DEFAULT_DATA)))
    ap.add_argument("--model", default="Qwen3-1.7B")
    ap.add_argument("--benchmark", default="aime24")
    ap.add_argument("--seeds", type=int, default=2, help="shuffle seeds of the N-episode job")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import tempfile

    from tts_gym.data.resolve import resolve_store
    from tts_gym.discovery.sandbox.confinement import confinement
    from tts_gym.discovery.sandbox.runner import SandboxLimits
    from sandbox_inputs import first_questions
    store = resolve_store(str(args.data), args.model, args.benchmark)
    one = first_questions(store, 1)
    seeds = range(args.seeds)
    n = args.seeds * store.num_questions
    conf = confinement()
    print(f"{store.name}: N = {n} episodes ({args.seeds} seeds x {store.num_questions} questions); "
          f"best of {args.repeat}; {os.cpu_count()} CPUs")
    print(f"bubblewrap: {conf.description if not isinstance(conf, str) else 'UNAVAILABLE: ' + conf}\n")
    limits = {"worker": SandboxLimits(timeout_s=1200, os_sandbox=False),
              "bubblewrap": SandboxLimits(timeout_s=1200),
              "isolated": SandboxLimits(timeout_s=1200, episodes_per_process=1)}
    paths = ["in-process", "worker"] + ([] if isinstance(conf, str) else ["bubblewrap", "isolated"])
    with tempfile.TemporaryDirectory() as tmp:
        files = {"one-probe": Path(tmp) / "one_probe.py",
                 "cmc": REPO / "agents" / "controllers" / "cmc.py"}
        files["one-probe"].write_text(ONE_PROBE)
        rows = {}
        for name, f in files.items():
            code = f.read_text()
            for path in paths:
                def run(s, seeds_):
                    if path == "in-process":
                        return job_in_process(f, s, seeds_)
                    return job_sandbox(code, s, seeds_, limits[path])
                run(one, [0])                                          # warm-up
                start = min(run(one, [0])[0] for _ in range(args.repeat))
                full = [run(store, seeds) for _ in range(args.repeat)]
                wall = min(w for w, _ in full)
                tokens = {t for _, t in full}
                rows[name, path] = (start, (wall - start) / (n - 1), wall, tokens)
        print(f"{'controller':<10} {'path':<11} {'start-up s':>10} {'per episode ms':>15} "
              f"{'N-episode job s':>16} {'vs in-process':>14} {'vs worker':>10}")
        for name in files:
            base = rows[name, "in-process"]
            for path in paths:
                start, per, wall, tokens = rows[name, path]
                r1 = f"{wall / base[2]:.2f}x"
                r2 = f"{wall / rows[name, 'worker'][2]:.2f}x" if path != "in-process" else ""
                print(f"{name:<10} {path:<11} {start:10.2f} {per * 1e3:15.2f} {wall:16.2f} "
                      f"{r1:>14} {r2:>10}")
            same = {t for p in paths for t in rows[name, p][3]}
            print(f"{'':<10} total tokens identical on every path: {len(same) == 1} ({same.pop():,})")


if __name__ == "__main__":
    main()
