"""Child-process entry point of the controller sandbox, and the restricted controller namespace.

``python -m tts_gym.discovery.sandbox_worker '<json config>'`` is started by
:mod:`tts_gym.discovery.sandbox` (never by hand). It reads a pickled payload from stdin (the
candidate's source code and the *redacted* search stores: replay tensors and answer strings, no gold
answers, no question text), runs the controller over every episode with the replay kernels, and
writes one result frame to stdout (JSON header + raw little-endian int arrays; never pickle).

Order of events in the child (each step is what makes the next one safe):

1. parent-death signal (``PR_SET_PDEATHSIG``), then a private network namespace when the kernel
   allows it (``unshare(CLONE_NEWNET)``, root or an unprivileged user namespace), before any thread
   exists; CPU-time and core-size limits;
2. read the payload, import numpy / the kernels / the AutoTTS adapter, warm the compiled kernels
   (numba's cache is read now, never after the lock-down);
3. check and compile the controller (:func:`compile_controller`);
4. lock-down: Landlock (kernel-enforced: read-only access to the Python installation and the
   ``tts_gym`` package only, no writes anywhere, no TCP bind/connect, no signals or abstract unix
   sockets outside the sandbox) when available; drop to ``nobody`` when running as root; memory,
   file-size, open-file and process limits; ``sys.addaudithook`` allow-list
   (:func:`install_audit_hook`);
5. per episode: fresh module globals for the controller (no memory across episodes), seeded
   ``random``/``numpy.random``, an episode timer; ``Controller(beta).solve(question)``.

The first failure (exception, inadmissible action, episode time-out, sandbox violation) stops the
run and is reported with a message written for the proposer.

The restricted namespace (:func:`compile_controller`, :func:`controller_globals`) is also used
in-process by :func:`tts_gym.discovery.sandbox.load_controller_policy` so that a discovered controller
behaves identically under ``tts-gym eval --controller FILE``. See :data:`ALLOWED_MODULES` and
:func:`check_source` for the rules.
"""
from __future__ import annotations

import ast
import builtins
import json
import os
import signal
import struct
import sys
import types

# ------------------------------------------------------------------------------------------------
# the restricted controller namespace (shared with the parent)
# ------------------------------------------------------------------------------------------------

REFERENCE_API_MODULE = "tts_gym.discovery.reference_api"
"""The project's copy of the reference's controller API (``LLMDesignedMethod``, helpers, seeds)."""

ALLOWED_MODULES = ("math", "random", "collections", "itertools", "functools", "heapq", "bisect",
                   "statistics", "numpy", "dataclasses", "typing", "abc", "scipy", "__future__",
                   REFERENCE_API_MODULE)
"""Modules controller code may import (as read-only copies without their sub-modules, except the
ones in :data:`ALLOWED_SUBMODULES`; of ``scipy`` only ``scipy.stats``)."""

ALLOWED_SUBMODULES = {"numpy": ("random", "linalg"), "collections": ("abc",), "scipy": ("stats",)}

_ONLY_SUBMODULES = frozenset({"scipy"})
"""Allowed modules whose own attributes stay hidden (only the allowed sub-modules are exposed)."""

_DENIED_MODULE_NAMES = {
    # file I/O, introspection of source, configuration / self-test helpers
    "numpy": {"load", "save", "savez", "savez_compressed", "loadtxt", "savetxt", "genfromtxt",
              "fromfile", "memmap", "fromregex", "DataSource", "info", "show_config",
              "show_runtime", "test", "get_include", "source", "lookfor", "ctypeslib"},
    # evaluate string annotations (eval) -> could run unchecked code
    "typing": {"get_type_hints", "ForwardRef", "evaluate_forward_ref"},
    "functools": {"singledispatch", "singledispatchmethod"},
}

DENIED_ATTRIBUTES = frozenset({
    # frames, code objects, generator/coroutine internals
    "gi_frame", "gi_code", "gi_yieldfrom", "gi_suspended", "cr_frame", "cr_code", "cr_await",
    "cr_origin", "ag_frame", "ag_code", "ag_await", "f_back", "f_globals", "f_locals",
    "f_builtins", "f_code", "f_trace", "f_lasti", "f_lineno", "tb_frame", "tb_next", "tb_lasti",
    "co_code", "co_consts", "co_names", "func_globals", "func_code",
    # attribute traversal inside format strings ("{0.x.y}".format(obj))
    "format", "format_map",
    # numpy escape hatches
    "ctypes", "tofile", "dump",
})
"""Attribute names controller code may not use (besides every ``__dunder__`` outside
:data:`ALLOWED_DUNDER_ATTRIBUTES`)."""

ALLOWED_DUNDER_ATTRIBUTES = frozenset({
    "__init__", "__post_init__", "__name__", "__qualname__", "__doc__", "__len__", "__iter__",
    "__next__", "__contains__", "__getitem__", "__setitem__", "__delitem__", "__eq__", "__ne__",
    "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__repr__", "__str__", "__bool__",
    "__add__", "__sub__", "__mul__", "__truediv__", "__floordiv__", "__mod__", "__neg__",
    "__abs__", "__enter__", "__exit__",
})
"""The only ``__dunder__`` attributes controller code may use (no ``__class__``, ``__dict__``,
``__globals__``, ``__subclasses__``, ``__closure__``, ``__traceback__``, ...)."""
ALLOWED_DUNDER_NAMES = frozenset({"__name__", "__slots__", "__all__", "__doc__"})

CONTROLLER_FILENAME = "controller.py"
MAX_SOURCE_CHARS = 200_000

_SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "classmethod",
    "complex", "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash",
    "hex", "id", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min",
    "next", "object", "oct", "ord", "pow", "property", "range", "repr", "reversed", "round", "set",
    "slice", "sorted", "staticmethod", "str", "sum", "super", "tuple", "type", "zip", "bytearray",
    "NotImplemented", "Ellipsis", "None", "True", "False",
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "Exception",
    "IndexError", "KeyError", "LookupError", "NotImplementedError", "OverflowError",
    "RuntimeError", "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
    "FloatingPointError", "RecursionError", "MemoryError", "ArithmeticError",
    "__build_class__",
)


class ControllerRejected(ValueError):
    """The controller source breaks a rule of the restricted namespace (raised before it runs)."""


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.errors: list[str] = []

    def _err(self, node, msg: str) -> None:
        self.errors.append(f"line {getattr(node, 'lineno', '?')}: {msg}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        a = node.attr
        if (_is_dunder(a) and a not in ALLOWED_DUNDER_ATTRIBUTES) or a in DENIED_ATTRIBUTES:
            self._err(node, f"attribute '.{a}' is not allowed in controller code")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if _is_dunder(node.id) and node.id not in ALLOWED_DUNDER_NAMES:
            self._err(node, f"name '{node.id}' is not allowed in controller code")
        self.generic_visit(node)

    def _check_module(self, node, name: str) -> None:
        top = name.split(".")[0]
        if name == REFERENCE_API_MODULE:
            return
        if top not in ALLOWED_MODULES:
            self._err(node, f"import of '{name}' is not allowed; controllers may import only "
                            f"{', '.join(m for m in ALLOWED_MODULES if m != '__future__')}")
        elif "." in name:
            sub = name.split(".", 1)[1]
            if sub not in ALLOWED_SUBMODULES.get(top, ()):
                subs = ", ".join(f"{t}.{s}" for t, ss in ALLOWED_SUBMODULES.items() for s in ss)
                self._err(node, f"import of '{name}' is not allowed (allowed sub-modules: {subs})")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            self._err(node, "relative imports are not allowed")
        else:
            self._check_module(node, node.module or "")
        for alias in node.names:
            if alias.name == "*":
                self._err(node, "'from ... import *' is not allowed")
            elif _is_dunder(alias.name) or alias.name in DENIED_ATTRIBUTES:
                self._err(node, f"importing '{alias.name}' is not allowed")
            elif node.module == REFERENCE_API_MODULE and alias.name not in _reference_names():
                self._err(node, f"'{alias.name}' is not a name of {REFERENCE_API_MODULE}")
        self.generic_visit(node)


CONTROLLER_CLASSES = ("Controller", "OptimalController")
"""Top-level classes a controller file may define: ``Controller(beta)`` (this project's format) or
``OptimalController(config={"beta": beta})`` (the reference's ``method.py`` format; used when the
file has no ``Controller``)."""


def _reference_names() -> tuple:
    from tts_gym.discovery.reference_api import REFERENCE_NAMES
    return REFERENCE_NAMES


def controller_format(tree: ast.Module) -> str:
    """``"controller"`` when the checked module defines a top-level ``Controller``, else
    ``"reference"`` (``OptimalController``)."""
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == "Controller":
            return "controller"
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "Controller"
                                                for t in node.targets):
            return "controller"
    return "reference"


def imported_modules(tree: ast.Module) -> set:
    """Allowed modules the checked module imports (to load them before the lock-down)."""
    out = set()
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for name in names:
            out.add(name)
            out.add(name.split(".")[0])
    return out


def check_source(source: str, filename: str = CONTROLLER_FILENAME) -> ast.Module:
    """Parse and check controller source; returns the AST or raises :class:`SyntaxError` /
    :class:`ControllerRejected` (all rule violations in one message).

    Rules: no ``__dunder__`` names or attributes outside :data:`ALLOWED_DUNDER_NAMES` /
    :data:`ALLOWED_DUNDER_ATTRIBUTES`, none of
    :data:`DENIED_ATTRIBUTES`, imports only from :data:`ALLOWED_MODULES`, no ``import *``, no
    relative imports, at most :data:`MAX_SOURCE_CHARS` characters, and a top-level ``Controller``
    or ``OptimalController`` (:data:`CONTROLLER_CLASSES`).
    """
    if not isinstance(source, str):
        raise ControllerRejected("controller source must be text")
    if len(source) > MAX_SOURCE_CHARS:
        raise ControllerRejected(f"controller source is {len(source)} characters; the limit is "
                                 f"{MAX_SOURCE_CHARS}")
    tree = ast.parse(source, filename=filename)
    checker = _Checker()
    checker.visit(tree)
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
    if not defined & set(CONTROLLER_CLASSES):
        checker.errors.append("the file must define a top-level class `Controller` (constructed "
                              "as Controller(beta)) or `OptimalController` (the reference's format, "
                              "constructed as OptimalController(config={'beta': beta})), called as "
                              ".solve(question)")
    if checker.errors:
        raise ControllerRejected("controller rejected by the sandbox rules:\n  " +
                                 "\n  ".join(checker.errors[:20]))
    return tree


COMPILE_FLAGS = __import__("__future__").annotations.compiler_flag
"""Controller code is compiled with postponed evaluation of annotations (PEP 563): the module is
executed afresh for every episode, and evaluating its annotations (``Optional[Dict[str, Any]]``
on every method) was a large part of that cost. Only code that reads annotations at run time
sees a difference (strings instead of objects)."""


def compile_controller(source: str, filename: str = CONTROLLER_FILENAME):
    """:func:`check_source` + ``compile``: the code object to ``exec`` in :func:`controller_globals`."""
    tree = check_source(source, filename)
    return compile(tree, filename, "exec", flags=COMPILE_FLAGS, dont_inherit=True)


# -- read-only module copies -----------------------------------------------------------------------

def _module_proxy(name: str, mapping: dict):
    data = dict(mapping)
    label = f"<module {name!r} (restricted copy)>"

    class RestrictedModule:
        __slots__ = ()

        def __getattr__(self, key):
            try:
                return data[key]
            except KeyError:
                raise AttributeError(f"module {name!r} has no attribute {key!r} available to "
                                     f"controllers") from None

        def __setattr__(self, key, value):
            raise AttributeError(f"module {name!r} is read-only in controller code")

        def __delattr__(self, key):
            raise AttributeError(f"module {name!r} is read-only in controller code")

        def __dir__(self):
            return sorted(data)

        def __repr__(self):
            return label

    return RestrictedModule()


_PROXIES: dict[str, object] = {}


def _build_proxy(full: str):
    import importlib
    mod = importlib.import_module(full)
    top = full.split(".")[0]
    denied = _DENIED_MODULE_NAMES.get(full, set())
    subs = ALLOWED_SUBMODULES.get(top, ()) if full == top else ()
    out = {}
    if full == REFERENCE_API_MODULE:
        out = {k: getattr(mod, k) for k in mod.REFERENCE_NAMES}
        out["__name__"] = full
        return _module_proxy(full, out)
    for key in (() if full in _ONLY_SUBMODULES else dir(mod)):
        if key.startswith("_") or key in denied:
            continue
        try:
            val = getattr(mod, key)
        except Exception:  # noqa: BLE001 - lazy attributes that fail are simply absent
            continue
        if isinstance(val, types.ModuleType):
            continue
        out[key] = val
    for s in subs:
        out[s] = restricted_module(f"{top}.{s}")
    if full == "scipy.stats":   # memoised cdf/sf, same values (see tts_gym.discovery.reference_api)
        from tts_gym.discovery.reference_api import beta
        out["beta"] = beta.get()
    out["__name__"] = full
    return _module_proxy(full, out)


def restricted_module(full: str):
    """The read-only copy of an allowed module (built once per process)."""
    p = _PROXIES.get(full)
    if p is None:
        p = _PROXIES[full] = _build_proxy(full)
    return p


def _restricted_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level:
        raise ImportError("relative imports are not allowed in controller code")
    if name == REFERENCE_API_MODULE and fromlist:
        return restricted_module(name)
    top = name.split(".")[0]
    if top not in ALLOWED_MODULES:
        raise ImportError(f"import of {name!r} is not allowed in controller code")
    if "." in name and name.split(".", 1)[1] not in ALLOWED_SUBMODULES.get(top, ()):
        raise ImportError(f"import of {name!r} is not allowed in controller code")
    if fromlist:
        return restricted_module(name)
    return restricted_module(top)


def _checked_name(name) -> str:
    if not isinstance(name, str):
        raise TypeError("attribute name must be a string")
    if (_is_dunder(name) and name not in ALLOWED_DUNDER_ATTRIBUTES) or name in DENIED_ATTRIBUTES:
        raise AttributeError(f"attribute {name!r} is not available to controller code")
    return name


_MISSING = object()


def _safe_getattr(obj, name, default=_MISSING):
    name = _checked_name(name)
    if default is _MISSING:
        return getattr(obj, name)
    return getattr(obj, name, default)


def _safe_hasattr(obj, name):
    return hasattr(obj, _checked_name(name))


def _safe_setattr(obj, name, value):
    setattr(obj, _checked_name(name), value)


def _safe_delattr(obj, name):
    delattr(obj, _checked_name(name))


class PrintBuffer:
    """Capped collector of what controller code prints (kept for the proposer's feedback)."""

    def __init__(self, cap: int = 8192) -> None:
        self.cap = int(cap)
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def print(self, *args, sep=" ", end="\n", **_ignored):
        text = (sep if isinstance(sep, str) else " ").join(str(a) for a in args)
        text += end if isinstance(end, str) else "\n"
        room = self.cap - self.size
        if room <= 0:
            self.dropped += len(text)
            return
        self.parts.append(text[:room])
        self.size += min(room, len(text))
        self.dropped += max(0, len(text) - room)

    def text(self) -> str:
        s = "".join(self.parts)
        if self.dropped:
            s += f"\n[... {self.dropped} more characters of printed output dropped]"
        return s


def safe_builtins(print_fn=None) -> dict:
    """The builtins controller code sees: a whitelist plus checked ``getattr`` & co and the
    restricted ``__import__``; no ``open``, ``eval``, ``exec``, ``compile``, ``globals``, ``vars``,
    ``input``, ``breakpoint``."""
    b = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES if hasattr(builtins, name)}
    b.update(getattr=_safe_getattr, hasattr=_safe_hasattr, setattr=_safe_setattr,
             delattr=_safe_delattr, __import__=_restricted_import,
             print=print_fn if print_fn is not None else (lambda *a, **k: None))
    return b


CONTROLLER_MODULE = "tts_gym_controller"


def controller_globals(print_fn=None, module_name: str = CONTROLLER_MODULE) -> dict:
    """Fresh module globals for one ``exec`` of the controller code. They are the ``__dict__`` of a
    new module registered as ``sys.modules[module_name]`` (``dataclasses`` and ``typing`` look a
    class's module up there)."""
    mod = types.ModuleType(module_name)
    mod.__dict__["__builtins__"] = safe_builtins(print_fn)
    sys.modules[module_name] = mod
    return mod.__dict__


def instantiate(code, beta: float, print_fn=None, module_name: str = CONTROLLER_MODULE):
    """Execute the compiled controller module in fresh globals and return ``Controller(beta)``
    (or ``OptimalController(config={"beta": beta})`` for a file in the reference's format)."""
    g = controller_globals(print_fn, module_name)
    exec(code, g)  # noqa: S102 - checked, restricted controller code
    cls = g.get("Controller")
    if cls is not None and callable(cls):
        ctrl = cls(float(beta))
    else:
        cls = g.get("OptimalController")
        if cls is None or not callable(cls):
            raise ControllerRejected("the module does not define a callable `Controller` or "
                                     "`OptimalController`")
        ctrl = cls(config={"beta": float(beta)})
    if not callable(getattr(ctrl, "solve", None)):
        raise ControllerRejected(f"{type(ctrl).__name__} has no callable `solve(question)` method")
    return ctrl


# -- the question object handed to controllers -----------------------------------------------------

class InadmissibleAction(BaseException):
    """A controller asked for an action the environment does not allow. A ``BaseException`` so that
    ``except Exception`` in controller code does not hide it; the episode is failed regardless."""


def make_question(rq, on_violation):
    """The controller-facing question object of a strict
    :class:`tts_gym.core.reference_question.ReferenceQuestion` ``rq`` (built with
    ``inadmissible=`` :func:`inadmissible_handler`).

    It exposes exactly ``probe_new()``, ``probe_more(i)``, ``get_new_branch_final_answer()``,
    ``get_seq_and_total_tokens()``, ``get_cost_per_branch_active()``, ``probe_freq`` and
    ``num_branches``; the replay state behind it is only reachable through the bound methods'
    ``__self__``, which controller code cannot name. An inadmissible call goes to ``rq``'s
    ``inadmissible`` callback, which calls ``on_violation(message)`` (making the failure sticky)
    and raises :class:`InadmissibleAction`; ``on_violation`` here is kept for the signature.
    """
    return types.SimpleNamespace(probe_new=rq.probe_new, probe_more=rq.probe_more,
                                 get_new_branch_final_answer=rq.get_new_branch_final_answer,
                                 get_seq_and_total_tokens=rq.get_seq_and_total_tokens,
                                 get_cost_per_branch_active=rq.get_cost_per_branch_active,
                                 probe_freq=int(rq.probe_freq), num_branches=int(rq.num_branches))


def inadmissible_handler(on_violation):
    """The ``inadmissible`` callback of the question object: record, then raise
    :class:`InadmissibleAction` (a ``BaseException``, so ``except Exception`` cannot hide it)."""
    def refuse(text: str):
        msg = f"inadmissible action: {text}"
        on_violation(msg)
        raise InadmissibleAction(msg)
    return refuse


def describe_answer_problem(answer) -> str:
    """Why ``solve``'s return value cannot be committed (for the failure message)."""
    if not isinstance(answer, str):
        return f"solve() must return an answer string or None, got {type(answer).__name__}"
    return (f"solve() returned {_short_repr(answer)}, which is not the latest revealed answer of "
            f"any opened branch (return one of the branches' latest answers, or None)")


def _short_repr(x, n: int = 60) -> str:
    try:
        r = repr(x)
    except Exception:  # noqa: BLE001
        r = f"<{type(x).__name__}>"
    return r if len(r) <= n else r[:n] + "..."


# ------------------------------------------------------------------------------------------------
# OS-level confinement (child only)
# ------------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_SYS_LANDLOCK = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}


def _libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def set_parent_death_signal(expected_ppid: int | None) -> bool:
    try:
        ok = _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except Exception:  # noqa: BLE001
        ok = False
    if expected_ppid is not None and os.getppid() != expected_ppid:
        os._exit(70)  # the parent is already gone
    return ok


def isolate_network() -> str:
    """Enter a private network namespace (no interfaces up). Must run before threads exist."""
    try:
        libc = _libc()
    except Exception:  # noqa: BLE001
        return "unavailable"
    if libc.unshare(_CLONE_NEWNET) == 0:
        return "netns"
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        return "userns+netns"
    return "unavailable"


def apply_landlock(read_roots) -> str:
    """Kernel-enforced file-system and network confinement with Landlock (Linux >= 5.13).

    Allows read-only access (files and directory listings) beneath ``read_roots``; every other
    file-system access (reads elsewhere, any write, create, delete, execute) is denied, and with
    ABI >= 4 TCP bind/connect, with ABI >= 6 signals and abstract unix sockets outside the
    sandbox. Returns ``"landlock-abi<N>"`` or ``"unavailable"``.
    """
    import ctypes
    import platform
    nums = _SYS_LANDLOCK.get(platform.machine())
    if nums is None:
        return "unavailable"
    create, add_rule, restrict = nums
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return "unavailable"
    fs_all = (1 << 13) - 1            # EXECUTE .. MAKE_SYM (ABI 1)
    if abi >= 2:
        fs_all |= 1 << 13             # REFER
    if abi >= 3:
        fs_all |= 1 << 14             # TRUNCATE
    if abi >= 5:
        fs_all |= 1 << 15             # IOCTL_DEV
    net_all = 0b11 if abi >= 4 else 0  # BIND_TCP | CONNECT_TCP
    scoped = 0b11 if abi >= 6 else 0   # ABSTRACT_UNIX_SOCKET | SIGNAL
    if abi >= 6:
        attr = struct.pack("<QQQ", fs_all, net_all, scoped)
    elif abi >= 4:
        attr = struct.pack("<QQ", fs_all, net_all)
    else:
        attr = struct.pack("<Q", fs_all)
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = libc.syscall(create, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        return "unavailable"
    read_file, read_dir = 1 << 2, 1 << 3
    try:
        for root in read_roots:
            try:
                pfd = os.open(root, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                access = read_file | (read_dir if os.path.isdir(root) else 0)
                rule = ctypes.create_string_buffer(struct.pack("<Qi", access, pfd), 12)
                if libc.syscall(add_rule, ctypes.c_int(fd), ctypes.c_int(1), rule,
                                ctypes.c_uint32(0)) != 0:
                    return "unavailable"
            finally:
                os.close(pfd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return "unavailable"
        if libc.syscall(restrict, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return "unavailable"
    finally:
        os.close(fd)
    return f"landlock-abi{abi}"


def _world_readable(path: str) -> bool:
    """Whether user ``nobody`` could read ``path`` (o+x on every ancestor, o+r on itself)."""
    import stat
    p = os.path.realpath(path)
    try:
        if not os.stat(p).st_mode & stat.S_IROTH:
            return False
        while True:
            parent = os.path.dirname(p)
            if parent == p:
                return True
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            p = parent
    except OSError:
        return False


def drop_privileges(read_roots=()) -> str:
    """Become ``nobody`` when running as root (so ``/proc/<parent>/environ`` and root-owned files are
    out of reach even past the other layers). Skipped when ``nobody`` could not read the Python
    installation (e.g. a Python under ``/root``): lazy imports would break."""
    if os.geteuid() != 0:
        return "unprivileged"
    blocked = [r for r in read_roots if os.path.isdir(r) and not _world_readable(r)]
    if blocked:
        return f"root (not dropped: {blocked[0]} is not readable by nobody)"
    try:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    except OSError:
        return "root (drop failed)"
    return "nobody"


def set_limits(limits: dict, phase: str, vm_base: int = 0) -> None:
    import resource

    def lim(res, value):
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            soft, hard = resource.getrlimit(res)
            if hard == resource.RLIM_INFINITY or value <= hard:
                resource.setrlimit(res, (value, hard))

    if phase == "early":
        cpu = int(limits.get("cpu_s", 0))
        if cpu > 0:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))
        lim(resource.RLIMIT_CORE, 0)
        return
    # lock-down phase: memory budget on top of what the worker already maps
    mem_mb = int(limits.get("memory_mb", 0))
    if mem_mb > 0:
        lim(resource.RLIMIT_AS, (vm_base or _vm_size_bytes()) + mem_mb * 2**20)
    lim(resource.RLIMIT_FSIZE, 0)
    nofile = int(limits.get("nofile", 64))
    lim(resource.RLIMIT_NOFILE, nofile)
    lim(resource.RLIMIT_NPROC, 0)


def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class SandboxViolation(PermissionError):
    """Raised by the audit hook for an operation outside the sandbox's allow-list."""


_ALLOWED_EVENTS = frozenset({
    "import", "exec", "compile", "builtins.id", "object.__setattr__", "object.__delattr__",
    "array.__new__", "time.sleep", "sys._getframe",
})
_PATH_EVENTS = frozenset({"open", "os.listdir", "os.scandir"})
_ALLOWED_GETATTR = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
"""Audited attribute reads that library code needs (``inspect.signature``, used by ``dataclasses``);
frame access (``tb_frame``, ``gi_frame``, ``cr_frame``, ...) stays refused."""


def install_audit_hook(read_roots, violations: list):
    """Deny-by-default audit hook: only reading files beneath ``read_roots`` and a few harmless
    events (imports, class creation, ...) are allowed. Every refusal is appended to ``violations``
    (a sticky record the controller cannot reach) and raises :class:`SandboxViolation`.

    Refused, among others: ``open`` for writing or outside the roots (``/proc``, ``/etc``, the data
    directory, ...), ``socket.*``, ``subprocess.Popen``, ``os.system``, ``os.exec*``,
    ``os.posix_spawn``, ``os.fork``, ``os.kill``, ``ctypes.*``, ``gc.get_objects``/
    ``gc.get_referrers``, ``sys._getframe``, ``object.__getattr__`` (frame/code introspection),
    ``sys.settrace``, ``sys.addaudithook``, ``resource.setrlimit``, ``urllib.Request``.
    """
    roots = tuple(os.path.join(os.path.realpath(r), "") for r in read_roots)
    realpath = os.path.realpath
    fspath = os.fspath

    def allowed_path(path) -> bool:
        try:
            if isinstance(path, int):
                return False
            p = fspath(path)
            if isinstance(p, bytes):
                p = p.decode("utf-8", "surrogateescape")
            p = realpath(p)
        except Exception:  # noqa: BLE001
            return False
        return any((p + os.sep).startswith(r) for r in roots)

    trusted = [0]

    def hook(event, args):
        if event in _ALLOWED_EVENTS or trusted[0]:
            return
        if event == "object.__getattr__" and len(args) > 1 and args[1] in _ALLOWED_GETATTR:
            return
        if event == "open":
            path, mode = args[0], args[1]
            flags = args[2] if len(args) > 2 else 0
            write = False
            if isinstance(mode, str):
                write = any(c in mode for c in "wax+")
            if isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC
                                                     | os.O_APPEND):
                write = True
            if not write and allowed_path(path):
                return
            msg = f"sandbox: open({_short_repr(path)}, {mode!r}) refused"
        elif event in _PATH_EVENTS:
            if allowed_path(args[0] if args and args[0] is not None else "."):
                return
            msg = f"sandbox: {event}({_short_repr(args[0] if args else None)}) refused"
        elif event == "object.__getattr__" and len(args) > 1:
            msg = f"sandbox: reading attribute {_short_repr(args[1])} refused"
        else:
            msg = f"sandbox: operation {event!r} refused"
        if len(violations) < 20:
            violations.append(msg)
        raise SandboxViolation(msg)

    sys.addaudithook(hook)

    class Trusted:
        """``with trusted_section:`` lets the worker itself (never controller code, which cannot
        reach this object) format tracebacks after the lock-down."""

        def __enter__(self):
            trusted[0] += 1

        def __exit__(self, *exc):
            trusted[0] -= 1

    return Trusted()


def default_read_roots() -> list[str]:
    """Directories the controller process may read: the Python installation (stdlib and
    site-packages), the ``tts_gym`` package and the system's shared libraries."""
    import sysconfig
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            roots.add(p)
    for p in sys.path:
        if p and os.path.isdir(p) and ("site-packages" in p or "dist-packages" in p
                                       or p.startswith(sys.base_prefix) or p.startswith(sys.prefix)):
            roots.add(p)
    import tts_gym
    roots.add(os.path.dirname(os.path.abspath(tts_gym.__file__)))
    for p in ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib"):
        if os.path.isdir(p):
            roots.add(p)
    return sorted(os.path.realpath(r) for r in roots)


# ------------------------------------------------------------------------------------------------
# result frame
# ------------------------------------------------------------------------------------------------

FRAME_MAGIC = b"TTSGYM-SANDBOX-RESULT-1\n"
RESULT_DTYPES = ("int16", "int32", "int64")


def encode_frame(header: dict, arrays: dict) -> bytes:
    """``MAGIC | u64 header length | header JSON | raw arrays`` (little-endian, C order)."""
    import numpy as np
    blobs, meta, offset = [], {}, 0
    for name, arr in arrays.items():
        a = np.ascontiguousarray(arr)
        assert a.dtype.name in RESULT_DTYPES
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        meta[name] = {"dtype": a.dtype.name, "shape": list(a.shape), "offset": offset,
                      "nbytes": len(raw)}
        blobs.append(raw)
        offset += len(raw)
    header = dict(header, arrays=meta)
    hj = json.dumps(header).encode()
    return FRAME_MAGIC + struct.pack("<Q", len(hj)) + hj + b"".join(blobs)


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------

class EpisodeTimeout(BaseException):
    """The episode timer fired (a ``BaseException``; the failure is sticky anyway)."""


def _controller_traceback(exc: BaseException, limit_chars: int = 4000) -> str:
    import traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename == CONTROLLER_FILENAME]
    lines = []
    if frames:
        lines.append("Traceback (controller frames only):")
        lines.extend(traceback.format_list(frames[-12:]))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    text = "".join(lines).rstrip()
    return text if len(text) <= limit_chars else "..." + text[-limit_chars:]


def run(payload: dict, config: dict, layers: dict, out_fd: int) -> None:  # noqa: C901
    import array
    import linecache
    import random
    import time
    import traceback  # noqa: F401 - imported before the lock-down

    import numpy as np

    from tts_gym.core.reference_question import BranchTable

    # the episodes run on the question object over plain Python values (no kernels in the child:
    # the parent re-plays every action log with the compiled kernels and compares)
    t0 = time.monotonic()
    stores = payload["stores"]
    table = BranchTable.from_stores(stores)
    M = int(payload["orders"][0].shape[-1])
    qoff = np.cumsum([0] + [s.num_questions for s in stores]).tolist()
    log = array.array("h")

    printed = PrintBuffer(int(config.get("print_cap", 8192)))
    source = payload["code"]
    result = {"ok": False, "error": None, "error_kind": None, "failed_episode": None,
              "layers": layers}

    def finish(arrays=None):
        result["stdout"] = printed.text()
        result["seconds"] = round(time.monotonic() - t0, 3)
        frame = encode_frame(result, arrays or {})
        view_ = memoryview(frame)
        while view_:
            n = os.write(out_fd, view_)
            view_ = view_[n:]
        os.close(out_fd)

    unrestricted = bool(payload.get("unrestricted"))
    tree = None
    try:
        if unrestricted:  # test hook for the OS-level layers: raw Python (full builtins)
            code = compile(source, "probe.py", "exec")
        else:
            tree = check_source(source)
            code = compile(tree, CONTROLLER_FILENAME, "exec", flags=COMPILE_FLAGS, dont_inherit=True)
    except SyntaxError as exc:
        result.update(error_kind="syntax", error=f"SyntaxError: {exc.msg} (line {exc.lineno}"
                      f"{', column ' + str(exc.offset) if exc.offset else ''})"
                      + (f"\n    {exc.text.rstrip()}" if exc.text else ""))
        return finish()
    except ControllerRejected as exc:
        result.update(error_kind="rejected", error=str(exc))
        return finish()
    except (RecursionError, MemoryError, ValueError) as exc:
        result.update(error_kind="rejected", error=f"the source cannot be parsed: {exc}")
        return finish()
    linecache.cache[CONTROLLER_FILENAME] = (len(source), None, source.splitlines(True),
                                            CONTROLLER_FILENAME)
    # the read-only module copies the controller imports are built now, before the lock-down
    wanted = imported_modules(tree) if tree is not None else set()
    for full in ALLOWED_MODULES:
        if full in wanted or full not in ("scipy", REFERENCE_API_MODULE):
            restricted_module(full)
    for top, subs in ALLOWED_SUBMODULES.items():
        for sub in subs:
            if top != "scipy" or f"{top}.{sub}" in wanted or top in wanted:
                restricted_module(f"{top}.{sub}")
    reference_format = tree is not None and controller_format(tree) == "reference"

    # ---- lock-down ---------------------------------------------------------------------------
    violations: list[str] = []
    read_roots = config.get("read_roots") or default_read_roots()
    limits = config.get("limits", {})
    vm_base = _vm_size_bytes()
    if config.get("landlock", True):
        layers["landlock"] = apply_landlock(read_roots)
    layers["user"] = drop_privileges(read_roots)
    set_parent_death_signal(config.get("ppid"))
    set_limits(limits, "lockdown", vm_base)
    trusted = install_audit_hook(read_roots, violations)
    layers["audit_hook"] = "on"

    if unrestricted:
        g = {"__name__": "probe"}
        try:
            exec(code, g)  # noqa: S102
            result["ok"] = True
            result["probe"] = g.get("RESULT")
        except BaseException as exc:  # noqa: BLE001
            result.update(error_kind="exception", error=f"{type(exc).__name__}: {exc}")
        result["violations"] = violations
        return finish()

    # ---- episodes ----------------------------------------------------------------------------
    episode_timeout = float(config.get("episode_timeout", 0) or 0)
    sticky: list[str] = []

    def on_violation(msg):
        if len(sticky) < 5:
            sticky.append(msg)

    armed = [False]

    def on_alarm(signum, frame):
        if not armed[0]:
            return
        if not sticky:
            sticky.append(f"episode time limit of {episode_timeout:g} s exceeded")
        raise EpisodeTimeout(f"episode time limit of {episode_timeout:g} s exceeded")

    def disarm():
        armed[0] = False
        if episode_timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)

    if episode_timeout > 0:
        signal.signal(signal.SIGALRM, on_alarm)
    refuse = inadmissible_handler(on_violation)

    betas = [float(b) for b in payload["betas"]]
    orders = payload["orders"]        # per store: int32 [R, Q, N]
    questions = payload["questions"]  # per store: int32 [R, Q]
    offsets = array.array("q", [0])
    answers = array.array("i")
    costs = array.array("q")
    runs = []
    ep = 0
    for bi, beta in enumerate(betas):
        for si, s in enumerate(stores):
            R, J = questions[si].shape
            runs.append({"beta": beta, "store": si, "replicates": int(R), "episodes": int(R * J),
                         "first_episode": ep})
            for r in range(R):
                for j in range(J):
                    q = int(questions[si][r, j])
                    seed = (bi * 7919 + si) * 1_000_003 + r * 1009 + q
                    random.seed(seed)
                    np.random.seed(seed % 2**32)
                    where = {"beta": beta, "store": s.name, "replicate": r, "question": q}
                    rq = table.question(qoff[si] + q, orders[si][r, j], M, strict=True,
                                        raise_on_exhaustion=reference_format,
                                        inadmissible=refuse)
                    question = make_question(rq, on_violation)
                    err_kind = None
                    try:
                        if episode_timeout > 0:  # keeps firing every 50 ms once expired
                            armed[0] = True
                            signal.setitimer(signal.ITIMER_REAL, episode_timeout, 0.05)
                        try:
                            ctrl = instantiate(code, beta, printed.print)
                            answer = ctrl.solve(question)
                        finally:
                            disarm()
                    except EpisodeTimeout:
                        disarm()
                        err_kind, err = "timeout", sticky[0]
                    except InadmissibleAction as exc:
                        err_kind, err = "inadmissible", str(exc)
                    except MemoryError:
                        err_kind, err = "memory", ("memory limit exceeded (MemoryError): the "
                                                   f"controller may use about "
                                                   f"{config.get('limits', {}).get('memory_mb', '?')} MB")
                    except SandboxViolation as exc:
                        err_kind, err = "violation", f"{exc}"
                    except ControllerRejected as exc:
                        err_kind, err = "rejected", str(exc)
                    except BaseException as exc:  # noqa: BLE001 - reported to the proposer
                        with trusted:
                            err_kind, err = "exception", _controller_traceback(exc)
                    if err_kind is None and violations:
                        err_kind, err = "violation", violations[0]
                    if err_kind is None and sticky:
                        err_kind = "timeout" if "time limit" in sticky[0] else "inadmissible"
                        err = sticky[0] + " (the controller caught the error and went on)"
                    if err_kind is None and isinstance(answer, str) and type(answer) is not str:
                        answer = str.__str__(answer)  # no str-subclass code after solve()
                    if err_kind is None:
                        _, answer_id, unmapped = rq.commit(answer)
                        if unmapped:
                            err_kind, err = "inadmissible", describe_answer_problem(answer)
                    if err_kind is not None:
                        if violations and err_kind != "violation":
                            err += f"\n(sandbox: {violations[0]})"
                        result.update(error_kind=err_kind, error=err, failed_episode=where)
                        return finish()
                    log.extend(rq.actions)
                    answers.append(answer_id)
                    costs.append(rq.cost)
                    offsets.append(len(log))
                    ep += 1
    result.update(ok=True, runs=runs, num_episodes=ep)
    arrays = {"actions": np.frombuffer(log, dtype=np.int16) if len(log) else np.zeros(0, np.int16),
              "offsets": np.frombuffer(offsets, dtype=np.int64),
              "answers": np.frombuffer(answers, dtype=np.int32) if len(answers) else np.zeros(0, np.int32),
              "costs": np.frombuffer(costs, dtype=np.int64) if len(costs) else np.zeros(0, np.int64)}
    finish(arrays)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config = json.loads(argv[0]) if argv else {}
    layers = {"pdeathsig": set_parent_death_signal(config.get("ppid"))}
    layers["network"] = isolate_network() if config.get("netns", True) else "off"
    set_limits(config.get("limits", {}), "early")
    # the result channel is a private copy of fd 1; fd 1 itself then points at stderr so that stray
    # writes (C code, an escaped controller) cannot corrupt the frame
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    import pickle
    raw = sys.stdin.buffer.read()
    payload = pickle.loads(raw)  # noqa: S301 - written by the trusted parent
    del raw
    run(payload, config, layers, out_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
