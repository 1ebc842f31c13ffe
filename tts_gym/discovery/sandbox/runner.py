"""Parent side of one sandbox job: start the confined worker, feed it, bound it, read it.

:func:`run_job` runs one controller over ``betas`` x every episode of a search set in one sandbox
(:mod:`~tts_gym.discovery.sandbox.confinement`), enforces the wall-clock limit (killing the
sandbox; the pid namespace takes every process in it along), reads at most
``output_cap`` / ``stderr_cap`` bytes, and parses the output defensively
(:mod:`~tts_gym.discovery.sandbox.frames`). Whatever the sandbox sends, the result is a
:class:`JobResult`; nothing raises here but :class:`SandboxUnavailable` (refused before starting).
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tts_gym.discovery.sandbox import confinement as C
from tts_gym.discovery.sandbox import frames as F

__all__ = ["SandboxLimits", "JobResult", "run_job", "interpret", "WORKER_MODULE"]

WORKER_MODULE = "tts_gym.discovery.sandbox.worker"


@dataclass(frozen=True)
class SandboxLimits:
    """Limits and switches of one sandbox job (one controller, one beta, a search set).

    ``timeout_s``: wall clock of the whole job (the sandbox is killed); ``episode_timeout_s``:
    wall clock of one episode (its process is killed); ``memory_mb``: address space an episode's
    process may add to the worker's (``RLIMIT_AS``; one episode process runs at a time);
    ``cpu_s``: CPU seconds of the worker (default ``timeout_s + 5``); ``output_cap`` /
    ``episode_output_bytes`` / ``stderr_cap``: bytes read from the sandbox / forwarded per episode
    / read from its stderr; ``print_cap``: characters of an episode's ``print`` output kept.

    ``episodes_per_process``: episodes played one after the other by one forked process (1: a
    fresh process per episode). Each episode gets fresh controller globals, its own seed and its
    own question object, but a process outlives its episodes, so module-level state of the
    allowed modules could carry from one episode to the next: after a batched job, a random
    ``audit_fraction`` of the episodes that did not open their process (at least
    ``audit_min``) is re-run alone in fresh processes, and any difference in actions, answer or
    cost fails the job (kind ``state``). Forking costs more than a typical episode (about 0.1 ms
    per MB of the worker, 6--25 ms on the machines measured), so batching is what makes a
    beta-sweep take minutes rather than half an hour; ``episodes_per_process=1`` is the strict
    mode (``tts-gym discover --isolate-episodes``).

    ``landlock``: add Landlock where the kernel has it (an extra layer: the sandbox does not
    depend on it). ``seccomp``: the seccomp filters (switched off only by tests that show what
    another layer does alone). ``allow_unsandboxed``: run without bubblewrap where it is missing
    (recorded in the result's layers) instead of refusing. ``os_sandbox=False``: never use
    bubblewrap (the unconfined path measured by ``benchmarks/sandbox_cost.py``; recorded alike).
    """
    timeout_s: float = 1800.0
    episode_timeout_s: float = 20.0
    cpu_s: int | None = None
    memory_mb: int = 2048
    output_cap: int = 64 * 2**20
    episode_output_bytes: int = 8 * 2**20
    stderr_cap: int = 64 * 1024
    print_cap: int = 8192
    episodes_per_process: int = 256
    audit_fraction: float = 0.02
    audit_min: int = 4
    landlock: bool = True
    seccomp: bool = True
    allow_unsandboxed: bool = False
    os_sandbox: bool = True

    def confinement(self) -> C.Confinement:
        """The confinement these limits ask for (``SandboxUnavailable`` when refused)."""
        if not self.os_sandbox:
            return C.unconfined("os_sandbox=False")
        return C.require(self.allow_unsandboxed)

    def worker_limits(self, sandboxed: bool) -> dict:
        cpu = self.cpu_s if self.cpu_s is not None else int(self.timeout_s) + 5
        return {"cpu_s": int(cpu), "memory_mb": int(self.memory_mb),
                "episode_timeout_s": float(self.episode_timeout_s),
                "episode_cpu_s": int(self.episode_timeout_s) + 2,
                "episode_output_bytes": int(self.episode_output_bytes),
                # counted per sandbox user namespace; on the host the uid has other processes
                "nproc": 16 if sandboxed else None}


@dataclass
class JobResult:
    """Outcome of one sandbox job. ``arrays`` (on success): ``actions`` (int16), ``offsets``
    (int64, episodes + 1), ``answers`` (int32), ``costs`` (int64), as the child reported them."""
    ok: bool
    error_kind: str | None = None
    error: str | None = None
    failed_episode: int | None = None
    arrays: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)
    stdout: str = ""
    violations: list = field(default_factory=list)
    returncode: int | None = None
    stderr: str = ""
    wall_s: float = 0.0
    episodes_run: int = 0


# ------------------------------------------------------------------------------------------------
# running one sandbox
# ------------------------------------------------------------------------------------------------

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


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except (ProcessLookupError, OSError):
        pass


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def _episode_failure(ep: F.Episode, limits: SandboxLimits) -> tuple[str, str] | None:
    """``(kind, message)`` when episode ``ep`` failed, else ``None``."""
    if ep.violations:
        more = len(ep.violations) - 1
        return "violation", ep.violations[0] + (f" (and {more} more refused operation"
                                                f"{'s' if more > 1 else ''})" if more else "")
    # an episode whose records are broken, in a process killed at a limit, is that limit's
    # (its own records may be what the limit cut, or garbage written on the way there)
    broken = ep.malformed is not None or not ep.ok
    if ep.timed_out or (broken and ep.process_flags & 1):
        return "timeout", (f"episode time limit of {limits.episode_timeout_s:g} s exceeded (the "
                           f"controller is too slow or never returns)")
    if ep.output_capped or (broken and ep.process_flags & 2):
        return "output", (f"the episode's process wrote more than "
                          f"{limits.episode_output_bytes} bytes")
    if ep.malformed is not None:
        return "protocol", f"the sandbox's output is malformed: {ep.malformed}"
    if ep.error_kind is not None:
        return ep.error_kind, ep.error
    st = ep.status
    if st is None:
        return "crash", "the sandbox ended during the episode"
    if os.WIFSIGNALED(st):
        sig = os.WTERMSIG(st)
        if sig == signal.SIGXCPU:
            return "timeout", f"CPU time limit of {int(limits.episode_timeout_s) + 2} s exceeded"
        if sig == signal.SIGKILL:
            return "memory", "the episode's process was killed (out of memory?)"
        if sig == signal.SIGSYS:
            return "violation", "the episode's process used a forbidden system-call interface"
        if sig == signal.SIGSEGV:
            return "crash", ("the episode's process crashed (segmentation fault; too deep a "
                             "recursion?)")
        return "crash", f"the episode's process died of signal {_signal_name(sig)}"
    if not ep.ok:
        code = os.WEXITSTATUS(st) if os.WIFEXITED(st) else st
        return "crash", f"the episode's process exited with status {code} without a result"
    if os.WIFEXITED(st) and os.WEXITSTATUS(st) != 0:
        return "crash", f"the episode's process exited with status {os.WEXITSTATUS(st)}"
    return None


def _audit_difference(batched: F.Episode, alone: F.Episode, limits: SandboxLimits) -> str | None:
    """How the re-run alone of an episode differs from its batched run (``None``: identical)."""
    bad = _episode_failure(alone, limits)
    if bad is not None:
        return f"alone it failed: {bad[0]}: {bad[1]}"
    if alone.actions != batched.actions:
        a = bytes(alone.actions)
        b = bytes(batched.actions)
        at = next((i for i in range(0, min(len(a), len(b)), 2) if a[i:i + 2] != b[i:i + 2]),
                  min(len(a), len(b))) // 2
        return (f"its actions differ from action {at} on: {len(a) // 2} actions alone, "
                f"{len(b) // 2} batched")
    if alone.answer != batched.answer or alone.cost != batched.cost:
        return (f"answer/cost {alone.answer}/{alone.cost} alone, {batched.answer}/{batched.cost} "
                f"batched")
    return None


def _describe_exit(rc: int | None, stderr: str) -> str:
    tail = stderr.strip()[-1500:]
    if rc is None:
        what = "did not finish"
    elif rc < 0:
        what = f"died of signal {_signal_name(-rc)}"
    else:
        what = f"exited with status {rc}"
    return f"the sandbox {what} without a complete result" + (f"\n{tail}" if tail else "")


def _interpret(raw: bytes, rc, stderr: str, limits: SandboxLimits, expected: int) -> JobResult:
    st = F.decode_stream(raw, expected)
    res = JobResult(False, layers=dict(st.layers), returncode=rc, stderr=stderr,
                    episodes_run=len(st.episodes))
    printed, room, dropped = [], int(limits.print_cap), 0
    for ep in st.episodes:
        res.violations.extend(ep.violations[:max(0, 20 - len(res.violations))])
        kept = ep.printed[:max(room, 0)]
        if kept:
            printed.append(kept)
            room -= len(kept)
        dropped += len(ep.printed) - len(kept)
    res.stdout = "".join(printed) + (f"\n[... {dropped} more characters of printed output "
                                     f"dropped]" if dropped else "")
    if st.fatal is not None:
        res.error_kind, res.error = st.fatal
        return res
    for ep in st.episodes:
        bad = _episode_failure(ep, limits)
        if bad is not None:
            res.error_kind, res.error = bad
            res.failed_episode = ep.index
            return res
    if not st.done or len(st.episodes) != expected:
        res.error_kind = "crash"
        res.error = (f"the sandbox stopped after {len(st.episodes)} of {expected} episodes; "
                     + _describe_exit(rc, stderr))
        return res
    for au in st.audits:
        if au.index >= expected:
            raise F.FrameError(f"audit of episode {au.index}, which did not run")
        diff = _audit_difference(st.episodes[au.index], au, limits)
        if diff is not None:
            res.error_kind, res.error = "state", (
                f"episode {au.index} played differently when run alone in a fresh process than "
                f"after the episodes before it in the same process ({diff}): the controller's "
                f"decisions depend on state carried from one episode to the next (module- or "
                f"class-level state of an imported module) or on object addresses (e.g. iterating "
                f"over a set of objects). Keep per-episode state on the controller object.")
            res.failed_episode = au.index
            return res
    acts = [np.frombuffer(ep.actions, dtype="<i2") for ep in st.episodes]
    offsets = np.zeros(expected + 1, np.int64)
    offsets[1:] = np.cumsum([a.shape[0] for a in acts])
    res.arrays = {
        "actions": (np.concatenate(acts) if acts else np.zeros(0, "<i2")).astype(np.int16),
        "offsets": offsets,
        "answers": np.array([ep.answer for ep in st.episodes], np.int32),
        "costs": np.array([ep.cost for ep in st.episodes], np.int64),
    }
    res.ok = True
    return res


def interpret(raw: bytes, rc, stderr: str, limits: SandboxLimits, expected: int,
              wall: float = 0.0) -> JobResult:
    """The :class:`JobResult` of a sandbox's whole output ``raw``; never raises."""
    base = {"returncode": rc, "stderr": stderr, "wall_s": wall}
    try:
        res = _interpret(raw, rc, stderr, limits, expected)
    except F.FrameError as exc:
        return JobResult(False, "protocol", f"the sandbox's output is malformed: {exc}", **base)
    except Exception as exc:  # noqa: BLE001 - untrusted bytes never crash the parent
        return JobResult(False, "protocol", f"the sandbox's output cannot be used: "
                         f"{type(exc).__name__}: {F.clean_text(str(exc), 300)}", **base)
    res.wall_s = wall
    if not res.ok and res.error_kind is None:
        res.error_kind, res.error = "crash", _describe_exit(rc, stderr)
    return res


def run_job(search, code: str, betas: Sequence[float], limits: SandboxLimits, *,
            python_layer: str = "full", cancel: threading.Event | None = None) -> JobResult:
    """Run one sandbox over ``betas`` x every episode of ``search``
    (a :class:`~tts_gym.discovery.sandbox.evaluation.SearchSet`). ``python_layer``: ``"full"``
    (restricted namespace and audit hook), or for tests of the lower layers, raw Python with the
    audit hook (``"hook"``) or without (``"none"``).
    Raises :class:`~tts_gym.discovery.sandbox.confinement.SandboxUnavailable` only."""
    conf = limits.confinement()
    payload = search.payload(code, betas, python_layer=python_layer)
    expected = len(betas) * search.num_episodes
    sandboxed = conf.sandboxed
    config = {"limits": limits.worker_limits(sandboxed), "print_cap": int(limits.print_cap),
              "episodes_per_process": max(1, int(limits.episodes_per_process)),
              "audit_fraction": float(limits.audit_fraction), "audit_min": int(limits.audit_min),
              "landlock": bool(limits.landlock), "seccomp": bool(limits.seccomp),
              "read_roots": C.read_roots()}
    t0 = time.monotonic()
    seccomp_fd = None
    with tempfile.TemporaryDirectory(prefix="tts-gym-sandbox-", dir=C.job_parent_dir()) as tmp:
        os.chmod(tmp, 0o755)
        if sandboxed:
            from tts_gym.discovery.sandbox import seccomp
            command = [C.interpreter(), "-s", "-B", "-m", WORKER_MODULE, json.dumps(config)]
            if limits.seccomp:
                seccomp_fd = os.memfd_create("tts-gym-seccomp", 0)
                os.write(seccomp_fd, seccomp.sandbox_program())
                os.lseek(seccomp_fd, 0, os.SEEK_SET)
            argv, env, fds = C.launch_command(conf, command, tmp, seccomp_fd)
        else:
            config.update(ppid=os.getpid(), install_sandbox_filter=True)
            argv = [C.interpreter(), "-s", "-B", "-m", WORKER_MODULE, json.dumps(config)]
            env, fds = C.child_environment(False), ()
        raw_payload = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, cwd=tmp,
                                    start_new_session=True, close_fds=True, pass_fds=fds)
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        out, err, out_over, err_over = [], [], [], []
        t_out = threading.Thread(target=_reader, args=(proc.stdout, limits.output_cap, out,
                                                       out_over, lambda: _kill(proc)), daemon=True)
        t_err = threading.Thread(target=_reader, args=(proc.stderr, limits.stderr_cap, err,
                                                       err_over), daemon=True)
        t_out.start()
        t_err.start()

        def feed():
            try:
                proc.stdin.write(raw_payload)
                proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
        t_in = threading.Thread(target=feed, daemon=True)
        t_in.start()
        timed_out = cancelled = False
        deadline = t0 + float(limits.timeout_s)
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline or (cancel is not None and cancel.is_set()):
                    timed_out = time.monotonic() > deadline
                    cancelled = not timed_out
                    _kill(proc)
                    proc.wait()
                    break
        _kill(proc)                    # nothing of the sandbox outlives the job
        for t in (t_out, t_err):
            t.join(5)
        for s in (proc.stdout, proc.stderr, proc.stdin):
            try:
                s.close()
            except (OSError, ValueError):
                pass
        t_in.join(1)
    wall = time.monotonic() - t0
    stderr = F.clean_text(b"".join(err), limits.stderr_cap)
    rc = proc.returncode
    base = {"returncode": rc, "stderr": stderr, "wall_s": wall}
    if timed_out:
        return JobResult(False, "timeout", f"wall-clock limit of {limits.timeout_s:g} s exceeded "
                         f"(the controller is too slow or never returns)", **base)
    if cancelled:
        return JobResult(False, "cancelled", "cancelled", **base)
    if out_over:
        return JobResult(False, "output", f"the sandbox wrote more than {limits.output_cap} bytes",
                         **base)
    res = interpret(b"".join(out), rc, stderr, limits, expected, wall)
    res.layers = {"confinement": conf.description, **res.layers}
    if not sandboxed:
        res.layers["unsandboxed"] = "yes"
    return res
