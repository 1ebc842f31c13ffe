# hostile: recursion -- unbounded recursion
# layer: full
# expect: exception
# message: RecursionError: maximum recursion depth exceeded
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        def down(n):
            return down(n + 1) + 1
        return down(0)
