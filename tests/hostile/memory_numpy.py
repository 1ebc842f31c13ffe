# hostile: memory -- one huge array, touched
# layer: full
# expect: memory
# message: memory limit exceeded
import numpy as np


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        big = np.ones(2_000_000_000, dtype=np.int64)
        return str(big.sum())
