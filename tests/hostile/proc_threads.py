# hostile: threads -- a thread that would keep running after the episode
# layer: none
# expect: exception
# message: RuntimeError: can't start new thread
import threading
import time


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
        return None
