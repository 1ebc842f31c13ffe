# hostile: daemons -- double fork + setsid with the seccomp filters off: the pid namespace ends it
# layer: none
# seccomp: off
# expect: ok
# message: daemon started
import ctypes
import os
import time


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        if os.fork() == 0:
            ctypes.CDLL(None).prctl(15, b"@@MARKER@@", 0, 0, 0)   # PR_SET_NAME, the daemon inherits it
            os.setsid()
            if os.fork() == 0:
                while True:
                    time.sleep(0.2)
            os._exit(0)
        os.wait()
        print("daemon started")
        return None
