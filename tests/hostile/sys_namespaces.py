# hostile: kernel attack surface -- namespaces, mounts, ptrace, keyrings, bpf, perf, io_uring, host name
# layer: none
# expect: exception
# message: RuntimeError: all refused: unshare EPERM, setns EPERM, mount EPERM, chroot EPERM, ptrace EPERM, keyctl EPERM, bpf EPERM, perf_event_open EPERM, io_uring_setup EPERM, sethostname EPERM, prlimit EPERM, setpriority EPERM
import ctypes
import errno
import os
import platform

NR = {"x86_64": {"unshare": 272, "setns": 308, "mount": 165, "chroot": 161, "ptrace": 101,
                 "keyctl": 250, "bpf": 321, "perf_event_open": 298, "io_uring_setup": 425,
                 "sethostname": 170},
      "aarch64": {"unshare": 97, "setns": 268, "mount": 40, "chroot": 51, "ptrace": 117,
                  "keyctl": 219, "bpf": 280, "perf_event_open": 241, "io_uring_setup": 425,
                  "sethostname": 161}}[platform.machine()]


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        buf = ctypes.create_string_buffer(256)
        args = {"unshare": (0x10000000,), "setns": (0, 0), "mount": (b"none", b"/tmp", b"tmpfs", 0, 0),
                "chroot": (b"/tmp",), "ptrace": (16, os.getppid(), 0, 0), "keyctl": (0, 0),
                "bpf": (0, buf, 64), "perf_event_open": (buf, 0, -1, -1, 0),
                "io_uring_setup": (1, buf), "sethostname": (b"x", 1)}
        out = []
        for name, a in args.items():
            r = libc.syscall(NR[name], *a)
            out.append(f"{name} " + ("DONE" if r >= 0 else errno.errorcode[ctypes.get_errno()]))
        import resource
        try:
            resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (3, 3))
            out.append("prlimit DONE")
        except (OSError, ValueError):
            out.append("prlimit EPERM")
        try:
            os.setpriority(os.PRIO_PROCESS, os.getppid(), 19)
            out.append("setpriority DONE")
        except OSError as exc:
            out.append("setpriority " + errno.errorcode[exc.errno])
        if any("DONE" in o for o in out):
            return ", ".join(out)
        raise RuntimeError("all refused: " + ", ".join(out))
