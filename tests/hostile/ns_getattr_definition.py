# hostile: namespace escape -- a class body defines __getattr__ to intercept lookups
# layer: full
# expect: rejected
# message: defining '__getattr__' is not allowed
class Spy:
    def __getattr__(self, name):
        return name


class Controller:
    def __init__(self, beta):
        self.spy = Spy()

    def solve(self, question):
        return None
