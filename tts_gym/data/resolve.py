"""Where replay data comes from: the one store resolver of the package.

:func:`resolve_stores` turns what a user may write into the stores to run on; the env, ``evaluate``,
the command line, discovery and the agent programs all call it (or :func:`resolve_store`, which
wants exactly one), so they accept the same inputs:

====================================  ===============================================================
``data``                              stores
====================================  ===============================================================
``None``                              the embedded synthetic store, or, when ``model``/``benchmark``
                                      are given, the stores they name in the data location (below)
a :class:`ReplayStore`                that store
``"synthetic"``                       the synthetic store of seed 0, or of each ``benchmark="seed<N>"``
``"Model/benchmark"``                 that store in the data location (``"synthetic/seed<N>"``: the
                                      synthetic store of seed ``N``); a name, not an existing path
an HDF5 file (``.h5``/``.hdf5``)      all its stores
an AutoTTS JSON file                  that store (``model``/``benchmark`` rename it)
a directory of AutoTTS JSON           all its stores, laid out ``<model>/<benchmark>.json`` (or one
                                      model's ``<benchmark>.json``)
a list (any iterable) or a mapping   all of them, in order
====================================  ===============================================================

``model`` and ``benchmark`` (a name or a list of names) narrow a file or directory that holds
several stores: each name given must match, and with both given every pair must exist, so asking
for three models on AIME24 never quietly returns two. Whatever does not match raises
:class:`StoreNotFoundError`, whose message lists what the location holds.

The *data location* is ``$TTS_GYM_DATA`` (a directory of AutoTTS JSON or an HDF5 file), else the file
``tts-gym data fetch`` writes into the user cache (``$TTS_GYM_CACHE``, else
``$XDG_CACHE_HOME/tts_gym``, else ``~/.cache/tts_gym``).
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from tts_gym.data.catalog import SYNTHETIC, StoreNotFoundError, select_stores
from tts_gym.data.store import ReplayStore

__all__ = ["resolve_stores", "resolve_store", "store_sources", "default_store", "data_location", "cache_dir",
           "fetched_store_path", "StoreNotFoundError", "ENV_DATA", "ENV_CACHE"]

ENV_DATA = "TTS_GYM_DATA"
ENV_CACHE = "TTS_GYM_CACHE"
DEFAULT_SEED = 0
DEFAULT_QUESTIONS = 30
DEFAULT_BRANCHES = 128
FETCHED_FILE = "autotts.h5"
HDF5_SUFFIXES = (".h5", ".hdf5")

_SEED_NAME = re.compile(r"seed(\d+)$")
_NO_DATA_HINT = (f"run `tts-gym data fetch`, or set {ENV_DATA}=DIR (a directory of AutoTTS JSON "
                 f"<model>/<benchmark>.json, or an .h5 file made by `tts-gym data import DIR -o OUT.h5`)")


def cache_dir() -> Path:
    """The user cache directory (not created): ``$TTS_GYM_CACHE``, else ``$XDG_CACHE_HOME/tts_gym``,
    else ``~/.cache/tts_gym``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tts_gym"


def fetched_store_path() -> Path:
    """Where ``tts-gym data fetch`` writes its HDF5 file by default."""
    return cache_dir() / FETCHED_FILE


def data_location() -> Path | None:
    """The real-data location: ``$TTS_GYM_DATA``, else the fetched HDF5 file if it exists, else ``None``."""
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    fetched = fetched_store_path()
    return fetched if fetched.is_file() else None


def _readonly(store: ReplayStore) -> ReplayStore:
    for name in ("probe_ids", "num_probes", "branch_tokens", "final_ids", "num_branches",
                 "probe_interval", "gold_ids"):
        getattr(store, name).flags.writeable = False
    return store


@functools.lru_cache(maxsize=8)
def _synthetic_cached(seed: int) -> ReplayStore:
    from tts_gym.data.synthetic import synthesize
    return _readonly(synthesize(DEFAULT_QUESTIONS, DEFAULT_BRANCHES, seed=seed))


def default_store(seed: int = DEFAULT_SEED) -> ReplayStore:
    """The embedded synthetic store (30 questions x 128 branches, K <= 80), cached; arrays read-only."""
    return _synthetic_cached(int(seed))


# ---------------------------------------------------------------------------------------------
# candidates: (model, benchmark) keys with a loader each, so that a count can be checked (and an
# error raised) before anything is read
# ---------------------------------------------------------------------------------------------

Candidates = list[tuple[tuple[str, str], Callable[[], ReplayStore]]]


def _names(value, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{what} must be a name or a non-empty list of names, got {value!r}")
    return names


def _synthetic(benchmarks) -> Candidates:
    out = []
    for b in benchmarks or (f"seed{DEFAULT_SEED}",):
        m = _SEED_NAME.match(b)
        if not m:
            raise StoreNotFoundError(f"synthetic stores are named synthetic/seed<N>, got synthetic/{b}")
        out.append(((SYNTHETIC, b), functools.partial(default_store, int(m.group(1)))))
    return out


def _from_location(location: Path, models, benchmarks) -> Candidates:
    if not location.exists():
        raise StoreNotFoundError(f"{location}: no such file or directory")
    if location.is_file() and location.suffix.lower() in HDF5_SUFFIXES:
        from tts_gym.data.hdf5 import list_stores, open_store
        keys = select_stores(list_stores(location), models, benchmarks, str(location))
        return [(k, functools.partial(open_store, location, k[0], k[1])) for k in keys]
    from tts_gym.data.autotts import find_autotts_files, infer_names, read_autotts_json
    if location.is_file():
        if (models and len(models) > 1) or (benchmarks and len(benchmarks) > 1):
            raise ValueError(f"{location} is one store: give at most one model and one benchmark")
        inferred = infer_names(location)
        key = (models[0] if models else inferred[0], benchmarks[0] if benchmarks else inferred[1])
        return [(key, functools.partial(read_autotts_json, location, key[0], key[1]))]
    try:
        found = find_autotts_files(location)
    except FileNotFoundError as exc:
        raise StoreNotFoundError(str(exc)) from None
    files: dict[tuple[str, str], Path] = {}
    for f in found:
        files.setdefault(infer_names(f), f)
    keys = select_stores(list(files), models, benchmarks, str(location))
    return [(k, functools.partial(read_autotts_json, files[k])) for k in keys]


def _is_store_name(data: str) -> bool:
    """``"Model/benchmark"``: one slash, no file suffix, and not an existing path."""
    return (data.count("/") == 1 and not data.startswith(("/", ".", "~"))
            and Path(data).suffix.lower() not in (*HDF5_SUFFIXES, ".json") and not os.path.exists(data))


def _candidates(data: Any, models, benchmarks) -> Candidates:
    if isinstance(data, ReplayStore):
        return [((data.model, data.benchmark), lambda: data)]
    if isinstance(data, Mapping):
        data = list(data.values())
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, os.PathLike)):
        data = list(data)
    if isinstance(data, list):
        if not data:
            raise ValueError("an empty list of stores")
        return [c for item in data for c in _candidates(item, models, benchmarks)]
    if isinstance(data, str) and data == SYNTHETIC:
        return _synthetic(benchmarks)
    if isinstance(data, str) and _is_store_name(data):
        model, benchmark = data.split("/")
        if (models and models != (model,)) or (benchmarks and benchmarks != (benchmark,)):
            raise ValueError(f"store name {data!r} disagrees with model={models} benchmark={benchmarks}")
        return _candidates(None, (model,), (benchmark,))
    if data is None:
        if models is None and benchmarks is None:
            return [((SYNTHETIC, f"seed{DEFAULT_SEED}"), default_store)]
        if models == (SYNTHETIC,):
            return _synthetic(benchmarks)
        location = data_location()
        if location is None:
            want = ", ".join(f"{n}={list(v)}" for n, v in (("model", models), ("benchmark", benchmarks)) if v)
            raise StoreNotFoundError(f"no replay data location for {want}: {_NO_DATA_HINT}")
        return _from_location(location, models, benchmarks)
    if isinstance(data, (str, os.PathLike)):
        return _from_location(Path(os.fspath(data)).expanduser(), models, benchmarks)
    raise TypeError(f"replay data must be None, a ReplayStore, a path, a 'model/benchmark' name or a "
                    f"list of them, got {type(data).__name__}")


def store_sources(data: Any = None, model: str | Sequence[str] | None = None,
                  benchmark: str | Sequence[str] | None = None) -> list[tuple[str, Callable[[], ReplayStore]]]:
    """``("model/benchmark", load)`` for each store :func:`resolve_stores` would return, in the same
    order, without reading any: ``load()`` reads that store, so a long job over many stores holds
    one at a time. Raises as :func:`resolve_stores` does."""
    return [(f"{m}/{b}", load) for (m, b), load in
            _candidates(data, _names(model, "model"), _names(benchmark, "benchmark"))]


def resolve_stores(data: Any = None, model: str | Sequence[str] | None = None,
                   benchmark: str | Sequence[str] | None = None) -> list[ReplayStore]:
    """The replay stores ``data`` names, narrowed by ``model``/``benchmark`` (see the module
    docstring for the accepted inputs). Raises :class:`StoreNotFoundError` (listing what exists)
    when something named is not there."""
    return [load() for _, load in store_sources(data, model, benchmark)]


def resolve_store(data: Any = None, model: str | Sequence[str] | None = None,
                  benchmark: str | Sequence[str] | None = None) -> ReplayStore:
    """The one replay store ``data``/``model``/``benchmark`` name (as :func:`resolve_stores`); raises
    :class:`StoreNotFoundError` listing the candidates when they name several."""
    found = _candidates(data, _names(model, "model"), _names(benchmark, "benchmark"))
    if len(found) != 1:
        names = ", ".join(f"{m}/{b}" for (m, b), _ in found)
        raise StoreNotFoundError(f"{len(found)} stores match ({names}); choose one with model= and benchmark=")
    return found[0][1]()
