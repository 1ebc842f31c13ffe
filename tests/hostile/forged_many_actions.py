# hostile: forged frames -- a result claiming a billion actions, with 1e999 and deep nesting after it
# layer: none
# template: forged_frames (tests/sandbox_inputs.py: the Controller, which calls forge)
# expect: protocol
# message: claims
import os
import struct


def forge(fd):
    junk = b'{"offset": 1e999, "h": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    payload = struct.pack("<iqI", 0, 0, 10**9) + junk
    os.write(fd, b"R" + struct.pack("<I", len(payload)) + payload)
