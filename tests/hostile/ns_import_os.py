# hostile: namespace escape -- plain imports of os and builtins
# layer: full
# expect: rejected
# message: import of 'os' is not allowed
import os
import builtins


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        return os.environ.get("ANTHROPIC_API_KEY")
