# hostile: namespace escape -- a dunder name as a string constant
# layer: full
# expect: rejected
# message: the string '__subclasses__' is not allowed
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        classes = getattr(object, "__subclasses__")()
        return None
