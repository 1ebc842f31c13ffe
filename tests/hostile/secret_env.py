# hostile: secrets -- the API key in the environment (the parent has one)
# layer: none
# expect: exception
# message: RuntimeError: no key; environment: HOME, LANG
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        key = os.environ.get("ANTHROPIC_API_KEY")
        if key:
            return key
        raise RuntimeError("no key; environment: " + ", ".join(sorted(os.environ)))
