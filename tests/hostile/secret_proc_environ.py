# hostile: secrets -- every /proc/*/environ this process can see (the parent's included?)
# layer: none
# expect: exception
# message: RuntimeError: no key in the environ of any visible process
# landlock: PermissionError: [Errno 13] Permission denied
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        found = []
        for p in pids:
            try:
                data = open(f"/proc/{p}/environ", "rb").read()
            except OSError:
                continue
            if b"ANTHROPIC_API_KEY" in data or b"@@SECRET@@" in data:
                found.append(p)
        if found:
            return "found in " + ",".join(found)
        raise RuntimeError(f"no key in the environ of any visible process "
                           f"({len(pids)} processes visible: {sorted(pids, key=int)})")
