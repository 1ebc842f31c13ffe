# hostile: gold by introspection -- every object in this process, looking for gold answers
# layer: none
# expect: exception
# message: RuntimeError: no gold: gold ids seen {-1}, gold or question strings: 0
import gc

import numpy as np


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        marker = bytes.fromhex("@@QUESTION_HEX@@").decode()
        gold_ids, texts = set(), 0
        gc.unfreeze()                                 # the worker froze its objects before forking
        for obj in gc.get_objects():
            if type(obj).__name__ == "ReplayStore":
                gold_ids.update(int(x) for x in np.asarray(obj.gold_ids).ravel())
                texts += sum(1 for s in obj.gold_answers + obj.questions if s)
            elif isinstance(obj, (tuple, list)):
                if any(isinstance(x, str) and marker in x for x in obj):
                    return "question text found"
        if gold_ids != {-1} or texts:
            return f"gold found: {sorted(gold_ids)[:5]} {texts}"
        raise RuntimeError(f"no gold: gold ids seen {gold_ids}, gold or question strings: {texts}")
