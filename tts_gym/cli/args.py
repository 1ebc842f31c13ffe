"""Argument types with declared ranges for the command line: a value outside its range is refused
by the parser with one line naming the flag, the value and the range."""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def int_in(low: int | None = None, high: int | None = None):
    """An ``int`` argument type accepting ``low <= value <= high`` (``None``: unbounded)."""
    rng = f"[{'-inf' if low is None else _fmt(low)}, {'inf' if high is None else _fmt(high)}]"

    def parse(text: str) -> int:
        try:
            v = int(text.strip(), 10)
        except (ValueError, AttributeError):
            raise argparse.ArgumentTypeError(f"must be an integer in {rng}, got {text!r}") from None
        if (low is not None and v < low) or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"must be an integer in {rng}, got {v}")
        return v

    parse.__name__ = "integer"
    return parse


def float_in(low: float | None = None, high: float | None = None, *, low_open: bool = False,
             high_open: bool = False):
    """A finite ``float`` argument type inside ``[low, high]`` (or open ends)."""
    rng = (("(" if low_open else "[") + ("-inf" if low is None else _fmt(low)) + ", "
           + ("inf" if high is None else _fmt(high)) + (")" if high_open or high is None else "]"))

    def parse(text: str) -> float:
        try:
            v = float(text.strip())
        except (ValueError, AttributeError):
            raise argparse.ArgumentTypeError(f"must be a number in {rng}, got {text!r}") from None
        bad = not math.isfinite(v)
        if low is not None:
            bad |= v <= low if low_open else v < low
        if high is not None:
            bad |= v >= high if high_open else v > high
        if bad:
            raise argparse.ArgumentTypeError(f"must be a number in {rng}, got {text.strip()}")
        return v

    parse.__name__ = "number"
    return parse


MAX_SEEDS = 1_000_000
MAX_WORKERS = 4096

seeds_type = int_in(1, MAX_SEEDS)
workers_type = int_in(1, MAX_WORKERS)
level_type = float_in(0.0, 1.0, low_open=True, high_open=True)
positive_int = int_in(1, None)
non_negative_int = int_in(0, None)
positive_float = float_in(0.0, None, low_open=True)
non_negative_float = float_in(0.0, None)
probability = float_in(0.0, 1.0)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``prog: error: ...``), exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_command(subparsers, name: str, *, help: str, description: str, epilog: str,
                add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace], int]) -> None:
    """Command ``name`` of ``tts-gym``: its options from ``add_arguments``, carried out by ``run``."""
    p = subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def run_standalone(prog: str, argv: list[str] | None, *, description: str, epilog: str,
                   add_arguments: Callable[[argparse.ArgumentParser], None],
                   run: Callable[[argparse.Namespace], int], interrupted: str) -> int:
    """A command run on its own (``python -m tts_gym.cli.NAME``) with the options of ``tts-gym NAME``;
    an interrupt ends it with status 130 and the line ``interrupted (<interrupted>)``."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"interrupted ({interrupted})", file=sys.stderr)
        return 130
