# hostile: hook tampering -- catch the refusal and carry on as if nothing happened
# layer: hook
# expect: violation
# message: open('/etc/passwd', 'r') refused
class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        try:
            open("/etc/passwd").read()
        except BaseException:
            pass
        answer, index, finished = question.probe_new()
        return answer
