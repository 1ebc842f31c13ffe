# hostile: cross-episode memory -- module state, environment variables, the worker's pid counter
# layer: none
# episodes-per-process: 1 (batched, tests/test_sandbox.py shows the job failing)
# expect: ok
# message: no memory of earlier episodes
import os
import sys


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        marks = [getattr(sys, "seen", None), os.environ.get("SEEN"), getattr(os, "seen", None)]
        if any(marks):
            raise RuntimeError(f"state carried over from an earlier episode: {marks}")
        sys.seen = os.seen = True
        os.environ["SEEN"] = "1"
        answer, index, finished = question.probe_new()
        print("no memory of earlier episodes")
        return answer
