"""Keep numba's on-disk cache (``cache=True``) honest across modules.

numba stamps a cached function with its *own* source file only, but a compiled function also
contains the code of every jitted function it calls or inlines, and the values of the module
constants it reads (``tts_gym.core.actions``, the flag bits of ``tts_gym.core.kernels``...). After an edit of
``kernels.py``, a cached ``vector.py`` or ``compiled.py`` function would otherwise keep running the
old kernel. :func:`bind_module_cache`, called at the end of every module that defines cached
kernels, adds a digest of the compiled layer's sources (:data:`COMPILED_SOURCES`) to each such
function's stamp, so any change there makes all of their cache entries stale.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

__all__ = ["COMPILED_SOURCES", "sources_digest", "bind_module_cache"]

_PACKAGE = Path(__file__).resolve().parent.parent

COMPILED_SOURCES = (
    "core/actions.py", "core/atomics.py", "core/kernels.py", "core/observation.py", "core/voting.py",
    "policies/common.py", "policies/compiled.py", "envs/vector.py", "envs/env.py",
)
"""Files (relative to the package) whose jitted functions or constants other compiled code uses."""


@lru_cache(maxsize=None)
def sources_digest() -> str:
    """sha256 over :data:`COMPILED_SOURCES` (read once per process)."""
    h = hashlib.sha256()
    for rel in COMPILED_SOURCES:
        h.update(rel.encode())
        h.update((_PACKAGE / rel).read_bytes())
    return h.hexdigest()


def bind_module_cache(namespace: dict) -> int:
    """Key the on-disk cache of every cached numba function defined in the module ``namespace``
    (pass ``globals()``) on :func:`sources_digest` too. Returns how many were bound. A no-op for
    functions without ``cache=True``, and silently skipped if numba's cache internals differ."""
    from numba.core.registry import CPUDispatcher

    try:
        digest = sources_digest()
    except OSError:
        return 0
    name = namespace.get("__name__")
    bound = 0
    for obj in list(namespace.values()):
        if not isinstance(obj, CPUDispatcher) or getattr(obj.py_func, "__module__", None) != name:
            continue
        cache_file = getattr(getattr(obj, "_cache", None), "_cache_file", None)
        stamp = getattr(cache_file, "_source_stamp", None)
        if stamp is None:
            continue
        if not (isinstance(stamp, tuple) and len(stamp) == 2 and stamp[1] == digest):
            cache_file._source_stamp = (stamp, digest)
        bound += 1
    return bound
