# hostile: namespace escape -- type(name, bases, dict) defines dunder hooks without a class body
# layer: full
# expect: exception
# message: type() takes exactly one argument in controller code
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        hook = type("Hook", (), {"__instance" + "check__": lambda cls, obj: True})
        return None
