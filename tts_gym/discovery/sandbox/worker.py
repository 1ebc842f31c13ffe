"""The sandbox's worker: ``python -m tts_gym.discovery.sandbox.worker '<json config>'``.

Started by :mod:`tts_gym.discovery.sandbox.runner` inside bubblewrap (never by hand). It reads a
pickled payload from stdin (the candidate's source and the *redacted* search stores: replay
tensors and answer strings, no gold answers, no question text; written by the trusted parent),
and writes binary records to its stdout (:mod:`~tts_gym.discovery.sandbox.frames`).

The worker itself never runs controller code. It

1. builds the question rows of the redacted stores (plain Python values: no compiled code is
   loaded, so the worker stays small and forks fast), builds the read-only module copies, checks
   and compiles the controller source (a rule violation ends the job here);
2. locks itself down: non-dumpable (the episode processes, same uid, cannot read or trace it),
   Landlock when available and enabled (read-only access to the runtime, nothing else),
   resource limits; without bubblewrap it also installs the whole-sandbox seccomp filter;
3. for every batch of ``episodes_per_process`` episodes (1: every episode), forks a fresh process
   from this warm, clean state. That process closes every descriptor but its result pipe, its
   heartbeat pipe and stderr, sets its limits (address space, CPU), adds the per-episode seccomp
   filter (no processes, threads, exec, file-system changes, signals to others...) and arms the
   audit hook; then, per episode, seeds ``random`` / ``numpy.random``, executes the controller
   module in fresh globals and plays the episode: ``Controller(beta).solve(question)``, commits the
   answer, writes its result record and a heartbeat byte. The worker's memory never holds an
   episode's result (it forwards the bytes through a fixed buffer, zeroed after each process), and
   every process is forked from the same state. The worker kills a process at an episode's time
   limit (restarted by each heartbeat) or its output limit;
4. after a batched job, re-runs a random sample of the episodes that did not open their process,
   each alone in a fresh process (drawn from the OS only now, so no batch could know it): the
   parent compares them with the batched runs, and a difference fails the job (state carried
   across episodes).

The first failed episode ends the job. Everything here is written to be safe against what the
episode processes do; the parent still treats every byte as untrusted and re-plays every action
log with the compiled kernels (:func:`tts_gym.discovery.sandbox.evaluation.replay_logs`).
"""
from __future__ import annotations

import json
import os
import signal
import sys

from tts_gym.discovery.sandbox import frames as F

_BUF_BYTES = 1 << 16


class SandboxViolation(PermissionError):
    """Raised by the audit hook for an operation outside the allow-list."""


class CountedWriter:
    """Writes records to the result pipe and counts the bytes (the episode boundaries reported on
    the heartbeat pipe)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.written = 0

    def __call__(self, data: bytes) -> None:
        F.write_all(self.fd, data)
        self.written += len(data)


class EpisodeContext:
    """Everything an episode process needs, prepared (and warmed) by the worker.

    The question object is :class:`~tts_gym.core.reference_question.ReferenceQuestion` over the
    redacted stores' branches as Python values: the worker loads no compiled code (a small process
    forks fast, once per episode), and the parent re-plays every action log with the kernels."""

    def __init__(self, payload: dict, config: dict) -> None:
        import numpy as np

        from tts_gym.core.reference_question import BranchTable
        self.np = np
        self.config = config
        self.stores = payload["stores"]
        self.table = BranchTable.from_stores(self.stores)
        self.M = max(int(s.probe_ids.shape[1]) for s in self.stores)
        self.qoff = [0]
        for s in self.stores:
            self.qoff.append(self.qoff[-1] + int(s.num_questions))
        self.betas = [float(b) for b in payload["betas"]]
        self.orders = payload["orders"]          # per store: int32 [R, Q, N]
        self.questions = payload["questions"]    # per store: int32 [R, Q]
        self.reference_format = False            # OptimalController: the reference's exceptions

    def question(self, si: int, r: int, j: int, q: int, **kw):
        """A fresh question object for local question ``q`` of store ``si`` in column ``j`` of
        replicate ``r``."""
        return self.table.question(self.qoff[si] + q, self.orders[si][r, j], self.M, **kw)

    def episodes(self):
        """``(beta index, beta, store index, replicate, column, local question)`` in the parent's
        order: beta, then store, then replicate (seed), then question."""
        for bi, beta in enumerate(self.betas):
            for si in range(len(self.stores)):
                R, J = self.questions[si].shape
                for r in range(R):
                    for j in range(J):
                        yield bi, beta, si, r, j, int(self.questions[si][r, j])


def warm_rows(ctx: EpisodeContext) -> None:
    """Build every question's branch rows before the fork (each episode process would otherwise
    rebuild its question's rows: the forks share what the worker holds)."""
    for q in range(ctx.qoff[-1]):
        ctx.table.rows(q)


# ------------------------------------------------------------------------------------------------
# the audit hook (episode processes)
# ------------------------------------------------------------------------------------------------

_ALLOWED_EVENTS = frozenset({
    "import", "exec", "compile", "builtins.id", "object.__setattr__", "object.__delattr__",
    "array.__new__", "time.sleep",
})
_PATH_EVENTS = frozenset({"open", "os.listdir", "os.scandir"})
_ALLOWED_GETATTR = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
"""Audited attribute reads that library code needs (``inspect.signature``, used by ``dataclasses``);
frame access (``tb_frame``, ``gi_frame``, ...) stays refused."""


def _short_repr(x, n: int = 60) -> str:
    if type(x) in (str, bytes, int, float, bool, type(None)):
        r = repr(x)
    else:
        r = f"<{type(x).__name__}>"
    return r if len(r) <= n else r[:n] + "..."


def hook_paths(read_roots) -> tuple:
    """``(read roots, files of the modules allowed to ask for frames)`` as the hook compares them
    (computed once in the worker)."""
    import collections
    import typing
    return (tuple(os.path.join(os.path.realpath(r), "") for r in read_roots),
            frozenset(os.path.realpath(m.__file__) for m in (collections, typing)))


def install_audit_hook(paths: tuple, report, controller_filename: str) -> None:
    """Deny-by-default audit hook for the rest of this process's life.

    It judges an event only while controller code is on the call stack (the worker's own code
    before and after the controller is exempt, so the hook needs no switch, and keeps no state any
    frame could reach). Allowed then: reading files beneath ``read_roots``, imports, class
    creation and a few harmless events, and ``sys._getframe`` only when ``collections`` or
    ``typing`` ask for a frame of the controller's own code (``namedtuple`` & co. do). Every
    refusal is sent at once through ``report(message)`` (it cannot be taken back) and raises
    :class:`SandboxViolation`.

    Refused, among others: ``open`` for writing or outside the roots, ``socket.*``,
    ``subprocess.Popen``, ``os.system``, ``os.exec*``, ``os.posix_spawn``, ``os.fork``,
    ``os.kill``, ``ctypes.*``, ``gc.get_objects``/``gc.get_referrers``, any other frame access
    (``sys._getframe``, ``tb_frame``, ``gi_frame``...), code objects, ``sys.settrace``,
    ``sys.addaudithook``, ``resource.setrlimit``, ``urllib.Request``.
    """
    roots, frame_askers = paths
    realpath, fspath, getframe = os.path.realpath, os.fspath, sys._getframe
    busy = [False]                       # the hook's own frame inspection raises events too

    def allowed_path(path) -> bool:
        try:
            if isinstance(path, int):
                return False
            p = fspath(path)
            if isinstance(p, bytes):
                p = p.decode("utf-8", "surrogateescape")
            p = realpath(p)
        except Exception:  # noqa: BLE001
            return False
        return any((p + os.sep).startswith(r) for r in roots)

    def controller_running(f) -> bool:
        while f is not None:
            if f.f_code.co_filename == controller_filename:
                return True
            f = f.f_back
        return False

    def judge(event, args):
        caller = getframe(2)             # judge <- hook <- the code that raised the event
        if not controller_running(caller):
            return None
        if event == "sys._getframe":
            try:
                if (realpath(caller.f_code.co_filename) in frame_askers
                        and args[0].f_code.co_filename == controller_filename):
                    return None
            except Exception:  # noqa: BLE001
                pass
            return "sandbox: frame access (sys._getframe) refused"
        if event == "open":
            path, mode = args[0], args[1]
            flags = args[2] if len(args) > 2 else 0
            write = isinstance(mode, str) and any(c in mode for c in "wax+")
            if isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT
                                                     | os.O_TRUNC | os.O_APPEND):
                write = True
            if not write and allowed_path(path):
                return None
            return f"sandbox: open({_short_repr(path)}, {_short_repr(mode)}) refused"
        if event in _PATH_EVENTS:
            if allowed_path(args[0] if args and args[0] is not None else "."):
                return None
            return f"sandbox: {event}({_short_repr(args[0] if args else None)}) refused"
        if event == "object.__getattr__" and len(args) > 1:
            return f"sandbox: reading attribute {_short_repr(args[1])} refused"
        return f"sandbox: operation {event!r} refused"

    def hook(event, args):
        if busy[0] or event in _ALLOWED_EVENTS:
            return
        if event == "object.__getattr__" and len(args) > 1 and args[1] in _ALLOWED_GETATTR:
            return
        busy[0] = True
        try:
            msg = judge(event, args)
            if msg is not None:
                report(msg)
        finally:
            busy[0] = False
        if msg is not None:
            raise SandboxViolation(msg)

    sys.addaudithook(hook)


# ------------------------------------------------------------------------------------------------
# messages written without running controller code
# ------------------------------------------------------------------------------------------------

_PLAIN = (str, int, float, bool, type(None))


def exception_text(exc: BaseException) -> str:
    """``Type: message`` of an exception raised by controller code, without calling any of its
    methods (an exception class of the controller could define ``__str__``)."""
    t = type(exc)
    name = type.__getattribute__(t, "__name__")
    args = BaseException.args.__get__(exc)
    if (t.__module__ == "builtins" and all(type(a) in _PLAIN for a in args)
            and not (isinstance(exc, OSError) and not all(
                type(x) in _PLAIN for x in (exc.filename, exc.filename2)))):
        msg = str(exc)
    elif len(args) == 1 and type(args[0]) is str:
        msg = args[0]
    else:
        msg = ", ".join(repr(a) if type(a) in _PLAIN else f"<{type(a).__name__}>" for a in args)
    return f"{name}: {msg}" if msg else name


def controller_traceback(exc: BaseException, filename: str, limit_chars: int = 4000) -> str:
    import linecache
    import traceback
    frames = [f for f in traceback.StackSummary.extract(traceback.walk_tb(exc.__traceback__),
                                                        lookup_lines=False)
              if f.filename == filename]
    lines = []
    if frames:
        lines.append("Traceback (controller frames only):\n")
        for f in frames[-12:]:
            lines.append(f'  File "{f.filename}", line {f.lineno}, in {f.name}\n')
            src = linecache.getline(filename, f.lineno).strip()
            if src:
                lines.append(f"    {src}\n")
    lines.append(exception_text(exc))
    text = "".join(lines).rstrip()
    return text if len(text) <= limit_chars else "..." + text[-limit_chars:]


def describe_answer_problem(answer) -> str:
    """Why ``solve``'s return value cannot be committed (for the failure message)."""
    if type(answer) is not str:
        return f"solve() must return an answer string or None, got {type(answer).__name__}"
    return (f"solve() returned {_short_repr(answer)}, which is not the latest revealed answer of "
            f"any opened branch (return one of the branches' latest answers, or None)")


# ------------------------------------------------------------------------------------------------
# one episode (in its own process)
# ------------------------------------------------------------------------------------------------

def _args0(exc) -> str:
    args = BaseException.args.__get__(exc)
    return str.__str__(args[0]) if args and isinstance(args[0], str) else ""


def run_episodes(ctx: EpisodeContext, code, episodes, fd: int, beat: int) -> int:
    """Play ``episodes`` one after the other in this (freshly forked) process, writing each one's
    records to ``fd`` and, as each ends, the bytes written so far (u64) to ``beat``; stops at the
    first failed episode.
    Returns the exit status (0: every episode wrote a result).

    The limits, the seccomp filter and the audit hook are set once for the process; every episode
    gets fresh controller globals, its own seed and its own question object."""
    from tts_gym.discovery.sandbox import confinement as C
    from tts_gym.discovery.sandbox import seccomp
    from tts_gym.discovery.sandbox.namespace import CONTROLLER_FILENAME
    import struct
    cfg, limits = ctx.config, ctx.config["limits"]
    write = CountedWriter(fd)
    C.set_limits(as_bytes=ctx.vm_at_fork + int(limits["memory_mb"]) * 2**20,
                 cpu_s=int(limits["episode_cpu_s"]) * len(episodes), nofile=32, fsize=0, core=0,
                 nproc=limits.get("nproc"))
    if cfg.get("seccomp", True):
        try:
            seccomp.install(ctx.episode_program)
        except (OSError, seccomp.SeccompUnsupported) as exc:
            write(F.error_record("sandbox", f"the per-episode seccomp filter could not be "
                                            f"installed: {exc}"))
            return 1
    violations: list = []                     # the running episode's refusals

    def report(msg: str) -> None:
        if len(violations) < 20:
            violations.append(msg)
            write(F.record(b"V", msg.encode("utf-8", "replace")))

    if cfg.get("python_layer", "full") in ("full", "hook"):
        install_audit_hook(ctx.hook_paths, report, CONTROLLER_FILENAME)
    for episode in episodes:
        violations.clear()
        status = run_episode(ctx, code, episode, write, violations)
        os.write(beat, struct.pack("<Q", write.written))
        if status != 0:
            return status
    return 0


def run_episode(ctx: EpisodeContext, code, episode, write, violations: list) -> int:  # noqa: C901
    """Play one episode and write its result or error record through ``write``; returns 0 when a
    result was written. ``violations``: the refusals the audit hook has reported during it."""
    import array
    import builtins
    import gc
    import random

    from tts_gym.discovery.sandbox.interface import (
        ControllerRejected, InadmissibleAction, construct, inadmissible_handler, make_question,
    )
    from tts_gym.discovery.sandbox.namespace import CONTROLLER_FILENAME, PrintBuffer, instantiate
    cfg, limits = ctx.config, ctx.config["limits"]
    bi, beta, si, r, j, q = episode
    np = ctx.np
    gc.enable()                               # the worker runs without; controller code with
    seed = (bi * 7919 + si) * 1_000_003 + r * 1009 + q
    random.seed(seed)
    np.random.seed(seed % 2**32)
    printed = PrintBuffer(int(cfg.get("print_cap", 8192)))
    sticky: list = []

    def note(msg: str) -> None:
        if len(sticky) < 5:
            sticky.append(msg)

    rq = ctx.question(si, r, j, q, strict=True, raise_on_exhaustion=ctx.reference_format,
                      inadmissible=inadmissible_handler(note))
    question = make_question(rq, note)
    python_layer = cfg.get("python_layer", "full")
    kind = msg = answer = None
    try:
        if python_layer == "full":
            ctrl = instantiate(code, beta, printed.print)
        else:                                 # tests of the lower layers alone: raw Python
            g = {"__name__": "controller", "__builtins__": dict(vars(builtins),
                                                                print=printed.print)}
            exec(code, g)  # noqa: S102
            ctrl = construct(g, beta)
        answer = ctrl.solve(question)
    except InadmissibleAction as exc:
        kind, msg = "inadmissible", _args0(exc)
    except MemoryError:
        kind, msg = "memory", (f"memory limit exceeded (MemoryError): the controller may use "
                               f"about {limits['memory_mb']} MB")
    except SandboxViolation:
        kind = "violation"
    except ControllerRejected as exc:
        kind, msg = "rejected", _args0(exc)
    except BaseException as exc:  # noqa: BLE001 - reported to the proposer
        gc.disable()
        kind, msg = "exception", controller_traceback(exc, CONTROLLER_FILENAME)
    gc.disable()                              # no finalizer of controller objects runs from now on
    if violations:
        kind, msg = "violation", violations[0] + ("" if not msg else f"\n({msg})")
    elif kind is None and sticky:
        kind, msg = "inadmissible", (str.__str__(sticky[0])
                                     + " (the controller caught the error and went on)")
    if kind is None:
        if isinstance(answer, str) and type(answer) is not str:
            answer = str.__str__(answer)      # no str-subclass code after solve()
        _, answer_id, unmapped = rq.commit(answer)
        if unmapped:
            kind, msg = "inadmissible", describe_answer_problem(answer)
    text = printed.text()
    if kind is not None:
        write(F.error_record(kind, msg or kind, text))
        return 1
    actions = array.array("h", rq.actions)
    if sys.byteorder != "little":
        actions.byteswap()
    write(F.result_record(int(answer_id), int(rq.cost), actions.tobytes(), text))
    return 0


# ------------------------------------------------------------------------------------------------
# the worker
# ------------------------------------------------------------------------------------------------

class _Out:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __call__(self, tag: bytes, payload: bytes = b"") -> None:
        F.write_all(self.fd, F.record(tag, payload))


def _fatal(out: _Out, kind: str, message: str) -> int:
    out(b"F", f"{kind}\n{message}".encode("utf-8", "replace"))
    out(b"D", bytes(4))
    return 0


def _compile(source: str, python_layer: str):
    """``(code, tree, None)`` or ``(None, None, (kind, message))``."""
    import ast

    from tts_gym.discovery.sandbox.namespace import (
        CONTROLLER_FILENAME, ControllerRejected, check_source, compile_tree,
    )
    try:
        if python_layer == "full":
            tree = check_source(source)
            return compile_tree(tree, CONTROLLER_FILENAME), tree, None
        tree = ast.parse(source, CONTROLLER_FILENAME)
        return compile(tree, CONTROLLER_FILENAME, "exec"), tree, None
    except SyntaxError as exc:
        return None, None, ("syntax", f"SyntaxError: {exc.msg} (line {exc.lineno}"
                                f"{', column ' + str(exc.offset) if exc.offset else ''})"
                      + (f"\n    {exc.text.rstrip()}" if exc.text else ""))
    except ControllerRejected as exc:
        return None, None, ("rejected", str(exc))
    except (RecursionError, MemoryError, ValueError) as exc:
        return None, None, ("rejected", f"the source cannot be parsed: {type(exc).__name__}: {exc}")


def _run_child(ctx, code, episodes, w: int, beat: int) -> None:
    status = 1
    try:
        os.dup2(2, 1)                         # stray writes to stdout go to stderr
        keep = sorted((w, beat))
        os.closerange(3, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, 1 << 16)
        status = run_episodes(ctx, code, episodes, w, beat)
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child
        status = 1
    finally:
        os._exit(status)


def _play(ctx, code, out: _Out, k: int, episodes, buf: bytearray, audit: bool = False):
    """Episodes ``k, k + 1, ...`` (``episodes``) in one fresh process: forward its output, enforce
    its limits; ``(exited cleanly, episodes it ended)`` (the parent decides whether they
    succeeded). Each
    episode has its own time limit: as each episode ends, the process writes to a second pipe how
    many bytes it has written (where the output is split between episodes), which restarts the
    clock. The process ends when it exits (not when its pipes close: a
    descendant could hold them open). ``audit``: the re-run of episode ``k`` alone."""
    import select
    import struct
    import time
    limits = ctx.config["limits"]
    n = len(episodes)
    timeout = float(limits["episode_timeout_s"])
    cap = int(limits["episode_output_bytes"]) * n
    if audit:
        out(b"A", struct.pack("<I", k))
    elif n == 1:
        out(b"S", struct.pack("<I", k))
    else:
        out(b"B", struct.pack("<II", k, n))
    r, w = os.pipe()
    beat_r, beat_w = os.pipe()
    ctx.vm_at_fork = ctx.vm_now()             # the episode's memory budget is on top of this
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.close(beat_r)
        _run_child(ctx, code, episodes, w, beat_w)
    os.close(w)
    os.close(beat_w)
    os.set_blocking(r, False)
    os.set_blocking(beat_r, False)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    last = t0 + timeout * n                   # no heartbeat extends the process beyond this
    deadline = t0 + timeout
    flags, forwarded, status, eof = 0, 0, None, False
    ends: list = []                           # byte offsets where episodes ended (claimed)
    partial, beat_eof = b"", False
    view = memoryview(buf)
    head = struct.Struct("<cII")

    def heartbeats() -> None:
        """Episode ends reported so far: increasing offsets, at most ``n``."""
        nonlocal deadline, partial, beat_eof
        while not beat_eof:
            try:
                got = os.read(beat_r, 4096)
            except BlockingIOError:
                return
            if not got:
                beat_eof = True
                return
            partial += got
            while len(partial) >= 8 and len(ends) < n:
                (at,) = struct.unpack_from("<Q", partial, 0)
                partial = partial[8:]
                ends.append(max(at, ends[-1] if ends else 0, forwarded))
                deadline = min(time.monotonic() + timeout, last)
            if len(ends) >= n:
                partial = b""

    def forward() -> bool:
        """Forward what the pipe holds now, each byte tagged with the episode it belongs to;
        ``False`` at the output limit. The heartbeats are read after the bytes: an episode's end
        is reported before anything of the next one is written."""
        nonlocal forwarded, eof
        while not eof:
            try:
                got = os.readv(r, [view])
            except BlockingIOError:
                return True
            if got == 0:
                eof = True
                return True
            heartbeats()
            pos = 0
            while pos < got:
                i = sum(1 for e in ends if e <= forwarded)
                stop = got if i >= len(ends) else min(got, pos + ends[i] - forwarded)
                if i >= n:
                    i = n - 1
                F.write_all(out.fd, head.pack(b"C", stop - pos + 4, k + i))
                F.write_all(out.fd, view[pos:stop])   # straight from the buffer: no copy stays
                forwarded += stop - pos
                pos = stop
            if forwarded > cap:
                return False
        return True

    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            flags |= 1
            break
        waits = (([] if eof else [r]) + ([] if beat_eof else [beat_r])
                 + ([] if pidfd is None else [pidfd]))
        select.select(waits, [], [], min(left, 1.0 if pidfd is not None else 0.01))
        heartbeats()
        if not forward():
            flags |= 2
            break
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            if not forward():
                flags |= 2
            break
    if status is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _, status = os.waitpid(pid, 0)
    heartbeats()
    os.close(r)
    os.close(beat_r)
    if pidfd is not None:
        os.close(pidfd)
    view[:] = bytes(len(buf))                 # nothing of this episode stays in the worker
    wall = int((time.monotonic() - t0) * 1000)
    out(b"X", struct.pack("<IiBII", k, status, flags, min(wall, 2**32 - 1), len(ends)))
    return status == 0 and flags == 0, len(ends)


def audit_sample(count: int, starts, fraction: float, minimum: int) -> list[int]:
    """Episodes to re-run alone after a batched job: a random sample (drawn from the OS, after
    every batch has ended, so no batch could know it) of the episodes that did not open their
    process (``starts``: those already ran fresh)."""
    import math
    import random
    starts = set(starts)
    later = [i for i in range(count) if i not in starts]
    want = min(len(later), max(int(minimum), math.ceil(float(fraction) * count)))
    return sorted(random.SystemRandom().sample(later, want)) if want > 0 else []


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config = json.loads(argv[0]) if argv else {}
    from tts_gym.discovery.sandbox import confinement as C
    layers = {}
    if config.get("ppid") is not None:
        layers["pdeathsig"] = str(C.set_parent_death_signal(config["ppid"]))
    # the result channel is a private copy of fd 1; fd 1 itself then points at stderr so that
    # stray writes cannot corrupt the records
    out = _Out(os.dup(1))
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import pickle
    raw = sys.stdin.buffer.read()
    payload = pickle.loads(raw)  # noqa: S301 - written by the trusted parent
    del raw
    limits = config["limits"]
    C.set_limits(core=0, cpu_s=limits.get("cpu_s"))
    from tts_gym.discovery.sandbox import seccomp
    from tts_gym.discovery.sandbox.interface import controller_format
    from tts_gym.discovery.sandbox.namespace import (
        CONTROLLER_FILENAME, imported_modules, prepare_modules,
    )
    import gc, linecache, select, struct, time, traceback  # noqa: E401,F401 - before lock-down
    ctx = EpisodeContext(payload, config)
    warm_rows(ctx)
    ctx.hook_paths = hook_paths(config["read_roots"])
    try:
        ctx.episode_program = seccomp.episode_program()
    except seccomp.SeccompUnsupported as exc:
        if config.get("seccomp", True):
            return _fatal(out, "sandbox", str(exc))
    python_layer = payload.get("python_layer", "full")
    if python_layer not in ("full", "hook", "none"):
        return _fatal(out, "sandbox", f"unknown python_layer {python_layer!r}")
    config["python_layer"] = python_layer
    code, tree, err = _compile(payload["code"], python_layer)
    if err is not None:
        return _fatal(out, *err)
    # the module copies the controller can import are built now, before the lock-down
    prepare_modules(imported_modules(tree))
    ctx.reference_format = controller_format(tree) == "reference"
    source = payload["code"]
    linecache.cache[CONTROLLER_FILENAME] = (len(source), None, source.splitlines(True),
                                            CONTROLLER_FILENAME)
    # ---- lock-down of the worker itself ---------------------------------------------------------
    layers["dumpable"] = "no" if C.set_dumpable(False) else "yes"
    if config.get("install_sandbox_filter") and config.get("seccomp", True):
        try:
            seccomp.install(seccomp.sandbox_program())
            layers["seccomp"] = "sandbox filter (installed by the worker)"
        except (OSError, seccomp.SeccompUnsupported) as exc:
            return _fatal(out, "sandbox", f"the seccomp filter could not be installed: {exc}")
    statm = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)   # before Landlock hides it
    page = os.sysconf("SC_PAGE_SIZE")
    ctx.vm_now = lambda: int(os.pread(statm, 64, 0).split()[0]) * page
    layers["landlock"] = (C.apply_landlock(config["read_roots"]) if config.get("landlock", True)
                          else "off")
    C.set_limits(fsize=0, nofile=64, nproc=limits.get("nproc"),
                 as_bytes=ctx.vm_now() + (int(limits["memory_mb"]) + 512) * 2**20)
    layers["uid"] = str(os.getuid())
    layers["episode_filter"] = "on" if config.get("seccomp", True) else "off"
    layers["python_layer"] = {"full": "restricted namespace + audit hook",
                              "hook": "audit hook only", "none": "off (raw Python)"}[python_layer]
    per = max(1, int(config.get("episodes_per_process", 1)))
    layers["episodes"] = ("one process per episode" if per == 1 else
                          f"{per} episodes per process, fresh globals and seed per episode; a "
                          f"random sample re-run alone and compared")
    out(b"H", "\n".join(f"{k}={v}" for k, v in layers.items()).encode())
    buf = bytearray(_BUF_BYTES)
    gc.collect()
    gc.freeze()      # the episode processes' collections then leave the shared pages alone
    gc.disable()
    episodes = list(ctx.episodes())
    count, clean, starts = 0, True, []
    while count < len(episodes):
        batch = episodes[count:count + per]
        starts.append(count)
        clean, ended = _play(ctx, code, out, count, batch, buf)
        # a process that exited cleanly before ending its batch: the episode it was playing is
        # its last (the parent counts it so), the next process goes on after it
        count += min(len(batch), ended + 1)
        if not clean:
            break
    if clean and per > 1:
        for k in audit_sample(count, starts, config.get("audit_fraction", 0.02),
                              config.get("audit_min", 4)):
            _play(ctx, code, out, k, [episodes[k]], buf, audit=True)
    out(b"D", struct.pack("<I", count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
