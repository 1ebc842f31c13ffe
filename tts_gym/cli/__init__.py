"""``tts-gym`` command line: one sub-module per command group, each exposing ``register(subparsers)``.

Every expected failure -- a bad value, a missing, unreadable, corrupt or foreign file, a
permission problem, an unreachable server, a closed pipe -- ends the command with one line on
stderr and a non-zero status (:mod:`tts_gym.cli.errors`); ``TTS_GYM_DEBUG=1`` shows tracebacks.
"""
from __future__ import annotations

import importlib
import os
import sys

from tts_gym.cli.args import OneLineParser

# Each entry is a module under tts_gym.cli exposing ``register(subparsers)``.
COMMAND_MODULES = [
    "data",
    "collect",
    "evaluate_cmds",
    "discover",
    "eval",
]


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="tts-gym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"tts_gym.cli.{name}").register(sub)
    return parser


def _prog(args) -> str:
    parts = ["tts-gym", getattr(args, "command", None), getattr(args, "data_command", None)]
    return " ".join(p for p in parts if p)


def main(argv: list[str] | None = None) -> int:
    from tts_gym.cli.errors import report
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()   # a closed pipe shows here, not in the interpreter's exit
        return code
    except BaseException as exc:  # noqa: BLE001 - expected failures become one line
        if isinstance(exc, SystemExit) or os.environ.get("TTS_GYM_DEBUG"):
            raise
        code = report(_prog(args), exc)
        if code is None:
            raise
        return code


if __name__ == "__main__":
    sys.exit(main())
