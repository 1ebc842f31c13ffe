"""``tts-gym`` command line: one sub-module per command group, each exposing ``register(subparsers)``.

Every expected failure -- a bad value, a missing, unreadable, corrupt or foreign file, a
permission problem, an unreachable server, a closed pipe -- ends the command with one line on
stderr and a non-zero status (:mod:`tts_gym.cli.errors`); ``TTS_GYM_DEBUG=1`` shows tracebacks.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from tts_gym.cli.args import OneLineParser

# Each entry is a module under tts_gym.cli exposing ``register(subparsers)``; the order is the
# order of the commands in ``tts-gym --help``.
COMMAND_MODULES = [
    "evaluate_cmds",
    "eval",
    "run",
    "data",
    "discover",
    "collect",
]

DESCRIPTION = """\
Test-time scaling of reasoning LLMs, replayed. For every question, many reasoning trajectories
were sampled in advance with an intermediate answer every 500 tokens; a policy decides when to
open another trajectory, read one further, check its current answer, drop it, or answer. Its
accuracy and token cost are replayed exactly from the stored trajectories, with no LLM calls.

Without data, every command runs on a small synthetic store built in. Real stores: --data
(an HDF5 file or a directory of AutoTTS JSON files), $TTS_GYM_DATA, or `tts-gym data fetch`.
"""

EPILOG = """\
examples:
  tts-gym compare --out out                   built-in policies on the synthetic store: table + plot
  tts-gym data fetch                          download the 12 public AutoTTS stores
  tts-gym compare --model Qwen3-1.7B --benchmark aime24 --out out
  tts-gym eval --policy cmc --param beta=0.5 --model Qwen3-8B --benchmark aime25
  tts-gym eval --agent maskable_ppo_aime24 --param cost_weight=0.01
  tts-gym table --data autotts.h5             the AutoTTS main table

Run `tts-gym COMMAND --help` for the options of a command.
"""


def build_parser() -> OneLineParser:
    from tts_gym import __version__
    parser = OneLineParser(prog="tts-gym", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tts-gym {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
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
