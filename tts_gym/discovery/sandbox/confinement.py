"""Operating-system confinement of the sandbox: the bubblewrap command, its availability, limits.

Parent side (:func:`confinement`, :func:`launch_command`): every evaluation job runs
``python -m tts_gym.discovery.sandbox.worker`` under bubblewrap (``bwrap``) with

* new user, pid, network, mount, ipc, uts and cgroup namespaces (``--unshare-all``), no further
  user namespaces inside (``--disable-userns``), uid/gid 65534 and no capabilities, a new session
  (no controlling terminal), killed with its parent (``--die-with-parent``);
* a file system of its own: ``/usr``, the Python installation, the installed packages and the
  ``tts_gym`` package read-only, a fresh ``/proc`` of its pid namespace, a minimal ``/dev``, an
  empty size-limited ``/tmp``; nothing else of the host (no home, no data, no sockets, no
  ``/etc``);
* the environment of :func:`child_environment` only;
* the whole-sandbox seccomp filter of :mod:`~tts_gym.discovery.sandbox.seccomp`.

When the parent runs as root, bubblewrap is not run as root: a short launcher (:data:`LAUNCHER`)
bind-mounts the read-only sources into a private mount namespace of its own (so that uid 65534
can reach a Python installed under ``/root``), drops to uid/gid 65534 and executes ``bwrap``, which
then creates its namespaces as an unprivileged user. The sandbox's processes are then uid 65534
on the host too, and ``RLIMIT_NPROC`` binds (it never binds for uid 0). Where unprivileged user
namespaces are disabled, root runs ``bwrap`` itself (host uid 0, still uid 65534 without
capabilities inside); :class:`Confinement` records which.

Whole-sandbox limits, without cgroups (often not writable): one per-episode process at a time
(the seccomp filter refuses new processes and threads to controller code), ``RLIMIT_AS`` on it,
``RLIMIT_NPROC`` for the sandbox user, ``RLIMIT_CPU``, the tmpfs size, the parent's wall-clock
limit (killing ``bwrap`` takes the pid namespace, and every process in it, down) and the parent's
output caps.

Without bubblewrap (or where it cannot create its namespaces) :func:`require` refuses with
:class:`SandboxUnavailable`, naming what is missing and how to install it; only an explicit
``allow_unsandboxed`` runs the worker directly (seccomp, Landlock and limits still applied by the
worker, but no namespaces and the host file system visible).

Child side (used by the worker): :func:`apply_landlock`, :func:`set_limits`,
:func:`set_parent_death_signal`, :func:`set_dumpable`.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SandboxUnavailable", "Confinement", "confinement", "require", "unconfined",
           "INSTALL_HINT", "SANDBOX_UID", "UNSANDBOXED_NOTE", "child_environment", "read_roots",
           "interpreter", "package_dir", "python_dirs", "site_dirs", "job_parent_dir",
           "launch_command", "apply_landlock", "set_limits", "set_parent_death_signal",
           "set_dumpable"]

SANDBOX_UID = SANDBOX_GID = 65534
TMPFS_BYTES = 64 * 2**20

INSTALL_HINT = ("install bubblewrap: Debian/Ubuntu `apt-get install bubblewrap`, Fedora "
                "`dnf install bubblewrap`, Arch `pacman -S bubblewrap`")


class SandboxUnavailable(RuntimeError):
    """No operating-system sandbox can be set up here (the message says what is missing)."""


@dataclass(frozen=True)
class Confinement:
    """How jobs are confined on this machine (see the module docstring).

    ``kind``: ``"bwrap"`` or ``"none"``; ``mode`` (bwrap): ``"unprivileged"`` (the parent is not
    root), ``"root-launcher"`` (root drops to uid 65534 before ``bwrap``) or ``"root"`` (root runs
    ``bwrap``: unprivileged user namespaces are disabled); ``bwrap``: its path;
    ``description``: one line for records and summaries.
    """
    kind: str
    mode: str | None
    bwrap: str | None
    description: str
    tmpfs_size: bool = True

    @property
    def sandboxed(self) -> bool:
        return self.kind == "bwrap"


UNSANDBOXED_NOTE = ("NOT sandboxed (--allow-unsandboxed): controller code ran without namespaces, "
                    "with the host file system visible")


_lock = threading.Lock()
_cached: dict = {}


def confinement(refresh: bool = False) -> Confinement | str:
    """The best confinement available (probed once per process), or the reason there is none."""
    with _lock:
        if refresh or "value" not in _cached:
            _cached["value"] = _probe()
        return _cached["value"]


def require(allow_unsandboxed: bool = False) -> Confinement:
    """The confinement to use: bubblewrap, else -- only with ``allow_unsandboxed`` -- none;
    otherwise :class:`SandboxUnavailable` naming what is missing and how to install it."""
    conf = confinement()
    if isinstance(conf, Confinement):
        return conf
    if allow_unsandboxed:
        return unconfined(f"the OS sandbox is unavailable: {conf}")
    raise SandboxUnavailable(f"refusing to run untrusted controller code without an operating-"
                             f"system sandbox: {conf}")


def unconfined(reason: str) -> Confinement:
    """No operating-system sandbox (only with an explicit flag; ``reason`` is recorded)."""
    return Confinement("none", None, None, f"{UNSANDBOXED_NOTE}; {reason}")


def _bwrap_version(path: str) -> tuple:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
        return tuple(int(x) for x in out.split()[-1].split("."))
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return ()


def _probe() -> Confinement | str:
    if not sys.platform.startswith("linux"):
        return f"bubblewrap sandboxing needs Linux (this is {sys.platform})"
    path = shutil.which("bwrap")
    if path is None:
        return f"bubblewrap (`bwrap`) is not installed; {INSTALL_HINT}"
    version = _bwrap_version(path)
    if version and version < (0, 4, 0):
        return (f"bubblewrap {'.'.join(map(str, version))} is too old (0.4 or newer is needed); "
                f"{INSTALL_HINT}")
    tmpfs_size = not version or version >= (0, 8, 0)
    if os.geteuid() == 0:
        candidates = [("root-launcher", "uid 65534 on the host, launched by root through a "
                                        "private mount namespace"),
                      ("root", "uid 65534 in the sandbox, host uid 0 (unprivileged user "
                               "namespaces are disabled)")]
    else:
        candidates = [("unprivileged", f"host uid {os.geteuid()}")]
    errors = []
    for mode, who in candidates:
        conf = Confinement("bwrap", mode, path, f"bubblewrap {'.'.join(map(str, version))} "
                           f"({who}): user/pid/net/mount/ipc/uts namespaces, uid {SANDBOX_UID} "
                           f"without capabilities, seccomp, read-only runtime, private /tmp",
                           tmpfs_size)
        err = _try(conf)
        if err is None:
            return conf
        errors.append(f"{mode}: {err}")
    return ("bubblewrap is installed but cannot create its namespaces here (" + "; ".join(errors)
            + "); user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone or "
              "user.max_user_namespaces) or blocked by a container's seccomp/AppArmor profile")


def job_parent_dir() -> str:
    """Where jobs' private folders go: the temporary folder, when uid 65534 can traverse it (the
    launcher's staging mount points live there), else ``/tmp``."""
    import stat
    import tempfile
    d = os.path.realpath(tempfile.gettempdir())
    p = d
    while True:
        try:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                return "/tmp"
        except OSError:
            return "/tmp"
        parent = os.path.dirname(p)
        if parent == p:
            return d
        p = parent


def _try(conf: Confinement) -> str | None:
    import tempfile
    with tempfile.TemporaryDirectory(prefix="tts-gym-sandbox-probe-", dir=job_parent_dir()) as tmp:
        os.chmod(tmp, 0o755)
        argv, env, fds = launch_command(conf, [interpreter(), "-S", "-c", "pass"], tmp,
                                        seccomp_fd=None)
        try:
            p = subprocess.run(argv, env=env, pass_fds=fds, capture_output=True, timeout=60,
                               stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            return str(exc)
        if p.returncode != 0:
            tail = p.stderr.decode("utf-8", "replace").strip().splitlines()
            return tail[-1] if tail else f"exit status {p.returncode}"
    return None


# ------------------------------------------------------------------------------------------------
# what the sandbox sees
# ------------------------------------------------------------------------------------------------

def package_dir() -> str:
    import tts_gym
    return str(Path(tts_gym.__file__).resolve().parent)


def site_dirs() -> list[str]:
    """Directories of installed packages the worker imports from (numpy, the controller's allowed
    modules...)."""
    import sysconfig
    out = []
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p and os.path.isdir(p):
            out.append(os.path.realpath(p))
    for p in sys.path:
        if p and os.path.isdir(p) and os.path.basename(p) in ("site-packages", "dist-packages"):
            out.append(os.path.realpath(p))
    return list(dict.fromkeys(out))


def python_dirs() -> list[str]:
    """The Python installation: stdlib, extension modules, the interpreter and its library."""
    out = [os.path.realpath(sys.base_prefix)]
    exe = interpreter()
    if not any(exe.startswith(os.path.join(d, "")) for d in out):
        out.append(os.path.dirname(exe))
    return out


def interpreter() -> str:
    """The real interpreter binary (a virtual environment's ``bin/python`` is a link to it; the
    environment's site-packages reach the sandbox through ``PYTHONPATH``)."""
    return os.path.realpath(sys.executable)


def read_roots() -> list[str]:
    """Every directory the worker may read (also the Landlock allow-list)."""
    roots = ["/usr"] + python_dirs() + site_dirs() + [package_dir()]
    for p in ("/lib", "/lib64", "/bin"):
        if os.path.isdir(p) and not os.path.islink(p):
            roots.append(p)
    return _outermost(roots)


def _outermost(paths) -> list[str]:
    out = []
    for p in sorted({os.path.realpath(p) for p in paths}, key=len):
        if not any(p == q or p.startswith(os.path.join(q, "")) for q in out):
            out.append(p)
    return out


def child_environment(sandboxed: bool = True) -> dict:
    """The worker's whole environment: nothing inherited but a handful of non-secret variables."""
    pkg_parent = os.path.dirname(package_dir())
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin",
           "PYTHONPATH": os.pathsep.join([pkg_parent] + site_dirs()),
           "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
           "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    if sandboxed:
        env.update(HOME="/tmp", TMPDIR="/tmp")
    else:
        for k in ("NUMBA_CACHE_DIR", "LD_LIBRARY_PATH"):
            if k in os.environ:
                env[k] = os.environ[k]
    if os.environ.get("NUMBA_DISABLE_JIT"):
        env["NUMBA_DISABLE_JIT"] = os.environ["NUMBA_DISABLE_JIT"]
    return env


LAUNCHER = r"""
import ctypes, json, os, sys
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
def check(ok, what):
    if not ok:
        e = ctypes.get_errno()
        sys.stderr.write("sandbox launcher: %s failed: %s\n" % (what, os.strerror(e)))
        sys.exit(125)
check(libc.prctl(1, 9, 0, 0, 0) == 0, "prctl(PR_SET_PDEATHSIG)")
check(libc.unshare(0x00020000) == 0, "unshare(CLONE_NEWNS)")
check(libc.mount(None, b"/", None, 0x4000 | 0x40000, None) == 0, "making / private")
for src, dst in cfg["stage"]:
    s, d = src.encode(), dst.encode()
    check(libc.mount(s, d, None, 0x1000 | 0x4000, None) == 0, "bind " + src)
    check(libc.mount(None, d, None, 0x1000 | 0x20 | 0x1 | 0x4000, None) == 0, "read-only " + src)
os.setgroups([])
os.setgid(cfg["gid"])
os.setuid(cfg["uid"])
os.execv(cfg["argv"][0], cfg["argv"])
"""
"""Run by root as ``python -I -S -c LAUNCHER CONFIG``: a private mount namespace with the read-only
sources bound under a staging folder uid 65534 can traverse, then uid/gid 65534, then ``bwrap``."""


def launch_command(conf: Confinement, command: list, tmpdir: str, seccomp_fd: int | None,
                   extra_ro=()) -> tuple[list, dict, tuple]:
    """``(argv, env, pass_fds)`` running ``command`` confined as ``conf`` says. ``tmpdir`` is a
    private 0755 folder of the job (staging mount points live there); ``seccomp_fd`` an open file
    holding the whole-sandbox seccomp program (``None``: none); ``extra_ro``: more folders bound
    read-only at their own paths."""
    if not conf.sandboxed:
        raise ValueError("launch_command needs a bubblewrap confinement")
    fds = () if seccomp_fd is None else (seccomp_fd,)
    staged = conf.mode == "root-launcher"
    stage = []
    args = [conf.bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid",
            str(SANDBOX_GID), "--hostname", "sandbox"]
    for d in _outermost(["/usr"] + python_dirs() + site_dirs() + [package_dir()] + list(extra_ro)):
        src = d
        if staged and d != "/usr":
            src = os.path.join(tmpdir, f"stage{len(stage)}")
            os.mkdir(src)
            os.chmod(src, 0o755)
            stage.append((d, src))
        args += ["--ro-bind", src, d]
    for p in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    args += ["--proc", "/proc", "--dev", "/dev"]
    if conf.tmpfs_size:
        args += ["--size", str(TMPFS_BYTES)]
    args += ["--tmpfs", "/tmp", "--chdir", "/tmp", "--clearenv"]
    for k, v in child_environment(True).items():
        args += ["--setenv", k, v]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    args += ["--"] + list(command)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if staged:
        cfg = {"stage": stage, "uid": SANDBOX_UID, "gid": SANDBOX_GID, "argv": args}
        return [sys.executable, "-I", "-S", "-c", LAUNCHER, json.dumps(cfg)], env, fds
    return args, env, fds


# ------------------------------------------------------------------------------------------------
# child side
# ------------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_SYS_LANDLOCK = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}


def _libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def set_parent_death_signal(expected_ppid: int | None = None) -> bool:
    """SIGKILL this process when its parent dies; exit at once if the parent is already gone."""
    try:
        ok = _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except Exception:  # noqa: BLE001
        ok = False
    if expected_ppid is not None and os.getppid() != expected_ppid:
        os._exit(70)
    return ok


def set_dumpable(flag: bool) -> bool:
    """Non-dumpable: processes of the same uid cannot open this one's ``/proc/PID/mem``, ``fd``,
    ``environ`` nor attach to it (the per-episode processes cannot reach the worker)."""
    try:
        return _libc().prctl(_PR_SET_DUMPABLE, 1 if flag else 0, 0, 0, 0) == 0
    except Exception:  # noqa: BLE001
        return False


def apply_landlock(roots) -> str:
    """Kernel-enforced file-system and network confinement with Landlock (Linux >= 5.13), an extra
    layer: read-only access beneath ``roots``; every other file-system access (reads elsewhere,
    any write, create, delete, execute) denied, and with ABI >= 4 TCP bind/connect, with ABI >= 6
    signals and abstract unix sockets outside the sandbox. Returns ``"landlock-abi<N>"`` or
    ``"unavailable"``."""
    import ctypes
    import platform
    nums = _SYS_LANDLOCK.get(platform.machine())
    if nums is None:
        return "unavailable"
    create, add_rule, restrict = nums
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return "unavailable"
    fs_all = (1 << 13) - 1            # EXECUTE .. MAKE_SYM (ABI 1)
    if abi >= 2:
        fs_all |= 1 << 13             # REFER
    if abi >= 3:
        fs_all |= 1 << 14             # TRUNCATE
    if abi >= 5:
        fs_all |= 1 << 15             # IOCTL_DEV
    net_all = 0b11 if abi >= 4 else 0  # BIND_TCP | CONNECT_TCP
    scoped = 0b11 if abi >= 6 else 0   # ABSTRACT_UNIX_SOCKET | SIGNAL
    if abi >= 6:
        attr = struct.pack("<QQQ", fs_all, net_all, scoped)
    elif abi >= 4:
        attr = struct.pack("<QQ", fs_all, net_all)
    else:
        attr = struct.pack("<Q", fs_all)
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = libc.syscall(create, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        return "unavailable"
    read_file, read_dir = 1 << 2, 1 << 3
    try:
        for root in roots:
            try:
                pfd = os.open(root, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                access = read_file | (read_dir if os.path.isdir(root) else 0)
                rule = ctypes.create_string_buffer(struct.pack("<Qi", access, pfd), 12)
                if libc.syscall(add_rule, ctypes.c_int(fd), ctypes.c_int(1), rule,
                                ctypes.c_uint32(0)) != 0:
                    return "unavailable"
            finally:
                os.close(pfd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return "unavailable"
        if libc.syscall(restrict, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return "unavailable"
    finally:
        os.close(fd)
    return f"landlock-abi{abi}"


def set_limits(**limits) -> dict:
    """``setrlimit`` soft = hard for each given limit (``as_bytes``, ``cpu_s``, ``nproc``,
    ``nofile``, ``fsize``, ``core``); returns what was set (a limit the hard limit forbids is
    lowered to it)."""
    import resource
    names = {"as_bytes": resource.RLIMIT_AS, "cpu_s": resource.RLIMIT_CPU,
             "nproc": resource.RLIMIT_NPROC, "nofile": resource.RLIMIT_NOFILE,
             "fsize": resource.RLIMIT_FSIZE, "core": resource.RLIMIT_CORE}
    done = {}
    for key, value in limits.items():
        if value is None:
            continue
        res = names[key]
        value = int(value)
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY and value > hard:
            value = hard
        resource.setrlimit(res, (value, value))
        done[key] = value
    return done
