# hostile: namespace escape -- modules reachable from allowed modules (typing.sys, functools' os)
# layer: full
# expect: exception
# message: module 'typing' has no attribute 'sys' available to controllers
import typing


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        return getattr(typing, "sys").modules["os"].environ["ANTHROPIC_API_KEY"]
