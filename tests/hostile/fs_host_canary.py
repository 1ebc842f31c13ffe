# hostile: filesystem writes -- a world-writable file of the host, outside the sandbox
# layer: none
# expect: exception
# message: FileNotFoundError: [Errno 2] No such file or directory
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        with open("@@CANARY_DIR@@/world-writable.txt", "r") as fh:
            return fh.read()
