"""The restricted namespace controller code runs in (the Python-level layer, defence in depth).

Static rules (:func:`check_source`, before anything runs):

* no ``__dunder__`` name, attribute, keyword, argument, import alias or string constant outside
  small allow-lists (no ``__class__``, ``__dict__``, ``__globals__``, ``__subclasses__``,
  ``__closure__``, ``__traceback__``, ``__builtins__``...), none of :data:`DENIED_ATTRIBUTES`
  (frames, code objects, generator internals, ``format``), also not in class patterns
  (``case C(__globals__=g)``);
* no definition of special methods outside :data:`ALLOWED_DUNDER_DEFINITIONS` (no
  ``__getattr__``, ``__getattribute__``, ``__init_subclass__``, ``__set_name__``,
  ``__instancecheck__``, ``__del__``...), no class keywords (``metaclass=``);
* imports only from the allow-list of :mod:`~tts_gym.discovery.sandbox.interface`, no
  ``import *``, no relative imports; at most :data:`MAX_SOURCE_CHARS` characters; the definitions
  the controller convention requires.

At run time (:func:`controller_globals`): fresh module globals per episode whose builtins are a
whitelist (no ``open``, ``eval``, ``exec``, ``compile``, ``globals``, ``vars``, ``input``,
``breakpoint``), checked ``getattr``/``setattr``/``hasattr``/``delattr``, ``type`` with one
argument only (no classes built from dictionaries), imports answered with read-only module copies
(``dataclasses.make_dataclass`` with checked names, ``functools`` without ``update_wrapper`` /
``wraps``). The audit hook of the per-episode process adds a kernel-adjacent layer
(:mod:`~tts_gym.discovery.sandbox.worker`).
"""
from __future__ import annotations

import ast
import builtins
import sys
import threading
import types

from tts_gym.discovery.sandbox.interface import (
    ALLOWED_MODULES, ALLOWED_SUBMODULES, DENIED_MODULE_NAMES, LAZY_MODULES, ONLY_SUBMODULES,
    REFERENCE_API_MODULE, ControllerRejected, construct, missing_definitions, module_overrides,
    reference_names,
)

__all__ = ["check_source", "compile_controller", "compile_tree", "controller_globals",
           "instantiate", "imported_modules", "prepare_modules", "COMPILE_FLAGS",
           "restricted_module", "safe_builtins", "PrintBuffer", "ControllerRejected",
           "CONTROLLER_FILENAME", "DENIED_ATTRIBUTES", "ALLOWED_DUNDER_ATTRIBUTES",
           "ALLOWED_DUNDER_DEFINITIONS", "MAX_SOURCE_CHARS"]

DENIED_ATTRIBUTES = frozenset({
    # frames, code objects, generator/coroutine internals, closure cells
    "gi_frame", "gi_code", "gi_yieldfrom", "gi_suspended", "cr_frame", "cr_code", "cr_await",
    "cr_origin", "ag_frame", "ag_code", "ag_await", "f_back", "f_globals", "f_locals",
    "f_builtins", "f_code", "f_trace", "f_lasti", "f_lineno", "tb_frame", "tb_next", "tb_lasti",
    "co_code", "co_consts", "co_names", "func_globals", "func_code", "cell_contents",
    # attribute traversal inside format strings ("{0.x.y}".format(obj))
    "format", "format_map",
    # numpy escape hatches
    "ctypes", "tofile", "dump",
})
"""Attribute names controller code may not use (besides every ``__dunder__`` outside
:data:`ALLOWED_DUNDER_ATTRIBUTES`)."""

ALLOWED_DUNDER_DEFINITIONS = frozenset({
    "__init__", "__post_init__", "__len__", "__iter__", "__next__", "__contains__",
    "__getitem__", "__setitem__", "__delitem__", "__missing__", "__eq__", "__ne__", "__lt__",
    "__le__", "__gt__", "__ge__", "__hash__", "__repr__", "__str__", "__bool__", "__call__",
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__floordiv__", "__mod__", "__neg__", "__abs__", "__enter__", "__exit__",
})
"""Special methods controller classes may define (no attribute hooks, descriptors, class-creation
hooks, finalizers, pickling or formatting hooks)."""

ALLOWED_DUNDER_ATTRIBUTES = ALLOWED_DUNDER_DEFINITIONS | {"__name__", "__qualname__", "__doc__"}
"""The only ``__dunder__`` attributes controller code may use."""
ALLOWED_DUNDER_NAMES = frozenset({"__name__", "__slots__", "__all__", "__doc__"})
ALLOWED_DUNDER_STRINGS = ALLOWED_DUNDER_ATTRIBUTES | ALLOWED_DUNDER_NAMES | {"__main__"}

CONTROLLER_FILENAME = "controller.py"
MAX_SOURCE_CHARS = 200_000

_SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "ascii", "bin", "bool", "bytes", "callable", "chr", "classmethod",
    "complex", "dict", "divmod", "enumerate", "filter", "float", "format", "frozenset", "hash",
    "hex", "id", "int", "isinstance", "issubclass", "iter", "len", "list", "map", "max", "min",
    "next", "object", "oct", "ord", "pow", "property", "range", "repr", "reversed", "round", "set",
    "slice", "sorted", "staticmethod", "str", "sum", "super", "tuple", "zip", "bytearray",
    "NotImplemented", "Ellipsis", "None", "True", "False",
    "ArithmeticError", "AssertionError", "AttributeError", "BaseException", "Exception",
    "IndexError", "KeyError", "LookupError", "NotImplementedError", "OverflowError",
    "RuntimeError", "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
    "FloatingPointError", "RecursionError", "MemoryError",
    "__build_class__",
)


def _is_dunder(name: str) -> bool:
    return isinstance(name, str) and len(name) > 4 and name.startswith("__") and name.endswith("__")


def _attr_denied(name: str) -> bool:
    return (_is_dunder(name) and name not in ALLOWED_DUNDER_ATTRIBUTES) or name in DENIED_ATTRIBUTES


class _Checker(ast.NodeVisitor):
    def __init__(self) -> None:
        self.errors: list[str] = []

    def _err(self, node, msg: str) -> None:
        self.errors.append(f"line {getattr(node, 'lineno', '?')}: {msg}")

    def _name(self, node, name, what: str) -> None:
        if _is_dunder(name) and name not in ALLOWED_DUNDER_NAMES:
            self._err(node, f"{what} '{name}' is not allowed in controller code")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if _attr_denied(node.attr):
            self._err(node, f"attribute '.{node.attr}' is not allowed in controller code")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._name(node, node.id, "name")
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self._name(node, node.arg, "argument")
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is not None and _attr_denied(node.arg):
            self._err(node, f"keyword '{node.arg}' is not allowed in controller code")
        self.generic_visit(node)

    def visit_Global(self, node) -> None:
        for n in node.names:
            self._name(node, n, "name")

    visit_Nonlocal = visit_Global

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._name(node, node.name, "name")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if _is_dunder(node.value) and node.value not in ALLOWED_DUNDER_STRINGS:
            self._err(node, f"the string {node.value!r} is not allowed in controller code")

    def _definition(self, node) -> None:
        if _is_dunder(node.name) and node.name not in ALLOWED_DUNDER_DEFINITIONS:
            self._err(node, f"defining '{node.name}' is not allowed in controller code")

    def visit_FunctionDef(self, node) -> None:
        self._definition(node)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._definition(node)
        if node.keywords:
            self._err(node, "class keywords (metaclass=...) are not allowed in controller code")
        self.generic_visit(node)

    def visit_MatchClass(self, node) -> None:
        for a in node.kwd_attrs:
            if _attr_denied(a):
                self._err(node, f"attribute '{a}' in a class pattern is not allowed in "
                                f"controller code")
        self.generic_visit(node)

    def visit_MatchAs(self, node) -> None:
        if node.name:
            self._name(node, node.name, "name")
        self.generic_visit(node)

    def visit_MatchStar(self, node) -> None:
        if node.name:
            self._name(node, node.name, "name")

    def visit_MatchMapping(self, node) -> None:
        if node.rest:
            self._name(node, node.rest, "name")
        self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> None:
        if node.asname:
            self._name(node, node.asname, "name")

    def _check_module(self, node, name: str) -> None:
        if name == REFERENCE_API_MODULE:
            return
        top = name.split(".")[0]
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
            elif node.module == REFERENCE_API_MODULE and alias.name not in reference_names():
                self._err(node, f"'{alias.name}' is not a name of {REFERENCE_API_MODULE}")
        self.generic_visit(node)


_AST_LOCK = threading.Lock()
"""CPython before 3.11.8 keeps the AST parser's and validator's recursion depth per interpreter,
not per thread: two threads parsing (or compiling an AST) at once can raise ``SystemError: AST
constructor recursion depth mismatch``. Controller code is parsed and compiled under this lock."""


def check_source(source: str, filename: str = CONTROLLER_FILENAME) -> ast.Module:
    """Parse and check controller source (see the module docstring); returns the AST or raises
    :class:`SyntaxError` / :class:`ControllerRejected` (every rule violation in one message)."""
    if not isinstance(source, str):
        raise ControllerRejected("controller source must be text")
    if len(source) > MAX_SOURCE_CHARS:
        raise ControllerRejected(f"controller source is {len(source)} characters; the limit is "
                                 f"{MAX_SOURCE_CHARS}")
    with _AST_LOCK:
        tree = ast.parse(source, filename=filename)
    checker = _Checker()
    checker.visit(tree)
    errors = checker.errors + missing_definitions(tree)
    if errors:
        raise ControllerRejected("controller rejected by the sandbox rules:\n  " +
                                 "\n  ".join(errors[:20]))
    return tree


COMPILE_FLAGS = __import__("__future__").annotations.compiler_flag
"""Controller code is compiled with postponed evaluation of annotations (PEP 563): the module is
executed afresh for every episode, and evaluating its annotations (``Optional[Dict[str, Any]]``
on every method) was a large part of that cost. Only code that reads annotations at run time
sees a difference (strings instead of objects)."""


def compile_controller(source: str, filename: str = CONTROLLER_FILENAME):
    """:func:`check_source` + ``compile``: the code object to ``exec`` in
    :func:`controller_globals`."""
    return compile_tree(check_source(source, filename), filename)


def compile_tree(tree: ast.Module, filename: str):
    """The code object of a checked controller's AST."""
    with _AST_LOCK:
        return compile(tree, filename, "exec", flags=COMPILE_FLAGS, dont_inherit=True)


def imported_modules(tree: ast.Module) -> set:
    """Modules (and their top-level packages) the module ``tree`` imports."""
    out = set()
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for name in names:
            out.add(name)
            out.add(name.split(".")[0])
    return out


# -- read-only module copies -----------------------------------------------------------------------

def _checked_name(name) -> str:
    if not isinstance(name, str):
        raise TypeError("attribute name must be a string")
    if _attr_denied(name):
        raise AttributeError(f"attribute {name!r} is not available to controller code")
    return name


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


def _checked_make_dataclass(real):
    def make_dataclass(cls_name, fields, *, bases=(), namespace=None, **kw):
        _checked_name(cls_name)
        for f in fields:
            _checked_name(f if isinstance(f, str) else f[0])
        for key in (namespace or {}):
            _checked_name(key)
        if any(isinstance(b, type) and issubclass(b, type) for b in bases):
            raise TypeError("metaclasses are not available to controller code")
        return real(cls_name, fields, bases=bases, namespace=namespace, **kw)
    return make_dataclass


_PROXIES: dict[str, object] = {}


def _build_proxy(full: str):
    import importlib
    mod = importlib.import_module(full)
    top = full.split(".")[0]
    denied = DENIED_MODULE_NAMES.get(full, set())
    subs = ALLOWED_SUBMODULES.get(top, ()) if full == top else ()
    out = {}
    if full == REFERENCE_API_MODULE:
        out = {k: getattr(mod, k) for k in reference_names()}
        out["__name__"] = full
        return _module_proxy(full, out)
    for key in (() if full in ONLY_SUBMODULES else dir(mod)):
        if key.startswith("_") or key in denied:
            continue
        try:
            val = getattr(mod, key)
        except Exception:  # noqa: BLE001 - lazy attributes that fail are simply absent
            continue
        if isinstance(val, types.ModuleType):
            continue
        out[key] = val
    if full == "dataclasses" and "make_dataclass" in out:
        out["make_dataclass"] = _checked_make_dataclass(out["make_dataclass"])
    for s in subs:
        out[s] = restricted_module(f"{top}.{s}")
    out.update(module_overrides(full))
    out["__name__"] = full
    return _module_proxy(full, out)


def restricted_module(full: str):
    """The read-only copy of an allowed module (built once per process)."""
    p = _PROXIES.get(full)
    if p is None:
        p = _PROXIES[full] = _build_proxy(full)
    return p


def prepare_modules(wanted=None) -> None:
    """Build the module copies now (the worker does this before it locks itself down): every
    allowed module, those of :data:`~tts_gym.discovery.sandbox.interface.LAZY_MODULES` only when
    in ``wanted`` (module names the controller imports, :func:`imported_modules`; ``None``: all)."""
    if wanted is not None and REFERENCE_API_MODULE in wanted:
        wanted = set(wanted) | {"scipy"}     # its Beta-majority helpers use scipy.stats
    def needed(full: str) -> bool:
        return wanted is None or full not in LAZY_MODULES or full in wanted or (
            "." in full and full.split(".")[0] in wanted)
    for full in ALLOWED_MODULES:
        if needed(full):
            restricted_module(full)
    for top, subs in ALLOWED_SUBMODULES.items():
        for s in subs:
            if needed(f"{top}.{s}"):
                restricted_module(f"{top}.{s}")


def _restricted_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level:
        raise ImportError("relative imports are not allowed in controller code")
    if name == REFERENCE_API_MODULE:
        if not fromlist:
            raise ImportError(f"import {name} is not available; use 'from {name} import ...'")
        return restricted_module(name)
    top = name.split(".")[0]
    if top not in ALLOWED_MODULES:
        raise ImportError(f"import of {name!r} is not allowed in controller code")
    if "." in name and name.split(".", 1)[1] not in ALLOWED_SUBMODULES.get(top, ()):
        raise ImportError(f"import of {name!r} is not allowed in controller code")
    if fromlist:
        return restricted_module(name)
    return restricted_module(top)


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


def _safe_type(*args):
    """``type(x)``; the three-argument form (a class from a dictionary, dunders included) is
    refused."""
    if len(args) != 1:
        raise TypeError("type() takes exactly one argument in controller code")
    return type(args[0])


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
        s = "".join(str.__str__(p) for p in self.parts)
        if self.dropped:
            s += f"\n[... {self.dropped} more characters of printed output dropped]"
        return s


def safe_builtins(print_fn=None) -> dict:
    """The builtins controller code sees (see the module docstring)."""
    b = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES if hasattr(builtins, name)}
    b.update(getattr=_safe_getattr, hasattr=_safe_hasattr, setattr=_safe_setattr,
             delattr=_safe_delattr, type=_safe_type, __import__=_restricted_import,
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
    """Execute the compiled controller module in fresh globals and return the controller object."""
    g = controller_globals(print_fn, module_name)
    exec(code, g)  # noqa: S102 - checked, restricted controller code
    return construct(g, beta)
