# hostile: sleep -- block without using CPU
# layer: none
# expect: timeout
# message: episode time limit of
import time


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        time.sleep(10_000)
