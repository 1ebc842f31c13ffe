"""The sandbox's output channel: binary records, written by the worker, parsed defensively here.

Everything that comes out of a sandbox is untrusted: the parser accepts fixed-width integers and
length-prefixed text only (no JSON, no pickle, no floats), bounds every length, decodes text with
replacement and strips control characters, and raises :class:`FrameError` (never anything else)
on any inconsistency; the caller turns that into a failed candidate.

A record is ``tag (1 byte) | payload length (u32) | payload``, little-endian. The worker writes::

    H  hello    "key=value" lines: the confinement layers it set up
    F  fatal    "kind" line, then the message (the controller never ran: syntax, rules, ...)
    S  start    u32 episode
    C  chunk    u32 episode, then bytes the episode's process wrote (forwarded untouched)
    X  end      u32 episode, i32 wait status, u8 flags (1: killed at the time limit,
                2: output limit), u32 wall milliseconds
    D  done     u32 episodes run

and the bytes of an episode's chunks are themselves records, written by that episode's process::

    V  violation   the message of a refused operation (sent the moment it is refused)
    R  result      i32 committed answer id, i64 cost, u32 n, n x i16 actions, then printed text
    E  error       u8 kind (index in ERROR_KINDS), u32 message length, message, printed text
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

__all__ = ["FrameError", "ERROR_KINDS", "record", "result_record", "error_record", "Episode",
           "Stream", "decode_stream", "clean_text", "write_all"]

ERROR_KINDS = ("exception", "inadmissible", "memory", "violation", "rejected", "sandbox",
               "timeout", "syntax", "crash")
MAX_TEXT = 20_000
MAX_ACTIONS_PER_EPISODE = 1 << 20

_HEAD = struct.Struct("<cI")
_U32 = struct.Struct("<I")
_END = struct.Struct("<IiBI")
_RESULT = struct.Struct("<iqI")
_ERROR = struct.Struct("<BI")


class FrameError(ValueError):
    """The sandbox's output is malformed (the message says how)."""


# -- writing (worker side) -------------------------------------------------------------------------

def record(tag: bytes, payload: bytes = b"") -> bytes:
    return _HEAD.pack(tag, len(payload)) + payload


def result_record(answer: int, cost: int, actions: bytes, printed: str) -> bytes:
    """``actions``: little-endian int16 bytes."""
    n = len(actions) // 2
    return record(b"R", _RESULT.pack(answer, cost, n) + actions
                  + printed.encode("utf-8", "replace"))


def error_record(kind: str, message: str, printed: str = "") -> bytes:
    msg = message.encode("utf-8", "replace")
    return record(b"E", _ERROR.pack(ERROR_KINDS.index(kind), len(msg)) + msg
                  + printed.encode("utf-8", "replace"))


def write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# -- reading (parent side) -------------------------------------------------------------------------

_CONTROL = {c: None for c in range(32) if c not in (9, 10)}
_CONTROL.update({0x7F: None})


def clean_text(raw, limit: int = MAX_TEXT) -> str:
    """Untrusted bytes (or text) as printable text: UTF-8 with replacement, no control characters
    but tab and newline, at most ``limit`` characters."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        text = bytes(raw[:limit * 4]).decode("utf-8", "replace")
    else:
        text = str(raw)[:limit * 4]
    text = text.translate(_CONTROL)
    return text if len(text) <= limit else text[:limit] + " [...]"


def _records(buf: bytes, where: str):
    pos, n = 0, len(buf)
    while pos < n:
        if n - pos < _HEAD.size:
            raise FrameError(f"{where}: truncated record header")
        tag, length = _HEAD.unpack_from(buf, pos)
        pos += _HEAD.size
        if length > n - pos:
            raise FrameError(f"{where}: record {tag!r} claims {length} bytes, {n - pos} left")
        yield tag, buf[pos:pos + length]
        pos += length


@dataclass
class Episode:
    """What one episode's process reported (see the module docstring)."""
    index: int
    violations: list = field(default_factory=list)
    ok: bool = False
    answer: int = -1
    cost: int = 0
    actions: bytes = b""
    error_kind: str | None = None
    error: str | None = None
    printed: str = ""
    status: int | None = None      # wait status of the process
    timed_out: bool = False
    output_capped: bool = False
    wall_ms: int = 0
    finished: bool = False         # the worker's end record arrived
    malformed: str | None = None   # what was wrong with the episode's own records


@dataclass
class Stream:
    layers: dict = field(default_factory=dict)
    fatal: tuple | None = None     # (kind, message)
    episodes: list = field(default_factory=list)
    done: bool = False


def _parse_episode(ep: Episode, raw: bytes) -> None:
    where = f"episode {ep.index}"
    terminal = False
    for tag, p in _records(raw, where):
        if terminal:
            raise FrameError(f"{where}: records after the episode's result")
        if tag == b"V":
            if len(ep.violations) < 20:
                # a refusal always reads as one, even when its message came through empty
                ep.violations.append(clean_text(p, 500) or "an operation was refused (no message)")
        elif tag == b"R":
            if len(p) < _RESULT.size:
                raise FrameError(f"{where}: truncated result record")
            ep.answer, ep.cost, n = _RESULT.unpack_from(p, 0)
            if n > MAX_ACTIONS_PER_EPISODE or _RESULT.size + 2 * n > len(p):
                raise FrameError(f"{where}: result claims {n} actions")
            ep.actions = bytes(p[_RESULT.size:_RESULT.size + 2 * n])
            ep.printed = clean_text(p[_RESULT.size + 2 * n:])
            ep.ok, terminal = True, True
        elif tag == b"E":
            if len(p) < _ERROR.size:
                raise FrameError(f"{where}: truncated error record")
            kind, m = _ERROR.unpack_from(p, 0)
            if kind >= len(ERROR_KINDS) or _ERROR.size + m > len(p):
                raise FrameError(f"{where}: malformed error record")
            ep.error_kind = ERROR_KINDS[kind]
            ep.error = clean_text(p[_ERROR.size:_ERROR.size + m]) or "(no message)"
            ep.printed = clean_text(p[_ERROR.size + m:])
            terminal = True
        else:
            raise FrameError(f"{where}: unknown record {tag!r}")


def decode_stream(raw: bytes, max_episodes: int) -> Stream:
    """Parse the worker's whole output (see the module docstring); raises :class:`FrameError`."""
    st = Stream()
    cur: Episode | None = None
    chunks: list = []
    for tag, p in _records(raw, "sandbox output"):
        if st.done:
            raise FrameError("sandbox output continues after its end record")
        if tag == b"H":
            for line in clean_text(p, 4000).splitlines()[:16]:
                k, _, v = line.partition("=")
                st.layers[k.strip()[:40]] = v.strip()[:300]
        elif tag == b"F":
            kind, _, msg = clean_text(p).partition("\n")
            st.fatal = (kind if kind in ERROR_KINDS else "crash", msg or "(no message)")
        elif tag == b"S":
            if len(p) != 4 or cur is not None:
                raise FrameError("malformed episode start")
            (k,) = _U32.unpack(p)
            if k != len(st.episodes) or k >= max_episodes:
                raise FrameError(f"episode {k} started out of order")
            cur, chunks = Episode(k), []
        elif tag == b"C":
            if len(p) < 4 or cur is None or _U32.unpack_from(p, 0)[0] != cur.index:
                raise FrameError("output of an episode that is not running")
            chunks.append(p[4:])
        elif tag == b"X":
            if len(p) != _END.size or cur is None:
                raise FrameError("malformed episode end")
            k, status, flags, wall = _END.unpack(p)
            if k != cur.index:
                raise FrameError(f"end of episode {k} while episode {cur.index} runs")
            cur.status, cur.wall_ms = status, wall
            cur.timed_out, cur.output_capped = bool(flags & 1), bool(flags & 2)
            cur.finished = True
            _parse_into(cur, chunks)
            st.episodes.append(cur)
            cur, chunks = None, []
        elif tag == b"D":
            if len(p) != 4 or cur is not None:
                raise FrameError("malformed end record")
            st.done = True
        else:
            raise FrameError(f"unknown record {tag!r}")
    if cur is not None:          # the sandbox died during an episode: keep what it said
        _parse_into(cur, chunks)
        st.episodes.append(cur)
    return st


def _parse_into(ep: Episode, chunks) -> None:
    """An episode's own records (written by its untrusted process): a problem is recorded on the
    episode, not raised, so that the other records of the stream stay usable."""
    try:
        _parse_episode(ep, b"".join(chunks))
    except FrameError as exc:
        ep.malformed = str(exc)
