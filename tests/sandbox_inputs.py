"""Inputs shared by the tests that run controllers through the sandbox or the discovery loop, and by
``benchmarks/sandbox_cost.py``: controller sources, hostile files as the sandbox runs them (with their
templates), a store cut short.

Plain Python (no pytest), so that a benchmark can import it too.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

HOSTILE_DIR = Path(__file__).resolve().parent / "hostile"

VOTE_MARGIN = '''
class Controller:
    """Full reads until one answer leads by 3 votes, at most 2 + 14*beta branches."""

    def __init__(self, beta):
        self.max_reads = 2 + round(14 * beta)

    def solve(self, question):
        counts = {}
        for _ in range(self.max_reads):
            a = question.get_new_branch_final_answer()
            if a is None:
                break
            counts[a] = counts.get(a, 0) + 1
            ranked = sorted(counts.values(), reverse=True)
            if ranked[0] - (ranked[1] if len(ranked) > 1 else 0) >= 3:
                break
        if not counts:
            return None
        return max(counts, key=counts.get)
'''

# passes every static rule and raises AttributeError in its first episode (no ``self.table``)
RAISES = '''
class Controller:
    def __init__(self, beta):
        self.beta = beta

    def solve(self, question):
        answer, index, finished = question.probe_new()
        return self.table[answer]
'''


# what a hostile file whose header says ``template: NAME`` is followed by before it runs
HOSTILE_TEMPLATES = {
    # finds the episode's result channel, hands it to the file's ``forge(fd)`` and exits quietly
    "forged_frames": '''

import os
import stat


def is_pipe(fd):
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        forge(next(fd for fd in range(3, 64) if is_pipe(fd)))       # the episode's result channel
        os._exit(0)
''',
}


def hostile_header(path: Path) -> dict[str, str]:
    """The ``# key: value`` lines a hostile file starts with."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(":")
        out[key.strip()] = value.strip()
    return out


def hostile_source(path: Path) -> str:
    """The controller source of a hostile file: the file, then the template its header names, if
    any (``@@NAME@@`` placeholders are the caller's to fill in)."""
    template = hostile_header(path).get("template", "").split(" ")[0]     # its name, then a note
    text = Path(path).read_text()
    return text + HOSTILE_TEMPLATES[template] if template else text


def hostile_code(name: str) -> str:
    """The source of ``tests/hostile/NAME`` without its header (whose expected message would
    otherwise travel with the code wherever it is shown)."""
    lines = hostile_source(HOSTILE_DIR / name).splitlines(keepends=True)
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "".join(lines)


def first_questions(store, n: int):
    """The store cut to its first ``n`` questions (fewer episodes per job)."""
    cut = {f.name: getattr(store, f.name) for f in dataclasses.fields(store)}
    for k, v in cut.items():
        if hasattr(v, "shape") or isinstance(v, tuple):
            cut[k] = v[:n]
    return dataclasses.replace(store, **cut)
