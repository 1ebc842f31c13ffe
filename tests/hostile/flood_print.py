# hostile: floods -- print a billion characters
# layer: full
# expect: ok
# message: more characters of printed output dropped
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        for _ in range(20000):
            print("x" * 50000)
        return None
