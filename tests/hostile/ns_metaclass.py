# hostile: namespace escape -- a metaclass
# layer: full
# expect: rejected
# message: class keywords (metaclass=...) are not allowed
class Meta(type):
    pass


class Controller(metaclass=Meta):
    def __init__(self, beta):
        pass

    def solve(self, question):
        return None
