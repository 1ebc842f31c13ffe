# hostile: forged frames -- write a result claiming a cheap correct answer, then exit quietly
# layer: none
# expect: integrity
# message: differ from the re-play
import os
import stat
import struct


def is_pipe(fd):
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        fd = next(fd for fd in range(3, 64) if is_pipe(fd))       # the episode's result channel
        actions = struct.pack("<h", 2)            # one ABSTAIN-like action, never taken
        payload = struct.pack("<iqI", 0, 1, 1) + actions
        os.write(fd, b"R" + struct.pack("<I", len(payload)) + payload)
        os._exit(0)
