# hostile: kernel attack surface -- a system call through the x32 ABI, past a filter written for x86-64
# layer: none
# machine: x86_64
# expect: violation
# message: forbidden system-call interface
import ctypes


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(0x40000000 | 39)                 # x32 getpid
        return None
