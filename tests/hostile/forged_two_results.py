# hostile: forged frames -- results for this episode and for the next ones, written in advance
# layer: none
# template: forged_frames (tests/sandbox_inputs.py: the Controller, which calls forge)
# expect: protocol
# message: records after the episode's result
import os
import struct


def forge(fd):
    payload = struct.pack("<iqI", -1, 0, 0)
    record = b"R" + struct.pack("<I", len(payload)) + payload
    os.write(fd, record * 4)
