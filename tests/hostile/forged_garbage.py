# hostile: forged frames -- garbage, a record claiming 4 GB, and fake worker records
# layer: none
# expect: protocol
# message: the sandbox's output is malformed
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
        os.write(fd, b"X" + struct.pack("<IIiBI", 13, 0, 0, 0, 0))   # a fake 'episode end'
        os.write(fd, b"R" + struct.pack("<I", 2**32 - 1) + b"\xff" * 64)
        os._exit(0)
