# hostile: CPU -- a busy loop that swallows every exception
# layer: full
# expect: timeout
# message: episode time limit of
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        n = 0
        while True:
            try:
                n += 1
            except BaseException:
                pass
