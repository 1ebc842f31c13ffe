# hostile: namespace escape -- an exception's traceback, named at run time
# layer: full
# expect: exception
# message: attribute '__traceback__' is not available to controller code
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        try:
            int("not a number")
        except ValueError as exc:
            tb = getattr(exc, "__trace" + "back__")
        return None
