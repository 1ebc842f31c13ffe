# hostile: hook tampering -- reach the worker's frames through a traceback
# layer: hook
# expect: violation
# message: reading attribute 'tb_frame' refused
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        try:
            1 / 0
        except ZeroDivisionError as exc:
            frame = exc.__traceback__.tb_frame
            frame.f_back.f_locals.clear()
        return None
