# hostile: hook tampering -- find the hook's closure among all objects and switch it off
# layer: hook
# expect: violation
# message: operation 'gc.get_objects' refused
import gc


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        for obj in gc.get_objects():
            if isinstance(obj, list) and obj == [False]:
                obj[0] = True
        return None
