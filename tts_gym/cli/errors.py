"""Expected failures of a command as one line and an exit status (no traceback).

======================================================================  ======
failure                                                                 status
======================================================================  ======
bad values, malformed or foreign files, missing files, permissions,     2
unknown stores (``ValueError``, ``StoreFormatError``, ``LookupError``,
``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``, ...)
unreachable servers, HTTP errors, timeouts, API errors, a full disk,    1
other I/O errors, running out of memory (``tts-gym data fetch``: 2)
the reader of stdout went away (``BrokenPipeError``)                    141
interrupted (``KeyboardInterrupt``)                                     130
======================================================================  ======

Anything else is a bug and keeps its traceback; ``TTS_GYM_DEBUG=1`` shows the traceback of
expected failures too.
"""
from __future__ import annotations

import errno
import os
import socket
import sys

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_BROKEN_PIPE = 128 + 13
EXIT_INTERRUPTED = 130

_INPUT_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EINVAL,
                 errno.EROFS, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, KeyError) and exc.args:   # KeyError's str() is the repr of its key
        text = str(exc.args[0])
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 2000 else line[:1997] + "..."


def _os_message(exc: OSError) -> str:
    """``path: what went wrong`` (the system's wording, lower case)."""
    text = _first_line(exc)
    name, why = exc.filename, exc.strerror
    if why and (text.startswith("[Errno") or name is not None and str(name) not in text):
        why = why[:1].lower() + why[1:]
        return f"{name}: {why}" if name is not None else why
    return text


def _is_network(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError, socket.gaierror)):
        return True
    mod = type(exc).__module__ or ""
    return mod.startswith(("urllib", "http.client", "aiohttp", "anthropic", "httpx", "httpcore"))


def classify(exc: BaseException) -> tuple[int, str] | None:
    """``(exit status, one-line message)`` for an expected failure, ``None`` for a bug."""
    from tts_gym.files import OutputPathError
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, BrokenPipeError):
        return EXIT_BROKEN_PIPE, "output closed before everything was written (broken pipe)"
    if isinstance(exc, MemoryError):
        return EXIT_FAILURE, "out of memory" + (f" ({_first_line(exc)})" if str(exc) else "")
    mod = type(exc).__module__ or ""
    if mod.startswith("anthropic"):
        return EXIT_FAILURE, f"Messages API request failed: {type(exc).__name__}: {_first_line(exc)}"
    cls = type(exc).__name__
    if cls in ("CompletionError", "FetchError", "CollectError", "MissingAPIKey"):
        # fetch documents status 2 for "no network" (the data commands' input errors)
        return (EXIT_USAGE if cls in ("MissingAPIKey", "FetchError") else EXIT_FAILURE), _first_line(exc)
    if _is_network(exc):
        return EXIT_FAILURE, f"network error: {_first_line(exc)}"
    if isinstance(exc, OutputPathError):
        return EXIT_USAGE, _first_line(exc)
    if isinstance(exc, OSError):
        if mod.startswith("h5py") or "HDF5" in str(exc) or "h5" in cls.lower():
            return EXIT_USAGE, f"cannot read HDF5 data ({_first_line(exc)}); corrupt or truncated file?"
        if exc.errno in _INPUT_ERRNOS or isinstance(exc, (FileNotFoundError, PermissionError,
                                                          IsADirectoryError, NotADirectoryError,
                                                          FileExistsError)):
            return EXIT_USAGE, _os_message(exc)
        if exc.errno == errno.ENOSPC:
            return EXIT_FAILURE, f"no space left on the device ({_os_message(exc)})"
        return EXIT_FAILURE, _os_message(exc)
    if isinstance(exc, (ValueError, LookupError, UnicodeError)):
        return EXIT_USAGE, _first_line(exc)
    if isinstance(exc, ImportError):
        return EXIT_FAILURE, f"a needed package is missing: {_first_line(exc)}"
    return None


def report(prog: str, exc: BaseException) -> int | None:
    """Print the one-line message of an expected failure to stderr; return its status (or None)."""
    hit = classify(exc)
    if hit is None:
        return None
    code, msg = hit
    if isinstance(exc, BrokenPipeError):
        _silence_stdout()
    try:
        print(f"{prog}: error: {msg}" if code != EXIT_INTERRUPTED else f"{prog}: {msg}", file=sys.stderr)
    except (BrokenPipeError, OSError):
        pass
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
