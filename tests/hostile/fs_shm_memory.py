# hostile: cross-episode memory -- /dev/shm and System V shared memory outlive a process
# layer: none
# expect: exception
# message: RuntimeError: refused: /dev/shm EPERM, shmget EPERM, mq_open EPERM
import ctypes
import errno
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        libc = ctypes.CDLL(None, use_errno=True)
        out = []
        try:
            open("/dev/shm/memory", "w").write("x")
            out.append("/dev/shm DONE")
        except OSError as exc:
            out.append("/dev/shm " + errno.errorcode[exc.errno])
        r = libc.shmget(0x1234, 4096, 0o1000 | 0o666)          # IPC_CREAT
        out.append("shmget " + ("DONE" if r >= 0 else errno.errorcode[ctypes.get_errno()]))
        r = libc.mq_open(b"/memory", os.O_CREAT | os.O_RDWR, 0o600, None)
        out.append("mq_open " + ("DONE" if r >= 0 else errno.errorcode[ctypes.get_errno()]))
        if any("DONE" in o for o in out):
            return ", ".join(out)
        raise RuntimeError("refused: " + ", ".join(out))
