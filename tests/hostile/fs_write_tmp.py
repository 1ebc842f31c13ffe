# hostile: filesystem writes -- a file in the private /tmp for the next episode to read
# layer: none
# expect: exception
# message: PermissionError: [Errno 1] Operation not permitted: '/tmp/memory.txt'
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        with open("/tmp/memory.txt", "a") as fh:
            fh.write("question seen\n")
        return None
