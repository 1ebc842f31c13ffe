# hostile: forged frames -- results for this episode and for the next ones, written in advance
# layer: none
# expect: protocol
# message: records after the episode's result
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
        payload = struct.pack("<iqI", -1, 0, 0)
        record = b"R" + struct.pack("<I", len(payload)) + payload
        os.write(fd, record * 4)
        os._exit(0)
