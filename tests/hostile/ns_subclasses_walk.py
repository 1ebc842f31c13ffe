# hostile: namespace escape -- mro() to object, then object.__subclasses__ named at run time
# layer: full
# expect: exception
# message: attribute '__subclasses__' is not available to controller code
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        root = type(question).mro()[-1]
        for cls in getattr(root, "__subcla" + "sses__")():
            pass
        return None
