# hostile: metadata changes -- chmod / chown / utime / rename / symlink / mkdir / unlink / xattr
# layer: none
# expect: exception
# message: RuntimeError: every change refused: chmod EPERM, chown EPERM, utime EPERM, rename EPERM, symlink EPERM, mkdir EPERM, unlink EPERM, setxattr EPERM, truncate EPERM
import errno
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        target = "@@PACKAGE_DIR@@/__init__.py"
        attempts = {
            "chmod": lambda: os.chmod(target, 0o777),
            "chown": lambda: os.chown(target, 65534, 65534),
            "utime": lambda: os.utime(target, (0, 0)),
            "rename": lambda: os.rename(target, target + ".x"),
            "symlink": lambda: os.symlink("/", "/tmp/root-link"),
            "mkdir": lambda: os.mkdir("/tmp/d"),
            "unlink": lambda: os.unlink(target),
            "setxattr": lambda: os.setxattr(target, "user.x", b"1"),
            "truncate": lambda: os.truncate(target, 0),
        }
        out = []
        for name, f in attempts.items():
            try:
                f()
                out.append(f"{name} DONE")
            except OSError as exc:
                out.append(f"{name} {errno.errorcode.get(exc.errno, exc.errno)}")
        if any("DONE" in o for o in out):
            return ", ".join(out)
        raise RuntimeError("every change refused: " + ", ".join(out))
