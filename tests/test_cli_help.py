"""The command line as a user meets it: --version, help texts for every option (no Sphinx roles, no
module internals), progress on a terminal only, output lines that keep paths whole."""
from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import tts_gym
from tts_gym.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
# reStructuredText roles and literals, module paths: what a user's help must not show
INTERNALS = re.compile(r":(func|mod|class|data|meth|attr):|``|tts_gym\.[a-z_]+\.|register\(|sub-module")


def _parsers(parser: argparse.ArgumentParser, path=("tts-gym",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"tts-gym {tts_gym.__version__}"


def test_every_option_has_help_written_for_users():
    parsers = list(_parsers(build_parser()))
    assert {p[-1] for p, _ in parsers} >= {"compare", "plot", "table", "eval", "data", "fetch", "import",
                                          "synth", "info", "discover", "collect"}
    for path, parser in parsers:
        where = " ".join(path)
        for text in (parser.description, parser.epilog):
            assert not INTERNALS.search(text or ""), (where, INTERNALS.search(text).group(0))
        if len(path) > 1:
            assert parser.description, f"{where}: no description"
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip(), f"{where} {name}: no help text"
            assert not INTERNALS.search(action.help), (where, name, action.help)


def test_top_level_help_is_for_users(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "compare" in out and "tts-gym data fetch" in out and "--version" in out
    assert not INTERNALS.search(out)


def _cli(*args, tty: bool = False, timeout: float = 300):
    """Run ``python -m tts_gym.cli`` with stdout and stderr on pipes, or on a pseudo-terminal."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="80")
    cmd = [sys.executable, "-m", "tts_gym.cli", *args]
    if not tty:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=timeout)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_eval_controller_shows_progress_on_a_terminal_only():
    args = ("eval", "--controller", "agents/controllers/cmc.py", "--param", "beta=0.5", "--seeds", "2")
    rc, text = _cli(*args, tty=True)
    assert rc == 0 and "evaluating" in text and "ep/s" in text, text[-2000:]
    piped = _cli(*args)
    assert piped.returncode == 0 and "evaluating" not in piped.stderr and "ep/s" not in piped.stderr
    assert "accuracy" in piped.stdout
    rc, text = _cli(*args, "--no-progress", tty=True)
    assert rc == 0 and "evaluating" not in text


def test_compare_keeps_long_paths_on_one_line(tmp_path):
    out = tmp_path / ("a_directory_name_long_enough_that_an_80_column_console_would_wrap_it" * 2)
    res = _cli("compare", "--policies", "sc", "--seeds", "2", "--out", str(out))
    assert res.returncode == 0, res.stderr
    wrote = [line for line in res.stdout.splitlines() if line.startswith("wrote ")]
    assert len(wrote) == 1 and str(out / "scaling.png") in wrote[0] and str(out / "table.md") in wrote[0]
    assert (out / "scaling.png").is_file()
