"""Controller files in this process, for code you trust
(``tts-gym eval --controller FILE --trusted``).

:func:`load_controller_policy` loads a controller file as a :class:`~tts_gym.policies.base.Policy`
under the same static rules and restricted namespace as in the sandbox, but **without** the
operating-system sandbox and without episode independence (module-level state of the allowed
modules lives as long as the process). Untrusted files go through
:func:`~tts_gym.discovery.sandbox.evaluation.evaluate_controller` instead.
"""
from __future__ import annotations

import os
from pathlib import Path

from tts_gym.discovery.sandbox.interface import ControllerRejected, controller_format, make_question
from tts_gym.discovery.sandbox.namespace import check_source, compile_tree, instantiate

__all__ = ["FileController", "load_controller_policy", "check_controller_source"]


def check_controller_source(source: str) -> str | None:
    """``None`` when ``source`` passes the sandbox's static rules, else the message."""
    try:
        check_source(source)
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    except ControllerRejected as exc:
        return str(exc)
    except (RecursionError, MemoryError, ValueError) as exc:
        return f"the source cannot be parsed: {type(exc).__name__}: {exc}"
    return None


class FileController:
    """An AutoTTS-style controller object (``solve(question)``) around a controller file: every
    ``solve`` executes the file in fresh restricted globals, builds the controller and hands it the
    restricted question object -- what the sandbox does, minus the processes."""

    def __init__(self, path: str | os.PathLike, beta: float = 0.5) -> None:
        import linecache
        self.path = str(path)
        source = Path(path).read_text()
        try:
            tree = check_source(source, self.path)
        except SyntaxError as exc:
            raise ControllerRejected(f"{self.path}: SyntaxError: {exc.msg} "
                                     f"(line {exc.lineno})") from exc
        self.code = compile_tree(tree, self.path)
        self.reference_format = controller_format(tree) == "reference"
        linecache.cache[self.path] = (len(source), None, source.splitlines(True), self.path)
        self.beta = float(beta)
        self.config = {"beta": self.beta}
        self.NAME = Path(path).stem
        self.violations: list[str] = []

    def solve(self, question):
        ctrl = instantiate(self.code, self.beta)
        return ctrl.solve(make_question(question, self.violations.append))


def load_controller_policy(path: str | os.PathLike, beta: float = 0.5, *, name: str | None = None,
                           strict: bool = True, timeout: float | None = None):
    """A controller file (AutoTTS ``solve(question)`` style, as written by the discovery loop) as a
    :class:`~tts_gym.policies.base.Policy`, run in this process (see the module docstring).
    ``strict`` makes ``probe_more`` on an unopened or finished branch an error, as in the
    sandbox; a file in the reference's format gets the reference's exceptions when nothing is
    left."""
    from tts_gym.policies.autotts_adapter import AutoTTSPolicy
    ctrl = FileController(path, beta)
    return AutoTTSPolicy(ctrl, name=name or f"{ctrl.NAME}(beta={float(beta):g})", strict=strict,
                         raise_on_exhaustion=ctrl.reference_format, timeout=timeout)
