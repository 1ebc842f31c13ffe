# hostile: fork -- with the seccomp filters off the process limit of the sandbox user still binds
# layer: none
# seccomp: off
# expect: exception
# message: BlockingIOError: [Errno 11] Resource temporarily unavailable
import os
import time


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        for _ in range(200):
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
        return "200 processes"
