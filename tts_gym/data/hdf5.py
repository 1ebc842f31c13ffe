"""HDF5 container of replay stores: one file, many stores, exact round trip.

Layout (schema version 1; see ``data/README.md`` for the full description)::

    /                               attrs: format="tts_gym.replay-stores", schema_version=1, tts_gym_version
    /<model>/<benchmark>/           attrs: kind="tts_gym.ReplayStore", schema_version, model, benchmark,
                                           probe_shape=[Q,N,K], pad_id, gold_absent,
                                           attrs_json (the store's ``attrs`` as JSON)
        probe_ids_ragged int32 [P]     the real probe ids only, in (question, branch, probe) order,
                                       P = sum(num_probes); the padded [Q,N,K] tensor is rebuilt on load
        num_probes      int32 [Q,N]
        branch_tokens   int64 [Q,N]
        final_ids       int32 [Q,N]    PAD_ID for padding branches
        num_branches    int32 [Q]
        probe_interval  int32 [Q]
        gold_ids        int32 [Q]      GOLD_ABSENT (-1) when the gold never appears
        answers         vlen UTF-8 [A] every question's answer table, concatenated in question order,
                                       each table in id order (answer id i of q = answers[offsets[q] + i])
        answer_offsets  int64 [Q+1]    table q is answers[answer_offsets[q]:answer_offsets[q+1]]
        questions       vlen UTF-8 [Q]
        gold_answers    vlen UTF-8 [Q]

Writes are atomic: a temporary file in the destination directory is written, flushed, fsync'ed
and renamed over the destination (``os.replace``); on any error it is removed.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tts_gym.data.autotts import StoreFormatError
from tts_gym.data.catalog import StoreNotFoundError, select_stores
from tts_gym.data.store import GOLD_ABSENT, PAD_ID, ReplayStore

SCHEMA_VERSION = 1
FILE_FORMAT = "tts_gym.replay-stores"
STORE_KIND = "tts_gym.ReplayStore"

_ARRAYS = {  # name -> (dtype, fill value); probe_ids is stored ragged (see the module docstring)
    "num_probes": (np.int32, 0),
    "branch_tokens": (np.int64, 0),
    "final_ids": (np.int32, PAD_ID),
    "num_branches": (np.int32, 0),
    "probe_interval": (np.int32, 0),
    "gold_ids": (np.int32, GOLD_ABSENT),
}
_CHUNK_BYTES = 1 << 20


def _h5py():
    import h5py  # local import: keep ``import tts_gym`` light
    return h5py


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise ValueError(f"{what} name {name!r} cannot be an HDF5 group name (empty, '/', '.' or '..')")


def _chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...] | None:
    """About 1 MiB chunks split along the first axis; ``None`` for empty datasets."""
    if not shape or 0 in shape:
        return None
    row = int(np.prod(shape[1:], dtype=np.int64)) * itemsize
    rows = max(1, min(shape[0], _CHUNK_BYTES // max(row, 1)))
    return (rows,) + tuple(shape[1:])


def _compression_kwargs(compression: str | None, level: int | None) -> dict[str, Any]:
    if compression in (None, "none"):
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4 if level is None else level, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"unknown compression {compression!r} (gzip, lzf or none)")


def _write_strings(group, name: str, strings: list[str] | tuple[str, ...], comp: dict[str, Any]) -> None:
    h5py = _h5py()
    dt = h5py.string_dtype("utf-8")
    data = np.empty(len(strings), dtype=object)
    data[:] = list(strings)
    kwargs = dict(comp) if len(strings) else {}
    if len(strings):
        kwargs["chunks"] = (min(len(strings), 16384),)
    try:
        group.create_dataset(name, data=data, dtype=dt, **kwargs)
    except (ValueError, UnicodeEncodeError) as exc:
        bad = next((i for i, s in enumerate(strings) if "\x00" in s or not _encodes(s)), None)
        raise ValueError(f"{group.name}/{name}[{bad}]: string {strings[bad]!r} cannot be stored "
                         f"(NUL character or invalid Unicode)" if bad is not None else str(exc)) from None


def _encodes(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _write_store(h5file, store: ReplayStore, comp: dict[str, Any]) -> None:
    _check_name(store.model, "model")
    _check_name(store.benchmark, "benchmark")
    grp = h5file.require_group(store.model).create_group(store.benchmark)
    grp.attrs["kind"] = STORE_KIND
    grp.attrs["schema_version"] = SCHEMA_VERSION
    grp.attrs["model"] = store.model
    grp.attrs["benchmark"] = store.benchmark
    grp.attrs["pad_id"] = PAD_ID
    grp.attrs["gold_absent"] = GOLD_ABSENT
    try:
        grp.attrs["attrs_json"] = json.dumps(store.attrs, ensure_ascii=False, sort_keys=True, allow_nan=True)
    except TypeError as exc:
        raise ValueError(f"store {store.name}: attrs must be JSON-serialisable ({exc})") from None
    grp.attrs["probe_shape"] = np.array(store.probe_ids.shape, dtype=np.int64)
    in_probe = np.arange(store.max_probes)[None, None, :] < store.num_probes[:, :, None]
    arrays = {"probe_ids_ragged": np.asarray(store.probe_ids, dtype=np.int32)[in_probe]}
    arrays.update((name, np.ascontiguousarray(getattr(store, name), dtype=dtype))
                  for name, (dtype, _) in _ARRAYS.items())
    for name, arr in arrays.items():
        chunks = _chunks(arr.shape, arr.dtype.itemsize)
        kwargs = dict(comp, chunks=chunks) if chunks else {}
        grp.create_dataset(name, data=arr, fillvalue=_ARRAYS.get(name, (None, PAD_ID))[1], **kwargs)
    tables = store.answer_tables
    offsets = np.zeros(len(tables) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in tables], out=offsets[1:])
    flat: list[str] = [s for t in tables for s in t]
    _write_strings(grp, "answers", flat, comp)
    grp.create_dataset("answer_offsets", data=offsets)
    _write_strings(grp, "questions", list(store.questions), comp)
    _write_strings(grp, "gold_answers", list(store.gold_answers), comp)


def _as_store_list(stores: ReplayStore | Mapping | Iterable[ReplayStore]) -> list[ReplayStore]:
    if isinstance(stores, ReplayStore):
        return [stores]
    if isinstance(stores, Mapping):
        return list(stores.values())
    return list(stores)


def save_stores(path: str | os.PathLike, stores: ReplayStore | Mapping | Iterable[ReplayStore], *,
                append: bool = False, compression: str | None = "gzip", compression_level: int | None = None,
                ) -> Path:
    """Write ``stores`` (a store, an iterable of stores, or a mapping whose values are stores) to ``path``.

    The file is replaced atomically (temporary file in the same directory + ``os.replace``); on any
    error nothing is left behind and an existing file is untouched. With ``append=True`` the stores
    already in ``path`` are kept, except those with the same ``model/benchmark`` as a new one.
    ``compression``: ``"gzip"`` (default, level 4, with shuffle), ``"lzf"`` or ``None``.
    Returns the path written.
    """
    h5py = _h5py()
    path = Path(path)
    items = _as_store_list(stores)
    seen: set[tuple[str, str]] = set()
    for s in items:
        if not isinstance(s, ReplayStore):
            raise TypeError(f"expected ReplayStore objects, got {type(s).__name__}")
        key = (s.model, s.benchmark)
        if key in seen:
            raise ValueError(f"store {s.name} given twice")
        seen.add(key)
    comp = _compression_kwargs(compression, compression_level)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: output directory does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as out:
            out.attrs["format"] = FILE_FORMAT
            out.attrs["schema_version"] = SCHEMA_VERSION
            from tts_gym import __version__
            out.attrs["tts_gym_version"] = __version__
            if append and path.exists():
                with _open(path) as src:
                    for model, benchmark in _store_keys(src, path):
                        if (model, benchmark) not in seen:
                            src.copy(src[model][benchmark], out.require_group(model), name=benchmark)
            for s in items:
                _write_store(out, s, comp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _open(path: str | os.PathLike):
    """Open an HDF5 store file for reading, with clear errors."""
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not an HDF5 store file")
    if not h5py.is_hdf5(path):
        raise StoreFormatError("not an HDF5 file (truncated, corrupt or another format)", file=path,
                               kind="not_hdf5")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise StoreFormatError(f"cannot open HDF5 file ({exc})", file=path, kind="not_hdf5") from None
    version = f.attrs.get("schema_version")
    if f.attrs.get("format") != FILE_FORMAT or version is None:
        f.close()
        raise StoreFormatError(f"not a tts_gym replay-store file (no format={FILE_FORMAT!r} attribute)",
                               file=path, kind="not_hdf5")
    if int(version) > SCHEMA_VERSION:
        f.close()
        raise StoreFormatError(f"schema version {int(version)} is newer than this tts_gym supports "
                               f"({SCHEMA_VERSION}); upgrade tts_gym", file=path, kind="schema_version")
    return f


def _store_keys(f, path) -> list[tuple[str, str]]:
    """``(model, benchmark)`` of every store group (``/<model>/<benchmark>`` with ``kind`` set), sorted."""
    keys = []
    for model, mgrp in f.items():
        if not hasattr(mgrp, "items"):
            continue
        for bench, grp in mgrp.items():
            if grp.attrs.get("kind") == STORE_KIND:
                keys.append((model, bench))
    return sorted(keys)


def _is_store(f, model: str, benchmark: str) -> bool:
    mgrp = f.get(model) if "/" not in model else None
    grp = mgrp.get(benchmark) if hasattr(mgrp, "get") and "/" not in benchmark else None
    return grp is not None and grp.attrs.get("kind") == STORE_KIND


def _read_strings(ds) -> tuple[str, ...]:
    if ds.shape[0] == 0:
        return ()
    return tuple(ds.asstr()[()].tolist())


def _read_store(f, model: str, benchmark: str, path, validate: bool) -> ReplayStore:
    grp = f[model][benchmark]
    loc = f"{path}:/{model}/{benchmark}"
    try:
        version = int(grp.attrs["schema_version"])
        if version > SCHEMA_VERSION:
            raise StoreFormatError(f"schema version {version} is newer than supported ({SCHEMA_VERSION})",
                                   file=loc, kind="schema_version")
        arrays = {}
        for name, (dtype, _) in [*_ARRAYS.items(), ("probe_ids_ragged", (np.int32, PAD_ID))]:
            ds = grp[name]
            if ds.dtype != dtype:
                raise StoreFormatError(f"dataset {name!r} has dtype {ds.dtype}, expected {np.dtype(dtype)}",
                                       file=loc, kind="hdf5_layout")
            arrays[name] = ds[()]
        Q, N, K = (int(v) for v in grp.attrs["probe_shape"])
        num_probes = arrays["num_probes"]
        if num_probes.shape != (Q, N) or np.any(num_probes < 0) or np.any(num_probes > K):
            raise StoreFormatError(f"num_probes inconsistent with probe_shape {(Q, N, K)}", file=loc,
                                   kind="hdf5_layout")
        in_probe = np.arange(K)[None, None, :] < num_probes[:, :, None]
        ragged = arrays.pop("probe_ids_ragged")
        if ragged.shape != (int(num_probes.sum()),):
            raise StoreFormatError(f"probe_ids_ragged has {ragged.shape[0]} entries, num_probes sums to "
                                   f"{int(num_probes.sum())}", file=loc, kind="hdf5_layout")
        probe_ids = np.full((Q, N, K), PAD_ID, dtype=np.int32)
        probe_ids[in_probe] = ragged
        arrays["probe_ids"] = probe_ids
        offsets = grp["answer_offsets"][()]
        flat = _read_strings(grp["answers"])
        if offsets.shape != (Q + 1,) or offsets[0] != 0 or offsets[-1] != len(flat) or np.any(np.diff(offsets) < 0):
            raise StoreFormatError("answer_offsets inconsistent with the answers dataset", file=loc,
                                   kind="hdf5_layout")
        bounds = offsets.tolist()
        tables = tuple(flat[bounds[q]:bounds[q + 1]] for q in range(Q))
        attrs = json.loads(grp.attrs.get("attrs_json", "{}"))
        store = ReplayStore(model=str(grp.attrs["model"]), benchmark=str(grp.attrs["benchmark"]),
                            answer_tables=tables, gold_answers=_read_strings(grp["gold_answers"]),
                            questions=_read_strings(grp["questions"]), attrs=attrs, **arrays)
    except KeyError as exc:
        raise StoreFormatError(f"missing dataset or attribute ({exc})", file=loc, kind="hdf5_layout") from None
    if validate:
        try:
            store.validate()
        except ValueError as exc:
            raise StoreFormatError(str(exc), file=loc, kind="hdf5_layout") from None
    return store


def list_stores(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The ``(model, benchmark)`` pairs held by an HDF5 store file, sorted."""
    with _open(path) as f:
        return _store_keys(f, path)


def open_store(path: str | os.PathLike, model: str | None = None, benchmark: str | None = None, *,
               validate: bool = True) -> ReplayStore:
    """Load one store from an HDF5 file, e.g. ``open_store(p, model="Qwen3-1.7B", benchmark="aime25")``.

    ``model``/``benchmark`` may be omitted when they leave a single candidate (e.g. a one-store file).
    Raises ``StoreNotFoundError`` (listing what the file holds), ``FileNotFoundError`` or
    :class:`StoreFormatError`. ``validate`` runs :meth:`ReplayStore.validate` on the loaded tensors.
    """
    with _open(path) as f:
        if model is not None and benchmark is not None and _is_store(f, model, benchmark):
            key = (model, benchmark)  # direct hit: no need to list the file
        else:
            keys = select_stores(_store_keys(f, path), None if model is None else (model,),
                                 None if benchmark is None else (benchmark,), str(path))
            if len(keys) != 1:
                raise StoreNotFoundError(f"{path} holds {len(keys)} stores; choose one with model=/benchmark=: "
                                         + ", ".join(f"{m}/{b}" for m, b in keys))
            key = keys[0]
        return _read_store(f, key[0], key[1], path, validate)


def load_stores(path: str | os.PathLike, *, validate: bool = True) -> dict[tuple[str, str], ReplayStore]:
    """All stores of an HDF5 file, keyed by ``(model, benchmark)`` in sorted order."""
    with _open(path) as f:
        return {k: _read_store(f, k[0], k[1], path, validate) for k in _store_keys(f, path)}
