"""Command-line options from a dataclass, CleanRL style: each field is an option, and the string
literal under a field is its help text.

The programs under ``agents/`` declare every setting once, in an ``Args`` dataclass at the top of
the file, and read it with :func:`parse_dataclass`::

    @dataclass
    class Args:
        timesteps: int = 1_000_000
        \"\"\"environment steps to train for\"\"\"
        cost_weight_range: tuple[float, float] = (1e-3, 0.1)
        \"\"\"range the per-episode cost weight is drawn from (log-uniform)\"\"\"

    args = parse_dataclass(Args)      # --timesteps N --cost-weight-range LOW HIGH

An ``Args`` may extend another dataclass (``tts_gym.rl.TrainingArgs``): the inherited fields come
first, with their help, and a field declared again keeps its place but takes the new default and help.

Booleans (also ``bool | None``) get ``--flag`` / ``--no-flag``; ``tuple[X, Y]`` takes two values, ``tuple[X, ...]`` and
lists one or more; ``X | None`` fields default to ``None`` and take an ``X``.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
from typing import Any, Sequence

__all__ = ["parse_dataclass", "field_docs"]


def field_docs(cls) -> dict[str, str]:
    """The string literal under each field of dataclass ``cls`` and of the dataclasses it extends,
    by field name (a field declared again takes its latest literal; none for a class whose source
    cannot be read, e.g. one defined in an interactive session)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls) -> dict[str, str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _scalar(annotation: str, default: Any):
    if default is not None and not isinstance(default, (list, tuple)):
        return type(default)
    for name, kind in (("int", int), ("float", float)):
        if name in annotation.replace("None", ""):
            return kind
    return str


def parse_dataclass(cls, argv: Sequence[str] | None = None, description: str | None = None):
    """An instance of dataclass ``cls`` from the command line (``argv``; default ``sys.argv[1:]``)."""
    docs = field_docs(cls)
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        annotation = f.type if isinstance(f.type, str) else str(f.type)
        help_text = f"{docs.get(f.name, '')} (default: {default!r})".strip()
        if isinstance(default, bool) or (default is None and "bool" in annotation):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif isinstance(default, (list, tuple)):
            element = type(default[0]) if default else _scalar(annotation, None)
            fixed = annotation.startswith("tuple[") and "..." not in annotation
            nargs = len(default) if fixed else "+"
            parser.add_argument(flag, nargs=nargs, type=element, default=default, help=help_text)
        else:
            parser.add_argument(flag, type=_scalar(annotation, default), default=default, help=help_text)
    values = vars(parser.parse_args(argv))
    for f in dataclasses.fields(cls):
        if isinstance(values[f.name], list) and isinstance(f.default, tuple):
            values[f.name] = tuple(values[f.name])
    return cls(**values)
