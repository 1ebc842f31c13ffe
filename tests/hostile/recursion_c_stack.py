# hostile: recursion -- overflow the C stack (the recursion limit raised first)
# layer: none
# expect: crash
# message: segmentation fault
import sys


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        sys.setrecursionlimit(10**8)

        def down(x):
            return max([1, 2], key=down)            # each level goes through C code
        return down(0)
