"""The sandbox's output channel: binary records, written by the worker, parsed defensively here.

Everything that comes out of a sandbox is untrusted: the parser accepts fixed-width integers and
length-prefixed text only (no JSON, no pickle, no floats), bounds every length, decodes text with
replacement and strips control characters, and raises :class:`FrameError` (never anything else)
on any inconsistency; the caller turns that into a failed candidate.

A record is ``tag (1 byte) | payload length (u32) | payload``, little-endian. The worker writes::

    H  hello    "key=value" lines: the confinement layers it set up
    F  fatal    "kind" line, then the message (the controller never ran: syntax, rules, ...)
    S  start    u32 episode (a process for that one episode)
    B  batch    u32 first episode, u32 n (one process plays episodes first .. first + n - 1)
    A  audit    u32 episode (a batched episode re-run alone in a fresh process)
    C  chunk    u32 episode, then bytes the process wrote for it (forwarded untouched)
    X  end      u32 first episode, i32 wait status, u8 flags (1: killed at the time limit,
                2: output limit), u32 wall milliseconds, u32 episodes that ended
    D  done     u32 episodes run (audits not counted)

and the bytes of an episode's chunks are themselves records, written by its process. A process
reports on a second pipe, as each episode ends, how many bytes it has written so far: the
worker splits the output there (what a process claims only decides which of its own episodes its
bytes belong to)::

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
_END = struct.Struct("<IiBII")
_PAIR = struct.Struct("<II")
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
    process_flags: int = 0         # how the episode's process ended (the end record's flags)
    malformed: str | None = None   # what was wrong with the episode's own records


@dataclass
class Stream:
    layers: dict = field(default_factory=dict)
    fatal: tuple | None = None     # (kind, message)
    episodes: list = field(default_factory=list)
    audits: list = field(default_factory=list)   # re-runs alone of batched episodes
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


def _parse_into(ep: Episode, chunks) -> None:
    """An episode's own records (written by its untrusted process): a problem is recorded on the
    episode, not raised, so that the other records of the stream stay usable."""
    try:
        _parse_episode(ep, b"".join(chunks))
    except FrameError as exc:
        ep.malformed = str(exc)


def _close_process(eps: list, chunks: dict, end: tuple | None) -> list:
    """The episodes one process played, from its chunks (per episode) and its end record ``end``
    (``(status, flags, wall ms, episodes ended)``; ``None``: the sandbox died first). Every episode
    that ended is played, then the one running when the process stopped, which carries the
    process's fate -- unless the last one to end failed (a process stops at its first failure)."""
    n = len(eps)
    if end is None:
        ran = max(chunks) + 1 if chunks else 1
    else:
        ended = min(n, end[3])
        ran = ended + 1 if ended < n else n
    for i in range(ran):
        _parse_into(eps[i], chunks.get(i, ()))
    if end is not None and 0 < ended < n and not eps[ended - 1].ok and not chunks.get(ended):
        ran = ended
    played = eps[:ran]
    for i, ep in enumerate(played):
        ep.process_flags = end[1] if end is not None else 0
        if i < ran - 1:
            ep.status, ep.finished = 0, True
        elif end is not None:
            ep.status, ep.finished = end[0], True
            ep.timed_out, ep.output_capped = bool(end[1] & 1), bool(end[1] & 2)
        ep.wall_ms = (end[2] // ran) if end is not None else 0
    return played


def decode_stream(raw: bytes, max_episodes: int) -> Stream:
    """Parse the worker's whole output (see the module docstring); raises :class:`FrameError`."""
    st = Stream()
    cur: list | None = None        # the running process's episodes
    audit = False
    chunks: dict = {}              # position in the process -> its episode's chunks
    last = 0
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
        elif tag in (b"S", b"B"):
            if len(p) != (4 if tag == b"S" else 8) or cur is not None or st.audits:
                raise FrameError("malformed episode start")
            k, n = (_U32.unpack(p)[0], 1) if tag == b"S" else _PAIR.unpack(p)
            if k != len(st.episodes) or n < 1 or k + n > max_episodes:
                raise FrameError(f"episode {k} started out of order")
            cur, audit, chunks, last = [Episode(k + i) for i in range(n)], False, {}, 0
        elif tag == b"A":
            if len(p) != 4 or cur is not None or len(st.audits) >= max_episodes:
                raise FrameError("malformed audit start")
            cur, audit, chunks, last = [Episode(_U32.unpack(p)[0])], True, {}, 0
        elif tag == b"C":
            if len(p) < 4 or cur is None:
                raise FrameError("output of an episode that is not running")
            i = _U32.unpack_from(p, 0)[0] - cur[0].index
            if not last <= i < len(cur):
                raise FrameError("output of an episode that is not running")
            chunks.setdefault(i, []).append(p[4:])
            last = i
        elif tag == b"X":
            if len(p) != _END.size or cur is None:
                raise FrameError("malformed episode end")
            k, status, flags, wall, ended = _END.unpack(p)
            if k != cur[0].index:
                raise FrameError(f"end of episode {k} while episode {cur[0].index} runs")
            played = _close_process(cur, chunks, (status, flags, wall, ended))
            (st.audits if audit else st.episodes).extend(played)
            cur, chunks = None, {}
        elif tag == b"D":
            if len(p) != 4 or cur is not None:
                raise FrameError("malformed end record")
            st.done = True
        else:
            raise FrameError(f"unknown record {tag!r}")
    if cur is not None:          # the sandbox died during a process: keep what it said
        (st.audits if audit else st.episodes).extend(_close_process(cur, chunks, None))
    return st
