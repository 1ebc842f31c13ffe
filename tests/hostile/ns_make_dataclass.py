# hostile: namespace escape -- a dataclass whose field is a dunder name (astuple would read it)
# layer: full
# expect: exception
# message: attribute '__globals__' is not available to controller code
import dataclasses


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        Reader = dataclasses.make_dataclass("Reader", ["__glo" + "bals__"])
        return None
