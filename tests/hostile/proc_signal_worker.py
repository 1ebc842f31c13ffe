# hostile: processes -- kill the worker that forks the episodes (or stop it)
# layer: none
# expect: exception
# message: PermissionError: [Errno 1] Operation not permitted
import os
import signal


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        os.kill(os.getppid(), signal.SIGSTOP)
