# hostile: sockets -- with the seccomp filters off, connect to the host's loopback listener
# layer: none
# seccomp: off
# expect: exception
# message: ConnectionRefusedError
# landlock: PermissionError: [Errno 13] Permission denied
import socket


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        s = socket.create_connection(("127.0.0.1", @@HOST_PORT@@), timeout=2)
        s.sendall(b"@@SECRET@@")
        return "connected"
