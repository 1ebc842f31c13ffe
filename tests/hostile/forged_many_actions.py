# hostile: forged frames -- a result claiming a billion actions, with 1e999 and deep nesting after it
# layer: none
# expect: protocol
# message: claims
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
        junk = b'{"offset": 1e999, "h": ' + b"[" * 100000 + b"]" * 100000 + b"}"
        payload = struct.pack("<iqI", 0, 0, 10**9) + junk
        os.write(fd, b"R" + struct.pack("<I", len(payload)) + payload)
        os._exit(0)
