# hostile: sockets of every family -- inet, inet6, unix (path and abstract), netlink, packet, vsock
# layer: none
# expect: exception
# message: RuntimeError: no socket: AF_INET EPERM, AF_INET6 EPERM, AF_UNIX EPERM, AF_NETLINK EPERM, AF_PACKET EPERM, AF_VSOCK EPERM, socketpair EPERM
import errno
import socket


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        out = []
        for name in ("AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK", "AF_PACKET", "AF_VSOCK"):
            try:
                s = socket.socket(getattr(socket, name), socket.SOCK_STREAM if name in
                                  ("AF_INET", "AF_INET6", "AF_UNIX", "AF_VSOCK") else socket.SOCK_RAW)
                out.append(f"{name} DONE")
                s.close()
            except OSError as exc:
                out.append(f"{name} {errno.errorcode.get(exc.errno, exc.errno)}")
        try:
            socket.socketpair()
            out.append("socketpair DONE")
        except OSError as exc:
            out.append(f"socketpair {errno.errorcode.get(exc.errno, exc.errno)}")
        if any("DONE" in o for o in out):
            return ", ".join(out)
        raise RuntimeError("no socket: " + ", ".join(out))
