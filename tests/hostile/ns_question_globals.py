# hostile: namespace escape -- the question object's methods' globals, named at run time
# layer: full
# expect: exception
# message: attribute '__globals__' is not available to controller code
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        g = getattr(question.probe_new, "__glo" + "bals__")
        return g["os"].environ["ANTHROPIC_API_KEY"]
