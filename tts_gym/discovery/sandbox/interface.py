"""The controller interface: what controller code may import, what it must define, and the question
object it is handed. Everything a new controller convention changes lives here.

* :data:`ALLOWED_MODULES` / :data:`ALLOWED_SUBMODULES` / :data:`DENIED_MODULE_NAMES` /
  :data:`ONLY_SUBMODULES` / :data:`LAZY_MODULES` -- the import allow-list (read-only copies of
  these modules, see :mod:`~tts_gym.discovery.sandbox.namespace`), including the project's copy of
  the reference's controller API, :data:`REFERENCE_API_MODULE`;
* :func:`missing_definitions` / :func:`controller_format` / :func:`construct` -- the controller
  conventions: a top-level class ``Controller`` constructed as ``Controller(beta)`` (this
  project's format), or ``OptimalController`` constructed as
  ``OptimalController(config={"beta": beta})`` (the reference's ``method.py`` format, used when the
  file has no ``Controller``); either is called as ``.solve(question)``;
* :func:`make_question` -- the question object: ``probe_new()``, ``probe_more(i)``,
  ``get_new_branch_final_answer()``, ``get_seq_and_total_tokens()``,
  ``get_cost_per_branch_active()``, ``probe_freq``, ``num_branches``. Its methods are functions
  compiled in a sealed namespace (no modules, no builtins): no single attribute of the question
  object leads to a module or its globals, and every longer path passes through a ``__dunder__``
  attribute the namespace refuses. For the reference's format the question raises the
  reference's exceptions when nothing is left (``raise_on_exhaustion``).
"""
from __future__ import annotations

import ast
import types

__all__ = ["ALLOWED_MODULES", "ALLOWED_SUBMODULES", "DENIED_MODULE_NAMES", "ONLY_SUBMODULES",
           "LAZY_MODULES", "REFERENCE_API_MODULE", "CONTROLLER_CLASS", "CONTROLLER_CLASSES",
           "ControllerRejected", "InadmissibleAction", "missing_definitions", "controller_format",
           "construct", "make_question", "inadmissible_handler", "reference_names",
           "module_overrides"]

REFERENCE_API_MODULE = "tts_gym.discovery.reference_api"
"""The project's copy of the reference's controller API (``LLMDesignedMethod``, helpers, seeds);
controllers see only its :data:`~tts_gym.discovery.reference_api.REFERENCE_NAMES`."""

ALLOWED_MODULES = ("math", "random", "collections", "itertools", "functools", "heapq", "bisect",
                   "statistics", "numpy", "dataclasses", "typing", "abc", "scipy", "__future__",
                   REFERENCE_API_MODULE)
"""Modules controller code may import (as read-only copies without their sub-modules, except the
ones in :data:`ALLOWED_SUBMODULES`; of ``scipy`` only ``scipy.stats``)."""

ALLOWED_SUBMODULES = {"numpy": ("random", "linalg"), "collections": ("abc",), "scipy": ("stats",)}

ONLY_SUBMODULES = frozenset({"scipy"})
"""Allowed modules whose own attributes stay hidden (only the allowed sub-modules are exposed)."""

LAZY_MODULES = frozenset({"scipy", "scipy.stats", REFERENCE_API_MODULE})
"""Allowed modules whose copies are built only for a controller that imports them (``scipy``
costs about a second)."""

DENIED_MODULE_NAMES = {
    # file I/O, introspection of source, configuration / self-test helpers
    "numpy": {"load", "save", "savez", "savez_compressed", "loadtxt", "savetxt", "genfromtxt",
              "fromfile", "memmap", "fromregex", "DataSource", "info", "show_config",
              "show_runtime", "test", "get_include", "source", "lookfor", "ctypeslib"},
    # evaluate string annotations (eval) -> could run unchecked code
    "typing": {"get_type_hints", "ForwardRef", "evaluate_forward_ref"},
    # update_wrapper / wraps copy arbitrary (dunder) attributes named by strings
    "functools": {"singledispatch", "singledispatchmethod", "update_wrapper", "wraps",
                  "WRAPPER_ASSIGNMENTS", "WRAPPER_UPDATES"},
}

CONTROLLER_CLASS = "Controller"
CONTROLLER_CLASSES = (CONTROLLER_CLASS, "OptimalController")
"""Top-level classes a controller file may define: ``Controller(beta)`` (this project's format) or
``OptimalController(config={"beta": beta})`` (the reference's ``method.py`` format; used when the
file has no ``Controller``)."""
CONTROLLER_CONVENTION = ("a top-level class `Controller` (constructed as Controller(beta)) or "
                         "`OptimalController` (the reference's format, constructed as "
                         "OptimalController(config={'beta': beta})), called as .solve(question)")


def reference_names() -> tuple:
    """The names of :data:`REFERENCE_API_MODULE` controller code may import."""
    from tts_gym.discovery.reference_api import REFERENCE_NAMES
    return REFERENCE_NAMES


def module_overrides(full: str) -> dict:
    """Attributes of the read-only copy of allowed module ``full`` that replace the module's own:
    ``scipy.stats.beta`` with memoised ``cdf``/``sf`` (same values, see
    :mod:`tts_gym.discovery.reference_api`)."""
    if full == "scipy.stats":
        from tts_gym.discovery.reference_api import beta
        return {"beta": beta.get()}
    return {}


class ControllerRejected(ValueError):
    """The controller source breaks a rule of the restricted namespace (raised before it runs)."""


class InadmissibleAction(BaseException):
    """A controller asked for an action the environment does not allow. A ``BaseException`` so that
    ``except Exception`` in controller code does not hide it; the episode is failed regardless."""


def _top_level_names(tree: ast.Module) -> set:
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return defined


def missing_definitions(tree: ast.Module) -> list[str]:
    """Rule messages for what the module must define at top level and does not."""
    if _top_level_names(tree) & set(CONTROLLER_CLASSES):
        return []
    return [f"the file must define {CONTROLLER_CONVENTION}"]


def controller_format(tree: ast.Module) -> str:
    """``"controller"`` when the module defines a top-level ``Controller``, else ``"reference"``
    (``OptimalController``)."""
    return "controller" if CONTROLLER_CLASS in _top_level_names(tree) else "reference"


def construct(namespace: dict, beta: float):
    """The controller object of an executed controller module: ``Controller(beta)``, or
    ``OptimalController(config={"beta": beta})`` for a file in the reference's format."""
    cls = namespace.get(CONTROLLER_CLASS)
    if cls is not None and callable(cls):
        ctrl = cls(float(beta))
    else:
        cls = namespace.get("OptimalController")
        if cls is None or not callable(cls):
            raise ControllerRejected(f"the module does not define a callable `{CONTROLLER_CLASS}` "
                                     f"or `OptimalController`")
        ctrl = cls(config={"beta": float(beta)})
    if not callable(getattr(ctrl, "solve", None)):
        raise ControllerRejected(f"{type(ctrl).__name__} has no callable `solve(question)` method")
    return ctrl


# -- the question object ---------------------------------------------------------------------------

_SEALED_SOURCE = """
def seal(probe_new_, probe_more_, final_answer_, tokens_, per_branch_):
    def probe_new():
        return probe_new_()
    def probe_more(branch):
        return probe_more_(branch)
    def get_new_branch_final_answer():
        return final_answer_()
    def get_seq_and_total_tokens():
        return tokens_()
    def get_cost_per_branch_active():
        return per_branch_()
    return (probe_new, probe_more, get_new_branch_final_answer, get_seq_and_total_tokens,
            get_cost_per_branch_active)
"""
_SEALED_CODE = compile(_SEALED_SOURCE, "<question object>", "exec")


def make_question(rq, on_violation=None):
    """The controller-facing question object around a strict question ``rq``: a
    :class:`tts_gym.policies.autotts_adapter.ReplayQuestion` (over the kernels) or a
    :class:`tts_gym.core.reference_question.ReferenceQuestion` (plain Python; built with
    ``inadmissible=`` :func:`inadmissible_handler` to make its refusals sticky).

    An inadmissible ``probe_more`` calls ``on_violation(message)`` (which makes the failure
    sticky) and raises :class:`InadmissibleAction`.
    """
    def bad(call: str, exc: BaseException):
        text = str(exc)
        msg = (f"inadmissible action: {text}" if text.startswith(call)
               else f"inadmissible action {call}: {text}")
        if on_violation is not None:
            on_violation(msg)
        raise InadmissibleAction(msg)

    def probe_more(branch):
        try:
            return rq.probe_more(branch)
        except (ValueError, TypeError) as exc:
            bad(f"probe_more({branch!r})", exc)

    if getattr(rq, "_bad", None) is not None:
        probe_more = rq.probe_more    # refuses through its own handler: one call less per probe

    sealed = {"__builtins__": {}}
    exec(_SEALED_CODE, sealed)  # noqa: S102 - our own constant source
    new, more, final, tokens, per_branch = sealed["seal"](
        rq.probe_new, probe_more, rq.get_new_branch_final_answer, rq.get_seq_and_total_tokens,
        rq.get_cost_per_branch_active)
    del sealed["seal"]
    limit = rq.num_branches if hasattr(rq, "num_branches") else rq._view.branch_limit
    return types.SimpleNamespace(probe_new=new, probe_more=more,
                                 get_new_branch_final_answer=final,
                                 get_seq_and_total_tokens=tokens,
                                 get_cost_per_branch_active=per_branch,
                                 probe_freq=int(rq.probe_freq), num_branches=int(limit))


def inadmissible_handler(on_violation):
    """The ``inadmissible`` callback of a :class:`~tts_gym.core.reference_question.
    ReferenceQuestion`: record, then raise :class:`InadmissibleAction` (a ``BaseException``, so
    ``except Exception`` cannot hide it)."""
    def refuse(text: str):
        msg = f"inadmissible action: {text}"
        on_violation(msg)
        raise InadmissibleAction(msg)
    return refuse
