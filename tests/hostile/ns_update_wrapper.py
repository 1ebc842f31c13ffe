# hostile: namespace escape -- functools.update_wrapper copies a dunder attribute named by a string
# layer: full
# expect: exception
# message: has no attribute 'update_wrapper' available to controllers
import functools


class Holder:
    pass


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        h = Holder()
        functools.update_wrapper(h, question.probe_new, assigned=("__glo" + "bals__",), updated=())
        return None
