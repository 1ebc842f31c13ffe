# hostile: memory -- split the hoard over several processes (each within a per-process budget)
# layer: none
# expect: exception
# message: PermissionError: [Errno 1] Operation not permitted
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        for _ in range(4):
            if os.fork() == 0:
                hoard = bytearray(300 * 2**20)
                os.pause()
        return None
