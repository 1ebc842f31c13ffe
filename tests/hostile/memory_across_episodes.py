# hostile: cross-episode memory -- remember questions on shared objects of the allowed modules
# layer: full
# episodes-per-process: 1 (batched, tests/test_sandbox.py shows the job failing)
# expect: ok
# message: no memory of earlier episodes
import collections
import dataclasses
import random


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        stores = [collections.Counter, random.Random, dataclasses.MISSING, collections.ChainMap]
        for obj in stores:
            if getattr(obj, "seen", None):
                raise RuntimeError("state carried over from an earlier episode")
        for obj in stores:
            setattr(obj, "seen", ["question"])
        answer, index, finished = question.probe_new()
        print("no memory of earlier episodes")
        return answer
