# hostile: namespace escape -- a generator's frame, named at run time, to walk up to the worker
# layer: full
# expect: exception
# message: attribute 'gi_frame' is not available to controller code
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        gen = (x for x in [1])
        frame = getattr(gen, "gi_" + "frame")
        return str(frame)
