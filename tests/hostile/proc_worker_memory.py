# hostile: processes -- read the worker's memory (same uid) to learn about earlier episodes
# layer: none
# expect: exception
# message: PermissionError: [Errno 13] Permission denied
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        with open(f"/proc/{os.getppid()}/mem", "rb") as fh:    # reading: the worker is not dumpable
            fh.seek(0x400000)
            return fh.read(16).hex()
