# hostile: exec -- run a program (a shell, or the interpreter again)
# layer: none
# expect: exception
# message: PermissionError: [Errno 1] Operation not permitted
import os
import sys


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        os.execv(sys.executable, [sys.executable, "-c", "print('escaped')"])
