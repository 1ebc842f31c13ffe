# hostile: gold on disk -- the shared data folder, the repository around the package, the home folder
# layer: none
# expect: exception
# message: RuntimeError: nothing found
# landlock: PermissionError: [Errno 13] Permission denied
import os


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        seen = {}
        for d in ("@@SHARED_DIR@@", os.path.dirname("@@SHARED_DIR@@"), "/etc", "/var", "/srv",
                  "/mnt", "/opt"):
            try:
                seen[d] = os.listdir(d)
            except OSError as exc:
                seen[d] = type(exc).__name__
        repo = os.listdir(os.path.dirname("@@PACKAGE_DIR@@"))
        if any(isinstance(v, list) for v in seen.values()) or \
                set(repo) - {"tts_gym", *@@RUNTIME_NEIGHBOURS@@}:
            return f"listed {seen} {repo}"
        for name in (".bashrc", ".profile", ".ssh", ".netrc", ".config", ".cache"):
            if os.path.exists(os.path.join(os.path.expanduser("~"), name)) or \
                    os.path.exists(os.path.join("/root", name)):
                return "home content visible: " + name
        raise RuntimeError("nothing found: " + repr(seen) + f"; next to the package: {repo}")
