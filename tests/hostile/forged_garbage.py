# hostile: forged frames -- garbage, a record claiming 4 GB, and fake worker records
# layer: none
# template: forged_frames (tests/sandbox_inputs.py: the Controller, which calls forge)
# expect: protocol
# message: the sandbox's output is malformed
import os
import struct


def forge(fd):
    os.write(fd, b"X" + struct.pack("<IIiBI", 13, 0, 0, 0, 0))   # a fake 'episode end'
    os.write(fd, b"R" + struct.pack("<I", 2**32 - 1) + b"\xff" * 64)
