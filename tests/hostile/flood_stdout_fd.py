# hostile: floods -- write straight to the process's stdout and stderr
# layer: none
# expect: ok
# message: flooded
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        chunk = b"TTSGYM-SANDBOX" * 70000
        for _ in range(10):
            os.write(1, chunk)
            os.write(2, chunk)
        print("flooded")
        return None
