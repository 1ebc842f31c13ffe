# hostile: forged frames -- write a result claiming a cheap correct answer, then exit quietly
# layer: none
# template: forged_frames (tests/sandbox_inputs.py: the Controller, which calls forge)
# expect: integrity
# message: differ from the re-play
import os
import struct


def forge(fd):
    actions = struct.pack("<h", 2)            # one ABSTAIN-like action, never taken
    payload = struct.pack("<iqI", 0, 1, 1) + actions
    os.write(fd, b"R" + struct.pack("<I", len(payload)) + payload)
