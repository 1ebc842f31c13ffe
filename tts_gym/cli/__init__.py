"""``tts-gym`` command line: one sub-module per command group, each exposing ``register(subparsers)``."""
from __future__ import annotations

import argparse
import importlib
import sys

# Each entry is a module under tts_gym.cli exposing ``register(subparsers)``.
COMMAND_MODULES = [
    "data",
    "collect",
    "run",
    "evaluate_cmds",
    "discover",
    "eval",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tts-gym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"tts_gym.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
