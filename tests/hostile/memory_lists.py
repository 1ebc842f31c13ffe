# hostile: memory -- hold ever more lists
# layer: full
# expect: memory
# message: memory limit exceeded
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        hoard = []
        while True:
            hoard.append([0] * 5_000_000)
