# hostile: gold on disk -- the replay store file with the gold answers
# layer: none
# expect: exception
# message: FileNotFoundError: [Errno 2] No such file or directory
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        return open("@@STORE_FILE@@").read(100)
