# hostile: daemons -- double fork + setsid, a daemon that outlives the job
# layer: none
# expect: exception
# message: PermissionError: [Errno 1] Operation not permitted
import os
import time


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                while True:
                    time.sleep(1)
            os._exit(0)
        return None
