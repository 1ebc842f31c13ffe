# hostile: floods -- fill the episode's result channel (the only other open descriptor)
# layer: none
# expect: output
# message: the episode's process wrote more than
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        fds = range(3, 64)
        chunk = b"\0" * (1 << 20)
        while True:
            for fd in fds:
                try:
                    os.write(fd, chunk)
                except OSError:
                    pass
