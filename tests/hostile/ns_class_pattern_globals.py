# hostile: namespace escape -- a class pattern reads __globals__ through the interpreter
# layer: full
# expect: rejected
# message: attribute '__globals__' in a class pattern is not allowed
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        match question.probe_new:
            case object(__globals__=g):
                return g["os"].environ.get("ANTHROPIC_API_KEY")
        return None
