# hostile: namespace escape -- numpy's file readers
# layer: full
# expect: exception
# message: module 'numpy' has no attribute 'fromfile' available to controllers
import numpy as np


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        return np.fromfile("/proc/self/environ", dtype=np.uint8).tobytes().decode()
