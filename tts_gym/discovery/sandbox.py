"""Evaluate untrusted (LLM-written) controllers in a sandboxed child process.

Parent side of the sandbox (the child is :mod:`tts_gym.discovery.sandbox_worker`).

What the parent does for one evaluation job (one controller, one beta, all search stores):

* serialises only what a controller may see: the search stores **redacted** by
  :func:`redact_store` (replay tensors and answer strings; gold ids set to ``GOLD_ABSENT``, gold
  strings and question text blanked) and the episodes' branch orders. Held-out stores are never
  sent during the search. The payload goes over the child's stdin (pickle: parent -> child only);
* starts ``python -m tts_gym.discovery.sandbox_worker`` in a new session (its own process group)
  with a scrubbed environment (``PATH``, ``PYTHONPATH``, thread-count variables; no API key, no
  other secret), a fresh temporary working directory, and limits passed on the command line (CPU
  seconds, memory budget, open files; the child applies them with ``setrlimit``);
* enforces the wall-clock limit itself and kills the whole process group (``os.killpg``) on
  time-out; reads at most ``output_cap`` bytes of stdout and ``stderr_cap`` of stderr;
* parses the result frame (JSON header + raw int arrays, never pickle) and **re-plays every
  episode's action log with the compiled kernels** (:func:`replay_logs`): costs, committed answers
  and correctness are computed here, with the gold ids that never left the parent. A log that the
  kernels refuse, or costs that disagree with the child's, fail the candidate.

:func:`evaluate_controller` runs one job per beta (in parallel on a thread pool) and returns a
:class:`ControllerEvaluation`: per-beta, per-store accuracy and mean tokens, the token-monotonicity
verdict, the per-episode outcomes and :meth:`ControllerEvaluation.trace_summaries` (compact
descriptions of representative wrong or expensive episodes, for the proposer).

:func:`load_controller_policy` loads a controller file (same restricted namespace, in-process, no
sandbox) as a :class:`~tts_gym.policies.base.Policy`, for ``tts-gym eval --controller FILE``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numba as nb
import numpy as np

from tts_gym.core import actions as A
from tts_gym.core import kernels as K
from tts_gym.discovery.sandbox_worker import (
    FRAME_MAGIC, RESULT_DTYPES, ControllerRejected, check_source, compile_controller,
    controller_format, instantiate, make_question,
)
from tts_gym.data.store import GOLD_ABSENT, ReplayStore

__all__ = [
    "SandboxLimits", "SearchSet", "JobResult", "ControllerEvaluation", "redact_store",
    "run_job", "evaluate_controller", "replay_logs", "load_controller_policy", "FileController",
    "check_controller_source", "run_unrestricted_probe",
]

DEFAULT_BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandbox job (one controller, one beta, the episodes of a :class:`SearchSet`).

    ``timeout_s``: wall-clock limit enforced by the parent (process group killed);
    ``episode_timeout_s``: per-episode timer inside the child; ``cpu_s``: ``RLIMIT_CPU``
    (default ``timeout_s + 5``); ``memory_mb``: address-space budget on top of the worker's own
    baseline (``RLIMIT_AS``); ``nofile``: ``RLIMIT_NOFILE``; ``output_cap`` / ``stderr_cap``: bytes
    read from the child's stdout (the result frame) / stderr; ``print_cap``: characters of the
    controller's own ``print`` output kept for the proposer.
    """
    timeout_s: float = 1800.0
    episode_timeout_s: float = 20.0
    cpu_s: int | None = None
    memory_mb: int = 2048
    nofile: int = 64
    output_cap: int = 256 * 2**20
    stderr_cap: int = 64 * 1024
    print_cap: int = 8192
    landlock: bool = True
    netns: bool = True

    def child_limits(self) -> dict:
        cpu = self.cpu_s if self.cpu_s is not None else int(self.timeout_s) + 5
        return {"cpu_s": int(cpu), "memory_mb": int(self.memory_mb), "nofile": int(self.nofile)}


def redact_store(store: ReplayStore) -> ReplayStore:
    """The store as a controller may see it: no gold ids, no gold strings, no question text."""
    Q = store.num_questions
    return dataclasses.replace(
        store, gold_ids=np.full(Q, GOLD_ABSENT, np.int32), gold_answers=("",) * Q,
        questions=("",) * Q, attrs={})


class SearchSet:
    """Stores and episodes a controller is evaluated on: the reference protocol with the given
    seeds, as packed by :class:`tts_gym.evaluation.protocol.ProtocolBatch` (episode order: store by store,
    seed-major, then questions in store order).

    Holds the full stores (parent only: scoring), their redacted copies (sent to the child) and
    the packed kernel data used to re-play the children's action logs.
    """

    def __init__(self, stores: Sequence[ReplayStore], seeds: Sequence[int]) -> None:
        from tts_gym.evaluation.protocol import ProtocolBatch
        self.stores = list(stores)
        if not self.stores:
            raise ValueError("SearchSet needs at least one store")
        self.batch = ProtocolBatch(self.stores, seeds)
        self.seeds = self.batch.seeds
        self.redacted = [redact_store(s) for s in self.stores]
        self.data = self.batch.data
        self.max_branches = self.batch.max_branches
        self.ep_question = self.batch.questions
        self.ep_order = self.batch.perms
        S = len(self.seeds)
        store_of, rep, ques = [], [], []
        for si, s in enumerate(self.stores):
            Q = s.num_questions
            store_of.append(np.full(S * Q, si, np.int32))
            rep.append(np.repeat(np.arange(S, dtype=np.int32), Q))
            ques.append(np.tile(np.arange(Q, dtype=np.int32), S))
        self.ep_store = np.concatenate(store_of)
        self.ep_replicate = np.concatenate(rep)
        self.ep_local_question = np.concatenate(ques)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stores]

    @property
    def num_episodes(self) -> int:
        """Episodes per beta."""
        return int(self.ep_question.shape[0])

    def payload(self, code: str, betas: Sequence[float], unrestricted: bool = False) -> bytes:
        """Pickled payload for the child (only redacted data)."""
        S = len(self.seeds)
        orders, questions = [], []
        for s, sl in zip(self.stores, self.batch.slices):
            Q = s.num_questions
            orders.append(np.ascontiguousarray(self.ep_order[sl].reshape(S, Q, -1)))
            questions.append(np.tile(np.arange(Q, dtype=np.int32), (S, 1)))
        return pickle.dumps({
            "code": code, "betas": [float(b) for b in betas], "stores": self.redacted,
            "orders": orders, "questions": questions, "unrestricted": bool(unrestricted)},
            protocol=pickle.HIGHEST_PROTOCOL)


# ------------------------------------------------------------------------------------------------
# running one child
# ------------------------------------------------------------------------------------------------

@dataclass
class JobResult:
    """Raw outcome of one child process (before re-play)."""
    ok: bool
    error_kind: str | None = None
    error: str | None = None
    header: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    returncode: int | None = None
    stderr: str = ""
    wall_s: float = 0.0


def _package_root() -> str:
    import tts_gym
    return str(Path(tts_gym.__file__).resolve().parent.parent)


_PASS_ENV = ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT", "LD_LIBRARY_PATH")


def child_environment() -> dict:
    """The child's whole environment: nothing inherited but a handful of non-secret variables."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": _package_root(),
           "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}
    for k in _PASS_ENV:
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def _reader(stream, cap: int, sink: list, overflow: list, on_overflow=None) -> None:
    size = 0
    try:
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            if size < cap:
                sink.append(chunk[:cap - size])
            size += len(chunk)
            if size > cap and not overflow:
                overflow.append(size)
                if on_overflow is not None:
                    on_overflow()
    except (OSError, ValueError):
        pass


def _killpg(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except (ProcessLookupError, OSError):
        pass


def _describe_exit(rc: int, stderr: str, limits: SandboxLimits) -> tuple[str, str]:
    tail = stderr.strip()[-1500:]
    if rc < 0:
        sig = -rc
        if sig == signal.SIGXCPU:
            return "timeout", f"CPU time limit of {limits.child_limits()['cpu_s']} s exceeded"
        if sig == signal.SIGKILL:
            return "killed", ("the controller process was killed (out of memory?)"
                              + (f"\n{tail}" if tail else ""))
        if sig == signal.SIGXFSZ:
            return "violation", "the controller process tried to write a file"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return "crash", f"the controller process died of signal {name}" + (f"\n{tail}" if tail else "")
    if "MemoryError" in stderr:
        return "memory", "memory limit exceeded (MemoryError)"
    return "crash", f"the sandbox worker exited with status {rc} without a result" + (
        f"\n{tail}" if tail else "")


def decode_frame(raw: bytes) -> tuple[dict, dict]:
    """Parse a result frame defensively (the child is untrusted). Raises ``ValueError``."""
    if not raw.startswith(FRAME_MAGIC):
        raise ValueError("no result frame on the child's stdout")
    pos = len(FRAME_MAGIC)
    if len(raw) < pos + 8:
        raise ValueError("truncated result frame")
    (hlen,) = struct.unpack("<Q", raw[pos:pos + 8])
    pos += 8
    if hlen > min(len(raw) - pos, 16 * 2**20):
        raise ValueError("bad result header length")
    header = json.loads(raw[pos:pos + hlen].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("result header is not an object")
    pos += hlen
    body = memoryview(raw)[pos:]
    arrays = {}
    meta = header.get("arrays") or {}
    if not isinstance(meta, dict):
        raise ValueError("bad array table")
    for name, m in meta.items():
        dtype, shape, off, nbytes = m["dtype"], m["shape"], int(m["offset"]), int(m["nbytes"])
        if dtype not in RESULT_DTYPES or not isinstance(shape, list) or len(shape) != 1:
            raise ValueError(f"bad array {name!r}")
        dt = np.dtype(dtype).newbyteorder("<")
        if off < 0 or nbytes < 0 or off + nbytes > len(body) or nbytes != int(shape[0]) * dt.itemsize:
            raise ValueError(f"array {name!r} out of bounds")
        arrays[name] = np.frombuffer(body[off:off + nbytes], dtype=dt).astype(dt.newbyteorder("="))
    return header, arrays


def run_job(search: SearchSet, code: str, betas: Sequence[float], limits: SandboxLimits, *,
            unrestricted: bool = False, cancel: threading.Event | None = None) -> JobResult:
    """Run one child over ``betas`` x every search episode; returns the raw :class:`JobResult`."""
    config = {"ppid": os.getpid(), "limits": limits.child_limits(),
              "episode_timeout": float(limits.episode_timeout_s), "print_cap": int(limits.print_cap),
              "landlock": bool(limits.landlock), "netns": bool(limits.netns)}
    payload = search.payload(code, betas, unrestricted=unrestricted)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tts-gym-sandbox-") as cwd:
        os.chmod(cwd, 0o755)
        proc = subprocess.Popen(
            [sys.executable, "-s", "-B", "-m", "tts_gym.discovery.sandbox_worker", json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=child_environment(), cwd=cwd, start_new_session=True, close_fds=True)
        out, err, out_over, err_over = [], [], [], []
        t_out = threading.Thread(target=_reader, args=(proc.stdout, limits.output_cap, out, out_over,
                                                       lambda: _killpg(proc)), daemon=True)
        t_err = threading.Thread(target=_reader, args=(proc.stderr, limits.stderr_cap, err, err_over),
                                 daemon=True)
        t_out.start()
        t_err.start()

        def feed():
            try:
                proc.stdin.write(payload)
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
        t_in = threading.Thread(target=feed, daemon=True)
        t_in.start()
        timed_out = False
        deadline = t0 + float(limits.timeout_s)
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline or (cancel is not None and cancel.is_set()):
                    timed_out = time.monotonic() > deadline
                    _killpg(proc)
                    proc.wait()
                    break
        _killpg(proc)  # nothing of the group may outlive the job
        t_out.join(5)
        t_err.join(5)
        t_in.join(1)
    wall = time.monotonic() - t0
    stderr = b"".join(err).decode("utf-8", "replace")
    raw = b"".join(out)
    rc = proc.returncode
    if timed_out:
        return JobResult(False, "timeout", f"wall-clock limit of {limits.timeout_s:g} s exceeded "
                         f"(the controller is too slow or never returns)", returncode=rc,
                         stderr=stderr, wall_s=wall)
    if cancel is not None and cancel.is_set() and rc != 0:
        return JobResult(False, "cancelled", "cancelled", returncode=rc, stderr=stderr, wall_s=wall)
    if out_over:
        return JobResult(False, "output", f"the child wrote more than {limits.output_cap} bytes",
                         returncode=rc, stderr=stderr, wall_s=wall)
    try:
        header, arrays = decode_frame(raw)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        kind, msg = _describe_exit(rc, stderr, limits) if rc != 0 else ("crash", f"bad result: {exc}")
        return JobResult(False, kind, msg, returncode=rc, stderr=stderr, wall_s=wall)
    header = _sanitize_header(header, limits)
    ok = header["ok"]
    return JobResult(ok, None if ok else header["error_kind"] or "error",
                     None if ok else header["error"] or "unknown error",
                     header=header, arrays=arrays, returncode=rc, stderr=stderr, wall_s=wall)


def _clip(x, n: int) -> str:
    s = x if isinstance(x, str) else ("" if x is None else str(x))
    return s if len(s) <= n else s[:n] + " [...]"


def _sanitize_header(h: dict, limits: SandboxLimits) -> dict:
    """Keep only known fields of the untrusted header, with plain types and bounded sizes."""
    fe = h.get("failed_episode")
    layers = h.get("layers")
    probe = h.get("probe")
    return {
        "ok": h.get("ok") is True,
        "error_kind": _clip(h.get("error_kind"), 40) or None,
        "error": _clip(h.get("error"), 20_000) or None,
        "failed_episode": ({k: (v if isinstance(v, (int, float)) else _clip(v, 200))
                            for k, v in list(fe.items())[:8]} if isinstance(fe, dict) else None),
        "layers": ({_clip(k, 40): _clip(v, 200) if not isinstance(v, bool) else v
                    for k, v in list(layers.items())[:12]} if isinstance(layers, dict) else {}),
        "stdout": _clip(h.get("stdout"), limits.print_cap + 100),
        "seconds": h.get("seconds") if isinstance(h.get("seconds"), (int, float)) else None,
        "violations": [_clip(v, 300) for v in (h.get("violations") or [])[:20]]
                      if isinstance(h.get("violations"), list) else [],
        # the unrestricted test probe's module-level RESULT (tests only), size-bounded
        "probe": probe if isinstance(probe, dict) and len(json.dumps(probe)) < 200_000 else None,
    }


def run_unrestricted_probe(search: SearchSet, source: str, limits: SandboxLimits) -> JobResult:
    """Run raw Python (full builtins, no controller rules) inside the locked-down child and return
    its module-level ``RESULT``: used by the tests to check the OS-level layers on their own."""
    return run_job(search, source, [0.0], limits, unrestricted=True)


# ------------------------------------------------------------------------------------------------
# re-play of the action logs (parent side, compiled)
# ------------------------------------------------------------------------------------------------

REPLAY_AFTER_TERMINAL = 100
REPLAY_NO_TERMINAL = 101


@nb.njit(cache=True, nogil=True)
def _replay_logs(state, data, params, qidx, orders, actions, offsets, out_cost, out_answer,
                 out_code, out_gold_seen, out_steps):
    M = params.max_branches
    for e in range(qidx.shape[0]):
        K.reset_episode(state, 0, qidx[e], orders[e])
        g = data.gold_ids[qidx[e]]
        seen = False
        code = 0
        n = 0
        for t in range(offsets[e], offsets[e + 1]):
            a = np.int64(actions[t])
            if state.done[0]:
                code = REPLAY_AFTER_TERMINAL
                break
            c, _ = K.step_episode(state, data, params, 0, a)
            if c != 0:
                code = c
                break
            n += 1
            p = -1
            if a == A.BRANCH or a == A.SAMPLE:
                p = state.cursor[0] - 1
            elif a >= A.NUM_GLOBAL_ACTIONS and a < A.NUM_GLOBAL_ACTIONS + 2 * M:
                p = (a - A.NUM_GLOBAL_ACTIONS) % M
            if p >= 0 and g >= 0 and state.latest[0, p] == g:
                seen = True
        if code == 0 and not state.done[0]:
            code = REPLAY_NO_TERMINAL
        out_code[e] = code
        out_cost[e] = state.cost[0]
        out_answer[e] = state.answer[0]
        out_gold_seen[e] = seen
        out_steps[e] = n


def replay_logs(search: SearchSet, actions: np.ndarray, offsets: np.ndarray) -> dict:
    """Re-play one beta's action logs (episode order of :class:`SearchSet`) with the kernels.

    Returns per-episode ``cost``, ``answer`` (committed id), ``correct``, ``gold_seen`` (the gold
    answer was revealed at some point), ``code`` (0, a kernel error code, or
    ``REPLAY_AFTER_TERMINAL`` / ``REPLAY_NO_TERMINAL``) and ``steps``.
    """
    E = search.num_episodes
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    actions = np.ascontiguousarray(actions, dtype=np.int16)
    if offsets.shape != (E + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 0) \
            or offsets[-1] != actions.shape[0]:
        raise ValueError("inconsistent action-log offsets")
    params = K.EnvParams(max_branches=search.max_branches, fused=True, probe_cost=0, token_budget=0)
    state = K.make_state(1, search.max_branches)
    cost = np.zeros(E, np.int64)
    answer = np.zeros(E, np.int32)
    code = np.zeros(E, np.int32)
    seen = np.zeros(E, np.bool_)
    steps = np.zeros(E, np.int32)
    _replay_logs(state, search.data, params, search.ep_question, search.ep_order, actions, offsets,
                 cost, answer, code, seen, steps)
    gold = search.data.gold_ids[search.ep_question]
    correct = (answer >= 0) & (answer == gold) & (gold >= 0)
    return {"cost": cost, "answer": answer, "correct": correct, "gold_seen": seen, "code": code,
            "steps": steps}


# ------------------------------------------------------------------------------------------------
# evaluation of a controller over a beta sweep
# ------------------------------------------------------------------------------------------------

@dataclass
class ControllerEvaluation:
    """Scores of one controller on a :class:`SearchSet` over a beta sweep."""
    ok: bool
    betas: list
    store_names: list
    error_kind: str | None = None
    error: str | None = None
    failed_episode: dict | None = None
    per_beta: list = field(default_factory=list)      # dicts, see to_json
    monotone: dict = field(default_factory=dict)
    seconds: float = 0.0
    stdout: str = ""
    layers: dict = field(default_factory=dict)
    episodes: dict = field(default_factory=dict)      # beta -> replay dict (+ "actions", "offsets")

    def point(self, beta: float) -> dict | None:
        for p in self.per_beta:
            if abs(p["beta"] - float(beta)) < 1e-12:
                return p
        return None

    def to_json(self) -> dict:
        return {"ok": self.ok, "error_kind": self.error_kind, "error": self.error,
                "failed_episode": self.failed_episode, "betas": self.betas,
                "stores": self.store_names, "per_beta": self.per_beta, "monotone": self.monotone,
                "seconds": round(self.seconds, 3), "stdout": self.stdout, "sandbox": self.layers}

    @classmethod
    def from_json(cls, d: dict) -> "ControllerEvaluation":
        return cls(ok=bool(d["ok"]), betas=list(d.get("betas", [])),
                   store_names=list(d.get("stores", [])), error_kind=d.get("error_kind"),
                   error=d.get("error"), failed_episode=d.get("failed_episode"),
                   per_beta=list(d.get("per_beta", [])), monotone=dict(d.get("monotone", {})),
                   seconds=float(d.get("seconds", 0.0)), stdout=d.get("stdout", ""),
                   layers=dict(d.get("sandbox", {})))

    # -- traces for the proposer -------------------------------------------------------------------
    def trace_summaries(self, search: SearchSet, beta: float | None = None, n: int = 3,
                        max_chars: int = 1800) -> str:
        """Compact descriptions of up to ``n`` representative episodes at ``beta`` (default: the
        middle of the sweep): wrong answers although the correct one had been revealed, wrong
        answers that never saw it, and the most expensive correct episodes."""
        if not self.ok or not self.episodes:
            return ""
        if beta is None:
            beta = self.betas[len(self.betas) // 2]
        ep = self.episodes.get(float(beta))
        if ep is None:
            return ""
        picks = select_trace_episodes(search, ep, n)
        parts = [summarize_episode(search, ep, e, float(beta), why, max_chars) for e, why in picks]
        return "\n\n".join(parts)


def select_trace_episodes(search: SearchSet, ep: dict, n: int) -> list[tuple[int, str]]:
    """Up to ``n`` episodes, distinct questions, in order of usefulness."""
    correct, seen, cost = ep["correct"], ep["gold_seen"], ep["cost"]
    key = search.ep_store.astype(np.int64) * 100000 + search.ep_local_question
    groups = [
        (np.flatnonzero(~correct & seen), "wrong, although the correct answer had been revealed"),
        (np.flatnonzero(~correct & ~seen), "wrong; the correct answer was never revealed"),
        (np.flatnonzero(correct), "correct but among the most expensive episodes"),
    ]
    out, used = [], set()
    for idx, why in groups:
        if len(out) >= n:
            break
        if idx.size == 0:
            continue
        idx = idx[np.argsort(-cost[idx], kind="stable")]
        for e in idx:
            if key[e] in used:
                continue
            used.add(key[e])
            out.append((int(e), why))
            break
    # fill up with the most expensive remaining episodes
    if len(out) < n:
        for e in np.argsort(-cost, kind="stable"):
            if len(out) >= n:
                break
            if key[e] not in used:
                used.add(key[e])
                out.append((int(e), "among the most expensive episodes"))
    return out


def _labels():
    import string
    letters = string.ascii_uppercase
    i = 0
    while True:
        q, r = divmod(i, 26)
        yield letters[r] + (str(q) if q else "")
        i += 1


def summarize_episode(search: SearchSet, ep: dict, e: int, beta: float, why: str,
                      max_chars: int = 1800) -> str:
    """Re-play episode ``e`` step by step and describe it compactly: answers are anonymised labels
    (A, B, ... in order of first reveal; the correct one marked), one line per opened branch with
    its run-length-compressed sequence of revealed answers, when branches were opened, and the
    committed answer."""
    si = int(search.ep_store[e])
    store = search.stores[si]
    q = int(search.ep_local_question[e])
    r = int(search.ep_replicate[e])
    acts = ep["actions"][ep["offsets"][e]:ep["offsets"][e + 1]]
    M = search.max_branches
    params = K.EnvParams(max_branches=M, fused=True, probe_cost=0, token_budget=0)
    state = K.make_state(1, M)
    K.reset_episode(state, 0, int(search.ep_question[e]), search.ep_order[e])
    gold = int(search.data.gold_ids[search.ep_question[e]])
    labels, gen = {}, _labels()

    def lab(a):
        if a not in labels:
            labels[a] = next(gen)
        return labels[a]

    seqs: dict[int, list] = {}
    opened_at, kinds = {}, {}
    opens = advances = samples = 0
    committed = None
    for t, a in enumerate(acts):
        a = int(a)
        K.step_episode(state, search.data, params, 0, a)
        if a in (A.BRANCH, A.SAMPLE):
            p = int(state.cursor[0]) - 1
            opened_at[p] = t
            kinds[p] = "full read" if a == A.SAMPLE else "probed"
            seqs[p] = [lab(int(state.latest[0, p]))]
            opens += a == A.BRANCH
            samples += a == A.SAMPLE
        elif A.NUM_GLOBAL_ACTIONS <= a < A.NUM_GLOBAL_ACTIONS + M:
            p = a - A.NUM_GLOBAL_ACTIONS
            seqs[p].append(lab(int(state.latest[0, p])))
            advances += 1
        elif state.done[0]:
            committed = int(state.answer[0])
    gold_label = labels.get(gold)
    ok = bool(ep["correct"][e])
    head = (f"### {store.name}, question {q}, shuffle seed {search.seeds[r]}, beta={beta:g}: "
            f"{'CORRECT' if ok else 'WRONG'} ({why})\n"
            f"tokens {int(ep['cost'][e]):,}; {len(seqs)} branches opened ({opens} probed, {samples} "
            f"full reads), {advances} probe_more calls, {len(acts) - 1} calls in total. Answers are "
            f"labelled A, B, ... in order of first appearance; ")
    if gold_label is None:
        head += "the correct answer never appeared.\n"
    else:
        head += f"the correct answer is {gold_label}.\n"
    shown = labels.get(committed, "-") if committed is not None and committed >= 0 else "None"
    head += f"committed: {shown}{' (correct)' if ok else ''}\n"
    tally: dict = {}
    for p in sorted(seqs):
        tally[seqs[p][-1]] = tally.get(seqs[p][-1], 0) + 1
    top = sorted(tally.items(), key=lambda kv: -kv[1])[:8]
    head += ("latest answer per opened branch at the end: "
             + ", ".join(f"{k}x{v}" for k, v in top) + (" ..." if len(tally) > 8 else "") + "\n")
    lines = []
    for p in sorted(seqs):
        s = seqs[p]
        runs, prev, cnt = [], None, 0
        for x in s + [None]:
            if x == prev:
                cnt += 1
                continue
            if prev is not None:
                runs.append(prev if cnt == 1 else f"{prev}x{cnt}")
            prev, cnt = x, 1
        fin = bool(state.flags[0, p] & K.FINISHED) if kinds[p] == "probed" else True
        status = "finished" if fin else "stopped"
        seq = " ".join(runs)
        if len(seq) > 160:
            seq = seq[:160].rsplit(" ", 1)[0] + " ..."
        lines.append(f"  branch {p} (opened at call {opened_at[p]}, {kinds[p]}, {len(s)} answers, "
                     f"{status}, {int(state.ledger[0, p]):,} tokens): {seq}")
    body = "\n".join(lines)
    text = head + body
    if len(text) > max_chars:
        text = text[:max_chars - 40].rsplit("\n", 1)[0] + "\n  [... more branches omitted]"
    return text


def _monotone_verdict(names: list, per_beta: list) -> dict:
    """Is mean token use non-decreasing in beta, per store and on average?"""
    pts = sorted(per_beta, key=lambda p: p["beta"])
    violations = []
    for name in names + ["mean"]:
        for a, b in zip(pts, pts[1:]):
            ta = a["tokens"] if name == "mean" else a["stores"][name]["tokens"]
            tb = b["tokens"] if name == "mean" else b["stores"][name]["tokens"]
            if tb < ta:
                violations.append(f"{name}: tokens fall from {ta:,.0f} at beta={a['beta']:g} to "
                                  f"{tb:,.0f} at beta={b['beta']:g}")
    return {"ok": not violations, "violations": violations}


def evaluate_controller(code: str, search: SearchSet, betas: Sequence[float] = DEFAULT_BETAS,
                        limits: SandboxLimits | None = None, executor: Executor | None = None,
                        keep_episodes: bool = True, parts: Sequence[SearchSet] | None = None,
                        on_job=None, betas_per_job: int = 1) -> ControllerEvaluation:
    """Evaluate controller source ``code`` in the sandbox on ``search`` at every beta.

    One child per group of ``betas_per_job`` consecutive betas and part (``parts``:
    :class:`SearchSet` objects over consecutive groups of ``search``'s stores, with the same seeds
    -- e.g. one per store; default: ``[search]``), run on ``executor`` when given, else on a
    private thread pool. The first failure (in beta, then part order) fails the candidate and
    cancels the other jobs. ``on_job()`` is called as each job ends.
    """
    limits = limits or SandboxLimits()
    betas = [float(b) for b in betas]
    names = search.names
    parts = list(parts) if parts is not None else [search]
    if [n for p in parts for n in p.names] != names or any(p.seeds != search.seeds for p in parts):
        raise ValueError("parts must split the search stores in order, with the same seeds")
    t0 = time.monotonic()
    try:
        check_source(code)
    except SyntaxError as exc:
        return ControllerEvaluation(False, betas, names, "syntax",
                                    f"SyntaxError: {exc.msg} (line {exc.lineno})"
                                    + (f"\n    {exc.text.rstrip()}" if exc.text else ""))
    except ControllerRejected as exc:
        return ControllerEvaluation(False, betas, names, "rejected", str(exc))
    except (RecursionError, MemoryError, ValueError) as exc:
        return ControllerEvaluation(False, betas, names, "rejected",
                                    f"the source cannot be parsed: {type(exc).__name__}: {exc}")
    cancel = threading.Event()
    own = executor is None
    pool = executor or ThreadPoolExecutor(max_workers=min(len(betas) * len(parts), os.cpu_count() or 1))
    size = max(1, int(betas_per_job))
    groups = [tuple(betas[i:i + size]) for i in range(0, len(betas), size)]
    keys = [(g, pi) for g in groups for pi in range(len(parts))]
    results: dict = {}
    failed: JobResult | None = None
    try:
        futs = []
        for g, pi in keys:
            f = pool.submit(run_job, parts[pi], code, list(g), limits, cancel=cancel)
            if on_job is not None:
                f.add_done_callback(lambda _f: on_job())
            futs.append(f)
        for (g, pi), f in zip(keys, futs):
            if failed is not None:
                f.cancel()
                continue
            res = f.result()
            if not res.ok:
                results[(g[0], pi)] = res
                failed = res
                cancel.set()
                continue
            try:
                for b, one in zip(g, _split_betas(res, parts[pi].num_episodes, len(g))):
                    results[(b, pi)] = one
            except ValueError as exc:
                failed = JobResult(False, "integrity", str(exc), header=res.header)
                cancel.set()
    finally:
        if own:
            pool.shutdown(wait=True)
    ev = ControllerEvaluation(True, betas, names)
    ev.seconds = time.monotonic() - t0
    for res in results.values():
        ev.layers = res.header.get("layers") or ev.layers
        if res.header.get("stdout") and not ev.stdout:
            ev.stdout = res.header["stdout"]
    if failed is not None:
        ev.ok, ev.error_kind, ev.error = False, failed.error_kind, failed.error
        ev.failed_episode = failed.header.get("failed_episode")
        if failed.header.get("stdout"):
            ev.stdout = failed.header["stdout"]
        return ev
    for b in betas:
        try:
            combined = _combine([results[(b, pi)] for pi in range(len(parts))],
                                [p.num_episodes for p in parts])
            point, episodes = _score(search, b, combined)
        except (ValueError, KeyError) as exc:
            ev.ok, ev.error_kind, ev.error = False, "integrity", str(exc)
            return ev
        ev.per_beta.append(point)
        if keep_episodes:
            ev.episodes[b] = episodes
    ev.monotone = _monotone_verdict(names, ev.per_beta)
    return ev


def _split_betas(res: JobResult, n: int, count: int) -> list[JobResult]:
    """The results of a job over ``count`` betas (``n`` episodes each, beta-major) as one
    :class:`JobResult` per beta (offsets re-based)."""
    if count == 1:
        return [res]
    a = res.arrays
    for k in ("actions", "offsets", "answers", "costs"):
        if k not in a:
            raise ValueError(f"result misses the {k!r} array")
    o = a["offsets"]
    if (a["answers"].shape != (n * count,) or a["costs"].shape != (n * count,)
            or o.shape != (n * count + 1,) or o[0] != 0 or o[-1] != a["actions"].shape[0]
            or np.any(np.diff(o) < 0)):
        raise ValueError("integrity check failed: inconsistent result arrays")
    out = []
    for k in range(count):
        lo, hi = k * n, (k + 1) * n
        ob = o[lo:hi + 1]
        out.append(JobResult(True, header=res.header, arrays={
            "actions": a["actions"][ob[0]:ob[-1]], "offsets": ob - ob[0],
            "answers": a["answers"][lo:hi], "costs": a["costs"][lo:hi]}, wall_s=res.wall_s))
    return out


def _combine(results: Sequence[JobResult], sizes: Sequence[int]) -> JobResult:
    """Concatenate the result arrays of consecutive parts (offsets re-based), checking each part."""
    acts, offs, answers, costs = [], [np.zeros(1, np.int64)], [], []
    base = 0
    for res, n in zip(results, sizes):
        a = res.arrays
        for k in ("actions", "offsets", "answers", "costs"):
            if k not in a:
                raise ValueError(f"result misses the {k!r} array")
        o = a["offsets"]
        if (a["answers"].shape != (n,) or a["costs"].shape != (n,) or o.shape != (n + 1,)
                or o[0] != 0 or o[-1] != a["actions"].shape[0]):
            raise ValueError("integrity check failed: inconsistent result arrays")
        acts.append(a["actions"])
        offs.append(a["offsets"][1:].astype(np.int64) + base)
        base += int(a["actions"].shape[0])
        answers.append(a["answers"])
        costs.append(a["costs"])
    return JobResult(True, header=results[0].header, arrays={
        "actions": np.concatenate(acts), "offsets": np.concatenate(offs),
        "answers": np.concatenate(answers), "costs": np.concatenate(costs)})


def _score(search: SearchSet, beta: float, res: JobResult) -> tuple[dict, dict]:
    arr = res.arrays
    for k in ("actions", "offsets", "answers", "costs"):
        if k not in arr:
            raise ValueError(f"result misses the {k!r} array")
    E = search.num_episodes
    if arr["answers"].shape != (E,) or arr["costs"].shape != (E,):
        raise ValueError(f"the child reported {arr['answers'].shape[0]} episodes, expected {E}")
    rep = replay_logs(search, arr["actions"], arr["offsets"])
    bad = np.flatnonzero(rep["code"] != 0)
    if bad.size:
        e = int(bad[0])
        c = int(rep["code"][e])
        why = {REPLAY_AFTER_TERMINAL: "actions after the answer",
               REPLAY_NO_TERMINAL: "no answering action"}.get(c) or K.ERROR_MESSAGES.get(c, str(c))
        raise ValueError(f"integrity check failed: the action log of episode {e} does not re-play "
                         f"({why})")
    if not np.array_equal(rep["cost"], arr["costs"]) or not np.array_equal(rep["answer"], arr["answers"]):
        raise ValueError("integrity check failed: the child's costs or answers differ from the re-play")
    stores = {}
    for si, name in enumerate(search.names):
        m = search.ep_store == si
        n = int(m.sum())
        c = int(rep["correct"][m].sum())
        tt = int(rep["cost"][m].sum())
        stores[name] = {"accuracy": round(100.0 * c / n, 4), "tokens": tt / n, "correct": c,
                        "total_tokens": tt, "episodes": n}
    point = {"beta": beta,
             "accuracy": float(np.mean([v["accuracy"] for v in stores.values()])),
             "tokens": float(np.mean([v["tokens"] for v in stores.values()])),
             "stores": stores}
    rep["actions"], rep["offsets"] = arr["actions"], arr["offsets"]
    return point, rep


# ------------------------------------------------------------------------------------------------
# in-process use of a controller file (tts-gym eval --controller FILE)
# ------------------------------------------------------------------------------------------------

def check_controller_source(source: str) -> str | None:
    """``None`` when ``source`` passes the sandbox's static rules, else the message."""
    try:
        check_source(source)
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    except ControllerRejected as exc:
        return str(exc)
    except (RecursionError, MemoryError, ValueError) as exc:
        return f"the source cannot be parsed: {type(exc).__name__}: {exc}"
    return None


class FileController:
    """An AutoTTS-style controller object (``solve(question)``) around a controller file: every
    ``solve`` executes the file in fresh restricted globals, builds ``Controller(beta)`` and hands
    it the restricted question object -- exactly what the sandbox does, minus the process."""

    def __init__(self, path: str | os.PathLike, beta: float = 0.5) -> None:
        import linecache
        self.path = str(path)
        source = Path(path).read_text()
        try:
            self.code = compile_controller(source, filename=self.path)
        except SyntaxError as exc:
            raise ControllerRejected(f"{self.path}: SyntaxError: {exc.msg} (line {exc.lineno})") from exc
        linecache.cache[self.path] = (len(source), None, source.splitlines(True), self.path)
        self.reference_format = controller_format(check_source(source, self.path)) == "reference"
        self.beta = float(beta)
        self.config = {"beta": self.beta}
        self.NAME = Path(path).stem
        self.violations: list[str] = []

    def solve(self, question):
        ctrl = instantiate(self.code, self.beta)
        return ctrl.solve(make_question(question, self.violations.append))


def load_controller_policy(path: str | os.PathLike, beta: float = 0.5, *, name: str | None = None,
                           strict: bool = True, timeout: float | None = None):
    """A controller file (AutoTTS ``solve(question)`` style, as written by the discovery loop) as a
    :class:`~tts_gym.policies.base.Policy`.

    The file runs **in this process** under the same static rules and restricted namespace as in
    the sandbox, but without the sandbox's process isolation; use it for controllers you have
    reviewed (or evaluate them with :func:`evaluate_controller`). ``strict`` makes ``probe_more`` on
    an unopened or finished branch an error, as in the sandbox.
    """
    from tts_gym.policies.autotts_adapter import AutoTTSPolicy
    ctrl = FileController(path, beta)
    return AutoTTSPolicy(ctrl, name=name or f"{ctrl.NAME}(beta={float(beta):g})", strict=strict,
                         raise_on_exhaustion=ctrl.reference_format, timeout=timeout)


# cache entries also keyed on the compiled layer's sources (see tts_gym.core.numba_cache)
from tts_gym.core.numba_cache import bind_module_cache  # noqa: E402

bind_module_cache(globals())
