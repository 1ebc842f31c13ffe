"""The controller interface: what controller code may import, what it must define, and the question
object it is handed. Everything a new controller convention changes lives here.

* :data:`ALLOWED_MODULES` / :data:`ALLOWED_SUBMODULES` / :data:`DENIED_MODULE_NAMES` -- the import
  allow-list (read-only copies of these modules, see :mod:`~tts_gym.discovery.sandbox.namespace`);
* :func:`missing_definitions` / :func:`construct` -- the controller convention: a top-level class
  ``Controller``, constructed as ``Controller(beta)``, called as ``.solve(question)``;
* :func:`make_question` -- the question object: ``probe_new()``, ``probe_more(i)``,
  ``get_new_branch_final_answer()``, ``get_seq_and_total_tokens()``, ``probe_freq``,
  ``num_branches``. Its methods are functions compiled in a sealed namespace (no modules, no
  builtins): no single attribute of the question object leads to a module or its globals, and
  every longer path passes through a ``__dunder__`` attribute the namespace refuses.
"""
from __future__ import annotations

import ast
import types

__all__ = ["ALLOWED_MODULES", "ALLOWED_SUBMODULES", "DENIED_MODULE_NAMES", "CONTROLLER_CLASS",
           "ControllerRejected", "InadmissibleAction", "missing_definitions", "construct",
           "make_question"]

ALLOWED_MODULES = ("math", "random", "collections", "itertools", "functools", "heapq", "bisect",
                   "statistics", "numpy", "dataclasses", "typing", "__future__")
"""Modules controller code may import (as read-only copies without their sub-modules, except the
ones in :data:`ALLOWED_SUBMODULES`)."""

ALLOWED_SUBMODULES = {"numpy": ("random", "linalg"), "collections": ("abc",)}

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
CONTROLLER_CONVENTION = ("a top-level class `Controller` (constructed as Controller(beta) and "
                         "called as .solve(question))")


class ControllerRejected(ValueError):
    """The controller source breaks a rule of the restricted namespace (raised before it runs)."""


class InadmissibleAction(BaseException):
    """A controller asked for an action the environment does not allow. A ``BaseException`` so that
    ``except Exception`` in controller code does not hide it; the episode is failed regardless."""


def missing_definitions(tree: ast.Module) -> list[str]:
    """Rule messages for what the module must define at top level and does not."""
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return [] if CONTROLLER_CLASS in defined else [f"the file must define {CONTROLLER_CONVENTION}"]


def construct(namespace: dict, beta: float):
    """The controller object of an executed controller module."""
    cls = namespace.get(CONTROLLER_CLASS)
    if cls is None or not callable(cls):
        raise ControllerRejected(f"the module does not define a callable `{CONTROLLER_CLASS}`")
    ctrl = cls(float(beta))
    if not callable(getattr(ctrl, "solve", None)):
        raise ControllerRejected(f"{CONTROLLER_CLASS}(beta) has no callable `solve(question)` "
                                 f"method")
    return ctrl


# -- the question object ---------------------------------------------------------------------------

_SEALED_SOURCE = """
def seal(probe_new_, probe_more_, final_answer_, tokens_):
    def probe_new():
        return probe_new_()
    def probe_more(branch):
        return probe_more_(branch)
    def get_new_branch_final_answer():
        return final_answer_()
    def get_seq_and_total_tokens():
        return tokens_()
    return probe_new, probe_more, get_new_branch_final_answer, get_seq_and_total_tokens
"""
_SEALED_CODE = compile(_SEALED_SOURCE, "<question object>", "exec")


def make_question(rq, on_violation):
    """The controller-facing question object around a strict
    :class:`tts_gym.policies.autotts_adapter.ReplayQuestion` ``rq``.

    An inadmissible call calls ``on_violation(message)`` (which makes the failure sticky) and
    raises :class:`InadmissibleAction`.
    """
    def bad(call: str, exc: BaseException):
        text = str(exc)
        msg = (f"inadmissible action: {text}" if text.startswith(call)
               else f"inadmissible action {call}: {text}")
        on_violation(msg)
        raise InadmissibleAction(msg)

    def probe_more(branch):
        try:
            return rq.probe_more(branch)
        except (ValueError, TypeError) as exc:
            bad(f"probe_more({branch!r})", exc)

    sealed = {"__builtins__": {}}
    exec(_SEALED_CODE, sealed)  # noqa: S102 - our own constant source
    new, more, final, tokens = sealed["seal"](rq.probe_new, probe_more,
                                              rq.get_new_branch_final_answer,
                                              rq.get_seq_and_total_tokens)
    del sealed["seal"]
    return types.SimpleNamespace(probe_new=new, probe_more=more,
                                 get_new_branch_final_answer=final,
                                 get_seq_and_total_tokens=tokens,
                                 probe_freq=int(rq.probe_freq),
                                 num_branches=int(rq._view.branch_limit))
