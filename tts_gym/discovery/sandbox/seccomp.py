"""Seccomp filters of the controller sandbox, as classic BPF programs generated here.

Two programs, both deny-lists that answer ``EPERM`` (``ENOSYS`` for the calls that have an older
fallback the C library uses instead):

* :func:`sandbox_program` -- the whole sandbox, loaded by ``bwrap --seccomp FD`` before the worker
  starts (or installed by the worker itself when it runs without bubblewrap): no tracing of other
  processes or reading their memory, no mounts, namespaces, keyrings, BPF, perf events, kernel
  modules, clock, host name or swap changes, no io_uring (it bypasses syscall filtering), no
  sockets of any family, no System V or POSIX message-queue IPC (it outlives processes), no
  terminal input injection; ``clone`` only without namespace flags, ``clone3`` -> ``ENOSYS``;
* :func:`episode_program` -- added on top in each per-episode process just before controller code
  runs: additionally no new processes or threads, no ``exec``, no file-system changes of any
  kind (no open for writing or creating, no mkdir / rename / link / unlink / chmod / chown /
  utime / xattr / truncate), no signals to other processes, no changes to scheduling, priority
  or resource limits (all of which another process could observe later).

A filter also kills the process on a foreign system-call ABI (x32 on x86-64, or any architecture
other than the one the program was built for). Supported: x86-64 and aarch64 (little-endian).
"""
from __future__ import annotations

import ctypes
import errno
import platform
import struct

__all__ = ["SeccompUnsupported", "sandbox_program", "episode_program", "install", "SYSCALLS",
           "machine"]


class SeccompUnsupported(RuntimeError):
    """No seccomp program can be built for this machine."""


# system-call numbers (from the kernel's uapi headers: asm/unistd_64.h, asm-generic/unistd.h)
SYSCALLS = {
    "x86_64": {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165,
        "umount2": 166, "pivot_root": 155, "chroot": 161, "move_mount": 429, "open_tree": 428,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
        "unshare": 272, "setns": 308, "kexec_load": 246, "kexec_file_load": 320,
        "init_module": 175, "finit_module": 313, "delete_module": 176, "reboot": 169,
        "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179, "quotactl_fd": 443,
        "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
        "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "userfaultfd": 323,
        "fanotify_init": 300, "lookup_dcookie": 212, "syslog": 103, "vhangup": 153,
        "uselib": 134, "personality": 135, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "socket": 41, "socketpair": 53, "shmget": 29, "shmat": 30,
        "shmctl": 31, "shmdt": 67, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
        "semget": 64, "semop": 65, "semtimedop": 220, "semctl": 66, "mq_open": 240,
        "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244,
        "mq_getsetattr": 245, "pidfd_getfd": 438, "pidfd_open": 434, "process_madvise": 440,
        "kcmp": 312, "modify_ldt": 154, "clone": 56, "clone3": 435, "ioctl": 16, "fork": 57,
        "vfork": 58, "execve": 59, "execveat": 322, "kill": 62, "tkill": 200, "tgkill": 234,
        "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "pidfd_send_signal": 424,
        "setpriority": 141, "sched_setaffinity": 203, "sched_setscheduler": 144,
        "sched_setparam": 142, "sched_setattr": 314, "ioprio_set": 251, "setrlimit": 160,
        "prlimit64": 302, "open": 2, "openat": 257, "openat2": 437, "creat": 85, "mkdir": 83,
        "mkdirat": 258, "mknod": 133, "mknodat": 259, "rename": 82, "renameat": 264,
        "renameat2": 316, "link": 86, "linkat": 265, "symlink": 88, "symlinkat": 266,
        "unlink": 87, "unlinkat": 263, "rmdir": 84, "chmod": 90, "fchmod": 91, "fchmodat": 268,
        "fchmodat2": 452, "chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260,
        "truncate": 76, "ftruncate": 77, "utime": 132, "utimes": 235, "futimesat": 261,
        "utimensat": 280, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190,
        "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199, "fallocate": 285,
    },
    "aarch64": {
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40,
        "umount2": 39, "pivot_root": 41, "chroot": 51, "move_mount": 429, "open_tree": 428,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241,
        "unshare": 97, "setns": 268, "kexec_load": 104, "kexec_file_load": 294,
        "init_module": 105, "finit_module": 273, "delete_module": 106, "reboot": 142,
        "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60, "quotactl_fd": 443,
        "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
        "sethostname": 161, "setdomainname": 162, "open_by_handle_at": 265,
        "name_to_handle_at": 264, "userfaultfd": 282, "fanotify_init": 262,
        "lookup_dcookie": 18, "syslog": 116, "vhangup": 58, "personality": 92,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "socket": 198,
        "socketpair": 199, "shmget": 194, "shmat": 196, "shmctl": 195, "shmdt": 197,
        "msgget": 186, "msgsnd": 189, "msgrcv": 188, "msgctl": 187, "semget": 190, "semop": 193,
        "semtimedop": 192, "semctl": 191, "mq_open": 180, "mq_unlink": 181,
        "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184, "mq_getsetattr": 185,
        "pidfd_getfd": 438, "pidfd_open": 434, "process_madvise": 440, "kcmp": 272,
        "clone": 220, "clone3": 435, "ioctl": 29, "execve": 221, "execveat": 281, "kill": 129,
        "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240,
        "pidfd_send_signal": 424, "setpriority": 140, "sched_setaffinity": 122,
        "sched_setscheduler": 119, "sched_setparam": 118, "sched_setattr": 274,
        "ioprio_set": 30, "setrlimit": 164, "prlimit64": 261, "openat": 56, "openat2": 437,
        "mkdirat": 34, "mknodat": 33, "renameat": 38, "renameat2": 276, "linkat": 37,
        "symlinkat": 36, "unlinkat": 35, "fchmod": 52, "fchmodat": 53, "fchmodat2": 452,
        "fchown": 55, "fchownat": 54, "truncate": 45, "ftruncate": 46, "utimensat": 88,
        "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
        "fremovexattr": 16, "fallocate": 47,
    },
}

_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_SYSCALL_BIT = 0x40000000

# classic BPF
_LD_W_ABS = 0x00 | 0x00 | 0x20
_JMP_JEQ_K = 0x05 | 0x10 | 0x00
_JMP_JSET_K = 0x05 | 0x40 | 0x00
_JMP_JGE_K = 0x05 | 0x30 | 0x00
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000

_OFF_NR, _OFF_ARCH = 0, 4


def _off_arg(i: int, high: bool = False) -> int:
    return 16 + 8 * i + (4 if high else 0)     # little-endian u64 args[6]


# what the sandbox never needs (the worker included)
_SANDBOX_DENY = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "unshare", "setns",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "fanotify_init", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "vhangup", "uselib",
    "personality", "iopl", "ioperm", "modify_ldt",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "socket", "socketpair",
    "shmget", "shmat", "shmctl", "shmdt", "msgget", "msgsnd", "msgrcv", "msgctl", "semget",
    "semop", "semtimedop", "semctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr", "process_madvise",
)
# CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP | NEWTIME
_CLONE_NAMESPACES = (0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
                     | 0x40000000 | 0x02000000 | 0x00000080)
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C

# what an episode process additionally never needs
_EPISODE_DENY = (
    "clone", "fork", "vfork", "execve", "execveat",
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal",
    "pidfd_open",
    "setpriority", "sched_setaffinity", "sched_setscheduler", "sched_setparam",
    "sched_setattr", "ioprio_set", "setrlimit",
    "creat", "mkdir", "mkdirat", "mknod", "mknodat", "rename", "renameat", "renameat2", "link",
    "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "rmdir", "chmod", "fchmod",
    "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "truncate", "ftruncate",
    "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
    "removexattr", "lremovexattr", "fremovexattr", "fallocate",
)
# O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND | __O_TMPFILE (same values on both ABIs)
_OPEN_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000 | 0o20000000


def machine() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


class _Program:
    """A tiny assembler: instructions with symbolic forward jumps, resolved by :meth:`bytes`."""

    def __init__(self) -> None:
        self.ins: list = []
        self.labels: dict = {}

    def emit(self, code, k=0, jt=0, jf=0):
        self.ins.append([code, jt, jf, k])

    def label(self, name):
        self.labels[name] = len(self.ins)

    def bytes(self) -> bytes:
        out = []
        for i, (code, jt, jf, k) in enumerate(self.ins):
            rel = []
            for j in (jt, jf):
                if isinstance(j, str):
                    j = self.labels[j] - i - 1
                if not 0 <= j <= 255:
                    raise ValueError("seccomp program: jump out of range")
                rel.append(j)
            out.append(struct.pack("<HBBI", code, rel[0], rel[1], k & 0xFFFFFFFF))
        return b"".join(out)


def _build(arch: str, deny_eperm, deny_enosys, arg_rules) -> bytes:
    """Arch check, then ``arg_rules`` (``(syscall, [(test, arg, high word, value)])``: EPERM when
    any test holds; ``test`` is ``"any_bit"`` (``arg & value != 0``) or ``"equals"``), then the
    plain deny-lists, then allow."""
    table = SYSCALLS.get(arch)
    if table is None or struct.pack("=H", 1) != b"\x01\x00":
        raise SeccompUnsupported(f"no seccomp program for the {arch!r} architecture "
                                 f"(supported: {', '.join(SYSCALLS)})")
    p = _Program()
    p.emit(_LD_W_ABS, _OFF_ARCH)
    p.emit(_JMP_JEQ_K, _AUDIT_ARCH[arch], jt=1, jf=0)
    p.emit(_RET_K, _RET_KILL_PROCESS)
    p.emit(_LD_W_ABS, _OFF_NR)
    if arch == "x86_64":                         # the x32 ABI shares the arch value
        p.emit(_JMP_JGE_K, _X32_SYSCALL_BIT, jt=0, jf=1)
        p.emit(_RET_K, _RET_KILL_PROCESS)
    for n, (name, checks) in enumerate(arg_rules):
        nr = table.get(name)
        if nr is None:
            continue
        skip, deny = f"skip{n}", f"deny{n}"
        p.emit(_JMP_JEQ_K, nr, jt=0, jf=skip)
        for test, idx, high, value in checks:
            p.emit(_LD_W_ABS, _off_arg(idx, high))
            p.emit(_JMP_JSET_K if test == "any_bit" else _JMP_JEQ_K, value, jt=deny, jf=0)
        p.emit(_RET_K, _RET_ALLOW)               # one rule per syscall: nothing else applies
        p.label(deny)
        p.emit(_RET_K, _RET_ERRNO | errno.EPERM)
        p.label(skip)
    for names, ret in ((deny_eperm, _RET_ERRNO | errno.EPERM),
                       (deny_enosys, _RET_ERRNO | errno.ENOSYS)):
        for name in names:
            nr = table.get(name)
            if nr is None:                       # not on this ABI (fork, open, ... on aarch64)
                continue
            p.emit(_JMP_JEQ_K, nr, jt=0, jf=1)
            p.emit(_RET_K, ret)
    p.emit(_RET_K, _RET_ALLOW)
    return p.bytes()


def sandbox_program(arch: str | None = None) -> bytes:
    """The whole-sandbox filter (see the module docstring), as ``struct sock_filter`` bytes."""
    return _build(arch or machine(), _SANDBOX_DENY, ("clone3",), [
        ("clone", [("any_bit", 0, False, _CLONE_NAMESPACES)]),
        ("ioctl", [("equals", 1, False, _TIOCSTI), ("equals", 1, False, _TIOCLINUX)]),
    ])


def episode_program(arch: str | None = None) -> bytes:
    """The per-episode filter added on top of :func:`sandbox_program` (see the module docstring)."""
    return _build(arch or machine(), _EPISODE_DENY, ("clone3", "openat2"), [
        ("open", [("any_bit", 1, False, _OPEN_WRITE_FLAGS)]),
        ("openat", [("any_bit", 2, False, _OPEN_WRITE_FLAGS)]),
        # prlimit64 may read limits (new limit NULL), never set them
        ("prlimit64", [("any_bit", 2, False, 0xFFFFFFFF), ("any_bit", 2, True, 0xFFFFFFFF)]),
    ])


_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Install ``program`` on the calling thread (and what it later creates); ``OSError`` when
    the kernel refuses. Sets ``no_new_privs`` first (required without ``CAP_SYS_ADMIN``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl(PR_SET_NO_NEW_PRIVS): {errno.errorcode.get(e, e)}")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"prctl(PR_SET_SECCOMP): {errno.errorcode.get(e, e)}")
