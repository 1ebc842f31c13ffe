# hostile: filesystem writes -- patch the package the parent imports (kernels, scoring)
# layer: none
# expect: exception
# message: PermissionError: [Errno 1] Operation not permitted
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        with open("@@PACKAGE_DIR@@/core/kernels.py", "a") as fh:
            fh.write("\nraise SystemExit\n")
        return None
