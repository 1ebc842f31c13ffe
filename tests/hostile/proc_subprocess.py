# hostile: exec -- subprocess.run of a shell command
# layer: none
# expect: exception
# message: PermissionError: [Errno 1] Operation not permitted
import subprocess


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        subprocess.run(["/bin/sh", "-c", "echo escaped"], check=True)
