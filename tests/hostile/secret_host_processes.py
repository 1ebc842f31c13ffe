# hostile: secrets -- the host's processes (the parent's command line, other users' processes)
# layer: none
# expect: exception
# message: RuntimeError: only the sandbox's own processes are visible
# landlock: PermissionError: [Errno 13] Permission denied
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        cmdlines = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    cmdlines.append(open(f"/proc/{p}/cmdline", "rb").read())
                except OSError:
                    pass
        if any(b"pytest" in c for c in cmdlines) or len(cmdlines) > 4:
            return "host processes visible"
        raise RuntimeError(f"only the sandbox's own processes are visible ({len(cmdlines)})")
