"""Terminal output shared by the commands: consoles that never wrap a long line (a path stays one
piece to copy), and progress that is shown on a terminal only."""
from __future__ import annotations

import argparse
import sys

LOG_WIDTH = 200
"""Console width when the output is not a terminal (a log, a pipe): tables are not squeezed to 80."""


def console(stderr: bool = False):
    """A rich ``Console`` on stdout (or stderr) that does not wrap printed text; on a terminal it
    takes the terminal's width, elsewhere :data:`LOG_WIDTH`."""
    from rich.console import Console
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, soft_wrap=True, width=None if stream.isatty() else LOG_WIDTH)


def progress_flag(args: argparse.Namespace) -> bool | None:
    """``progress=`` for the evaluators: ``False`` with ``--no-progress`` (or ``--quiet``), else
    ``None`` = shown when stderr is a terminal."""
    if getattr(args, "no_progress", False) or getattr(args, "quiet", False):
        return False
    return None


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw a progress display now: stderr is a terminal and it was not turned off."""
    return progress_flag(args) is None and sys.stderr.isatty()


def add_progress_arg(parser) -> None:
    """``--no-progress`` (progress is drawn on stderr when it is a terminal, never in logs)."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress display (it is only drawn when stderr is a terminal)")
