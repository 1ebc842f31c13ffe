# hostile: fork -- a fork bomb
# layer: none
# expect: exception
# message: PermissionError: [Errno 1] Operation not permitted
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        while True:
            os.fork()
