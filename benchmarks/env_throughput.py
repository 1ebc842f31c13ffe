"""Throughput of tts_gym/Replay-v0: single env via gymnasium.make, natively batched vector env, and
the pure-Python replay model (tts_gym.core.spec_model), side by side.

    python benchmarks/env_throughput.py                  # synthetic store, M = 64
    python benchmarks/env_throughput.py --seconds 3 --num-envs 1 64 1024 8192
    python benchmarks/env_throughput.py --data ../shared/autotts-replay --model Qwen3-1.7B --benchmark aime24

Every measurement runs the same controller (a Parallel-Probe-like schedule, the typical access
pattern): open ``width`` branches, then ``CONTINUE`` the live ones round-robin until all are
finished, then ``ANSWER``; the env resets automatically. Steps are counted as env transitions
(resets excluded). Every transition includes the observation (``obs`` dict of float32 arrays), the
reward, the infos and the action mask (single env: ``info["action_mask"]``; vector env:
``action_masks()`` is *not* called, as a controller that does not need it would not).

* single env: ``gymnasium.make("tts_gym/Replay-v0")`` (with its OrderEnforcing/PassiveEnvChecker
  wrappers), the controller in Python reading ``info``;
* vector env: ``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``, the controller
  compiled (numba, reading the raw state; its time is reported separately and included in the
  env-steps/s), ``copy=True`` (fresh observation arrays each step) and ``copy=False`` (the env's
  buffers, valid until the next step); then the same with ``num_threads=2`` (``--num-threads``) at
  ``--threaded-num-envs`` (default 1024, 8192): the batch's step split over 2 threads;
* pure Python: :class:`tts_gym.core.spec_model.PyReplayEnv` (same rules, same observation features,
  plain Python), the controller in Python.

Figures are wall-clock on whatever else runs on the machine; the load average is printed.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numba as nb
import numpy as np
from machine import compare_with  # benchmarks/machine.py: a script's folder is on sys.path

import tts_gym  # noqa: F401  (registers the env)
from tts_gym.core import actions as A
from tts_gym.core.kernels import FINISHED, PRUNED
from tts_gym.core.orders import reference_permutation
from tts_gym.core.spec_model import PyReplayEnv
from tts_gym.data.resolve import resolve_stores

ENV_ID = "tts_gym/Replay-v0"


# ---------------------------------------------------------------------------------------------
# the controller, three times: Python on infos, compiled on the raw state, Python on pyreplay
# ---------------------------------------------------------------------------------------------

class RoundRobin:
    """Open ``width`` branches, advance the live ones round-robin, answer when none is live."""

    def __init__(self, width: int, M: int):
        self.width, self.M = width, M
        self.reset()

    def reset(self, limit: int | None = None):
        self.live: list[int] = []
        self.k = 0
        self.opened = 0
        self.limit = self.width if limit is None else min(self.width, limit)

    def act(self) -> int:
        if self.opened < self.limit:
            return A.BRANCH
        if not self.live:
            return A.ANSWER
        self.k = (self.k + 1) % len(self.live)
        return 4 + self.live[self.k]

    def observe(self, action: int, info: dict) -> None:
        if action == A.BRANCH:
            p = self.opened
            self.opened += 1
            if not info["finished"]:
                self.live.append(p)
        elif info["finished"]:
            self.live.remove(info["position"])
            self.k -= 1


@nb.njit(cache=True, nogil=True)
def round_robin_batch(state, width, rr, out):
    """Compiled :class:`RoundRobin` over a batch (reads cursor/flags of the raw state)."""
    for e in range(out.shape[0]):
        n = state.cursor[e]
        if state.done[e]:
            out[e] = A.ABSTAIN  # ignored: NEXT_STEP autoreset
            continue
        if n < width:
            out[e] = A.BRANCH
            continue
        a = A.ANSWER
        for k in range(n):
            p = (rr[e] + k) % n
            if (state.flags[e, p] & (FINISHED | PRUNED)) == 0:
                a = 4 + p
                rr[e] = p + 1
                break
        out[e] = a


# ---------------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------------

def bench_single(env_kwargs: dict, width: int, seconds: float) -> dict:
    env = gym.make(ENV_ID, **env_kwargs)
    M = env.unwrapped.max_branches
    ctl = RoundRobin(width, M)
    env.reset(seed=0)
    ctl.reset(env.unwrapped.episode.branch_limit)
    steps = episodes = 0
    t_end = time.perf_counter() + seconds
    t0, c0 = time.perf_counter(), time.process_time()
    while True:
        for _ in range(1000):
            a = ctl.act()
            _, _, term, trunc, info = env.step(a)
            steps += 1
            if term or trunc:
                episodes += 1
                env.reset()
                ctl.reset(env.unwrapped.episode.branch_limit)
            else:
                ctl.observe(a, info)
        if time.perf_counter() >= t_end:
            break
    dt, ct = time.perf_counter() - t0, time.process_time() - c0
    return {"steps_per_s": steps / dt, "cpu_steps_per_s": steps / ct, "steps": steps, "episodes": episodes}


def bench_vector(env_kwargs: dict, num_envs: int, width: int, seconds: float, copy: bool,
                 num_threads: int = 1) -> dict:
    # the controller reads the state, not the masks: no infos["action_mask"] (a bool[E, A] per step)
    venv = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", copy=copy,
                        num_threads=num_threads, mask_in_info=False, **env_kwargs)
    inner = venv.unwrapped
    state = inner.state
    actions = np.zeros(num_envs, np.int64)
    rr = np.zeros(num_envs, np.int64)
    venv.reset(seed=0)
    round_robin_batch(state, width, rr, actions)
    venv.step(actions)  # warm-up
    steps = calls = ended = 0
    t_policy = 0.0
    t_end = time.perf_counter() + seconds
    t0, c0 = time.perf_counter(), time.process_time()
    while True:
        tp = time.perf_counter()
        round_robin_batch(state, width, rr, actions)
        t_policy += time.perf_counter() - tp
        _, _, term, trunc, _ = venv.step(actions)
        calls += 1
        steps += num_envs
        ended += int(np.count_nonzero(term | trunc))
        if calls % 8 == 0 and time.perf_counter() >= t_end:
            break
    dt, ct = time.perf_counter() - t0, time.process_time() - c0
    venv.close()
    # with NEXT_STEP autoreset the step after an ending is a reset, not a transition
    steps -= ended
    return {"steps_per_s": steps / dt, "cpu_steps_per_s": steps / ct, "steps": steps, "calls": calls,
            "policy_share": t_policy / dt, "env_only_steps_per_s": steps / max(dt - t_policy, 1e-9)}


def bench_python(store, M: int, width: int, seconds: float, observe: bool) -> dict:
    env = PyReplayEnv(store, M, observe=observe)
    Q = store.num_questions
    rng = np.random.default_rng(0)
    ctl = RoundRobin(width, M)

    def reset():
        q = int(rng.integers(Q))
        env.reset(q, reference_permutation(int(rng.integers(100)), int(store.num_branches[q])))
        ctl.reset(env.episode.limit)

    reset()
    steps = 0
    t_end = time.perf_counter() + seconds
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() < t_end:
        for _ in range(50):
            a = ctl.act()
            _, _, term, _, info = env.step(a)
            steps += 1
            if term:
                reset()
            else:
                ctl.observe(a, info)
    dt, ct = time.perf_counter() - t0, time.process_time() - c0
    return {"steps_per_s": steps / dt, "cpu_steps_per_s": steps / ct, "steps": steps}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--benchmark", default=None)
    ap.add_argument("--max-branches", type=int, default=64)
    ap.add_argument("--width", type=int, default=8, help="branches the controller opens")
    ap.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 1024, 8192])
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    ap.add_argument("--num-threads", type=int, default=2,
                    help="num_threads of the threaded vector env rows (1: no such rows)")
    ap.add_argument("--threaded-num-envs", type=int, nargs="*", default=[1024, 8192],
                    help="batch sizes of the threaded vector env rows")
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="then print this checkout's figures next to commit REV's, measured side by "
                         "side (benchmarks/layout_throughput.py)")
    args = ap.parse_args(argv)

    kw = dict(store=args.data, model=args.model, benchmark=args.benchmark, max_branches=args.max_branches)
    store = resolve_stores(args.data, args.model, args.benchmark)[0]
    print(f"tts_gym env throughput | store {store.name} ({store.num_questions} questions, "
          f"N={store.max_branches}, K<={store.max_probes}) | M={args.max_branches} | controller: open "
          f"{args.width}, CONTINUE round-robin, ANSWER")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start; numba {nb.__version__}, gymnasium {gym.__version__}")
    # warm-up (compilation / cache loading)
    bench_single(kw, args.width, 0.2)
    bench_vector(kw, 4, args.width, 0.1, True)

    res: dict = {}
    py = bench_python(store, args.max_branches, args.width, args.seconds, observe=True)
    py_noobs = bench_python(store, args.max_branches, args.width, args.seconds / 2, observe=False)
    single = bench_single(kw, args.width, args.seconds)
    res["python"], res["python_no_obs"], res["single"] = py, py_noobs, single
    base, cbase = py["steps_per_s"], py["cpu_steps_per_s"]
    rows = [("pure Python (pyreplay, with observation)", py, None),
            ("pure Python (pyreplay, no observation)", py_noobs, None),
            ("single env, gymnasium.make", single, None)]
    for E in args.num_envs:
        v = bench_vector(kw, E, args.width, args.seconds, copy=True)
        vn = bench_vector(kw, E, args.width, args.seconds, copy=False)
        res[f"vector_{E}"], res[f"vector_{E}_nocopy"] = v, vn
        rows.append((f"vector env E={E} (copy=True)", v, v["env_only_steps_per_s"]))
        rows.append((f"vector env E={E} (copy=False)", vn, vn["env_only_steps_per_s"]))
    T = args.num_threads
    for E in (args.threaded_num_envs if T > 1 else []):
        v = bench_vector(kw, E, args.width, args.seconds, copy=True, num_threads=T)
        vn = bench_vector(kw, E, args.width, args.seconds, copy=False, num_threads=T)
        res[f"vector_{E}_t{T}"], res[f"vector_{E}_t{T}_nocopy"] = v, vn
        rows.append((f"vector env E={E} (copy=True, {T} threads)", v, v["env_only_steps_per_s"]))
        rows.append((f"vector env E={E} (copy=False, {T} threads)", vn, vn["env_only_steps_per_s"]))
    print()
    print(f"{'configuration':<44} {'env-steps/s':>12} {'x Python':>9} {'env only':>12} "
          f"{'per CPU-s':>12} {'x Python':>9}")
    for name, r, env_only in rows:
        extra = f"{env_only:>12,.0f}" if env_only is not None else f"{'':>12}"
        print(f"{name:<44} {r['steps_per_s']:>12,.0f} {r['steps_per_s'] / base:>8,.1f}x {extra} "
              f"{r['cpu_steps_per_s']:>12,.0f} {r['cpu_steps_per_s'] / cbase:>8,.1f}x")
    print(f"\nenv-steps/s: wall clock; 'env only': without the compiled controller's time; 'per CPU-s': "
          f"steps per second of this process's CPU time (what one uncontended core would give).\n"
          f"load average {os.getloadavg()[0]:.2f} at the end")
    if args.baseline:
        compare_with(args.baseline, "env", args.data)
    return res


if __name__ == "__main__":
    main()
