# hostile: hook tampering -- a trace function sees every frame
# layer: hook
# expect: violation
# message: operation 'sys.settrace' refused
import sys


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        sys.settrace(lambda frame, event, arg: None)
        return None
