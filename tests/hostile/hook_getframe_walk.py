# hostile: hook tampering -- walk up from our own frame to the worker's and erase its records
# layer: hook
# expect: violation
# message: frame access (sys._getframe) refused
import sys


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        frame = sys._getframe(0)
        while frame is not None:
            for value in list(frame.f_locals.values()):
                if isinstance(value, list):
                    value.clear()
            frame = frame.f_back
        return None
