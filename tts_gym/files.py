"""Atomic output files: every file tts_gym writes goes through :func:`atomic_write` or :func:`atomic_path`.

A write goes to a temporary file in the destination's directory, is flushed and ``fsync``'ed, gets
the usual mode (``0o666`` minus the umask, or the mode of the file it replaces) and is renamed over
the destination with ``os.replace``; the directory is then ``fsync``'ed. A reader (or a crash, or
``kill -9``) sees either the previous file, whole, or the new one, whole -- never a partial file.

Temporary files are named ``.<name>.<pid>.<random>.tmp``. A process killed mid-write leaves one
behind; the next write to the same destination removes every such file whose process is gone
(:func:`remove_stale_temp_files`), so interrupted runs do not accumulate debris.

::

    from tts_gym.files import atomic_write, atomic_path
    atomic_write("results.json", json.dumps(rows))          # str or bytes
    with atomic_path("scaling.png") as tmp:                  # for writers that want a path
        fig.savefig(tmp, format="png")
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write", "atomic_path", "remove_stale_temp_files", "check_output_path",
           "check_output_dir", "OutputPathError", "default_mode"]

_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


class OutputPathError(OSError):
    """An output location cannot be written (missing or read-only directory, a directory in the way)."""


def default_mode() -> int:
    """``0o666`` minus the process umask: the mode ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def remove_stale_temp_files(path: str | os.PathLike) -> int:
    """Delete the temporary files that interrupted writes of ``path`` left (their process is gone).

    Returns the number removed. Temporary files of writes still in progress (live pid) are kept."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    n = 0
    try:
        entries = os.listdir(directory)
    except OSError:
        return 0
    for entry in entries:
        m = _TMP_RE.match(entry)
        if m is None or m.group("name") != path.name or _pid_alive(int(m.group("pid"))):
            continue
        try:
            os.unlink(directory / entry)
            n += 1
        except OSError:
            pass
    return n


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse directory fsync
        pass
    finally:
        os.close(fd)


def check_output_path(path: str | os.PathLike, *, what: str = "output", create_parent: bool = True) -> Path:
    """Check (before any long work) that ``path`` can be written atomically; return it as a Path.

    The parent directory is created when ``create_parent`` (as the writers do); raises
    :class:`OutputPathError` with a one-line reason when ``path`` is a directory, its parent is a
    file, or the directory is not writable."""
    p = Path(os.fspath(path)).expanduser()
    if str(p) == "" or p.name in ("", ".", ".."):
        raise OutputPathError(errno.EINVAL, f"{what} {str(path)!r}: not a file name")
    if p.is_dir():
        raise OutputPathError(errno.EISDIR, f"{what} {p}: is a directory")
    directory = p.parent if str(p.parent) else Path(".")
    check_output_dir(directory, what=f"{what} {p}: directory", create=create_parent)
    if p.exists() and not os.access(p, os.W_OK) and not os.access(directory, os.W_OK):
        raise OutputPathError(errno.EACCES, f"{what} {p}: permission denied")
    return p


def check_output_dir(directory: str | os.PathLike, *, what: str = "output directory",
                     create: bool = True) -> Path:
    """Check that ``directory`` exists (created when ``create``) and is writable."""
    d = Path(os.fspath(directory)).expanduser()
    for parent in [d, *d.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(errno.ENOTDIR, f"{what} {d}: {parent} is not a directory")
            break
    if not d.exists():
        if not create:
            raise OutputPathError(errno.ENOENT, f"{what} {d}: does not exist")
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputPathError(exc.errno or errno.EACCES,
                                  f"{what} {d}: cannot create ({exc.strerror or exc})") from None
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputPathError(errno.EACCES, f"{what} {d}: not writable (permission denied)")
    return d


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int | None = None, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it replaces ``path`` atomically.

    The body writes the temporary file by name (h5py, ``savefig``, ``model.save``); on any exception
    the temporary file is removed and ``path`` is left as it was. ``mode``: the new file's mode
    (default: the mode of the file replaced, else :func:`default_mode`)."""
    path = Path(os.fspath(path)).expanduser()
    directory = path.parent if str(path.parent) else Path(".")
    if mkdir:
        directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            mode = default_mode()
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(errno.ENOENT, f"{path}: the writer produced no file")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def atomic_write(path: str | os.PathLike, data: str | bytes, *, mode: int | None = None,
                 encoding: str = "utf-8", mkdir: bool = True) -> Path:
    """Write ``data`` (``str`` is encoded with ``encoding``) to ``path`` atomically; return the path."""
    raw = data.encode(encoding) if isinstance(data, str) else bytes(data)
    path = Path(os.fspath(path)).expanduser()
    with atomic_path(path, mode=mode, mkdir=mkdir) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
    return path
