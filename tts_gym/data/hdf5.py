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

Writes are atomic (:mod:`tts_gym.files`): a temporary file in the destination directory is
written, fsync'ed and renamed over the destination (``os.replace``); on any error it is removed,
after a kill the next write removes it. Stores are written and read in blocks of questions
(:class:`StoreWriter`), so memory stays about that of the store itself (no padded copy of the
ragged probe ids, no per-string Python objects for the answer tables).

Every fault found on load is a :class:`StoreFormatError` naming the file, the store group, the
dataset and (where it applies) the question and branch.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from tts_gym.data.catalog import StoreNotFoundError, select_stores
from tts_gym.data.store import (COMPACT_ANSWERS, GOLD_ABSENT, PAD_ID, AnswerTables, ReplayStore,
                                StoreFormatError, answer_dtype, json_object)

SCHEMA_VERSION = 1
FILE_FORMAT = "tts_gym.replay-stores"
STORE_KIND = "tts_gym.ReplayStore"

_ARRAYS = {  # name -> (dtype, fill value, ndim); probe_ids is stored ragged (see the module docstring)
    "num_probes": (np.int32, 0, 2),
    "branch_tokens": (np.int64, 0, 2),
    "final_ids": (np.int32, PAD_ID, 2),
    "num_branches": (np.int32, 0, 1),
    "probe_interval": (np.int32, 0, 1),
    "gold_ids": (np.int32, GOLD_ABSENT, 1),
}
H5_DATASETS = {"probe_ids": "probe_ids_ragged", "answer_tables": "answers"}
"""Store field -> HDF5 dataset, where the names differ (for messages)."""
_CHUNK_BYTES = 1 << 20
_BLOCK_ELEMENTS = 1 << 23   # [Q, N, K] elements written / read at once (bounded temporaries)
_STRING_BLOCK = 1 << 18     # strings read / written at once


def _h5py():
    import h5py  # local import: keep ``import tts_gym`` light
    return h5py


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise ValueError(f"{what} name {name!r} cannot be an HDF5 group name (empty, '/', '.' or '..')")


def _compression_kwargs(compression: str | None, level: int | None) -> dict[str, Any]:
    if compression in (None, "none"):
        return {}
    if compression == "gzip":
        if level is not None and not (isinstance(level, int) and 0 <= level <= 9):
            raise ValueError(f"gzip compression level must be an integer in [0, 9], got {level!r}")
        return {"compression": "gzip", "compression_opts": 4 if level is None else level, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"unknown compression {compression!r} (gzip, lzf or none)")


def _chunk_rows(row_items: int, itemsize: int) -> int:
    return max(1, _CHUNK_BYTES // max(1, row_items * itemsize))


class StoreWriter:
    """Write one store group of an open HDF5 file block by block (questions in order).

    ``append(block)`` adds the questions of a validated :class:`ReplayStore` block (its branch and
    probe axes may differ from the previous blocks'); ``close()`` records the store's shape.
    Memory: one block. Used by :func:`save_stores` and the streaming JSON import."""

    def __init__(self, h5file, model: str, benchmark: str, *, attrs: Mapping | None = None,
                 compression: dict[str, Any] | None = None) -> None:
        _check_name(model, "model")
        _check_name(benchmark, "benchmark")
        h5py = _h5py()
        self.comp = dict(compression or {})
        parent = h5file.require_group(model)
        if benchmark in parent:
            del parent[benchmark]
        self.grp = grp = parent.create_group(benchmark)
        self.name = f"{model}/{benchmark}"
        grp.attrs["kind"] = STORE_KIND
        grp.attrs["schema_version"] = SCHEMA_VERSION
        grp.attrs["model"] = model
        grp.attrs["benchmark"] = benchmark
        grp.attrs["pad_id"] = PAD_ID
        grp.attrs["gold_absent"] = GOLD_ABSENT
        self.set_attrs(attrs or {})
        self.Q = self.N = self.K = self.P = self.A = 0
        self._ds: dict[str, Any] = {}
        self._strings = h5py.string_dtype("utf-8")
        off = grp.create_dataset("answer_offsets", shape=(1,), maxshape=(None,), dtype=np.int64,
                                 chunks=(16384,), fletcher32=True, **self.comp)
        off[0] = 0
        self._ds["answer_offsets"] = off

    def set_attrs(self, attrs: Mapping) -> None:
        try:
            self.grp.attrs["attrs_json"] = json.dumps(dict(attrs), ensure_ascii=False, sort_keys=True,
                                                      allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"store {self.name}: attrs must be JSON-serialisable ({exc})") from None

    def _dataset(self, name: str, dtype, width: int | None, fill) -> Any:
        ds = self._ds.get(name)
        if ds is None:
            if width is None:
                rows = _chunk_rows(1, np.dtype(dtype).itemsize if dtype is not self._strings else 16)
                ds = self.grp.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype,
                                             chunks=(min(rows, 1 << 18) if dtype is not self._strings
                                                     else 16384,),
                                             fillvalue=fill, fletcher32=dtype is not self._strings,
                                             **self.comp)
            else:
                rows = _chunk_rows(max(width, 1), np.dtype(dtype).itemsize)
                ds = self.grp.create_dataset(name, shape=(0, width), maxshape=(None, None), dtype=dtype,
                                             chunks=(rows, max(width, 1)), fillvalue=fill, fletcher32=True,
                                             **self.comp)
            self._ds[name] = ds
        return ds

    def _extend(self, name: str, data: np.ndarray, dtype, fill) -> None:
        if data.ndim == 1:
            ds = self._dataset(name, dtype, None, fill)
            n0 = ds.shape[0]
            ds.resize((n0 + data.shape[0],))
            if data.shape[0]:
                ds[n0:] = data
            return
        ds = self._dataset(name, dtype, data.shape[1], fill)
        n0, w = ds.shape
        if data.shape[1] > w:
            ds.resize((n0, data.shape[1]))
            w = data.shape[1]
        ds.resize((n0 + data.shape[0], w))
        if data.shape[0] and data.shape[1]:
            ds[n0:, :data.shape[1]] = data

    def _extend_strings(self, name: str, strings: list) -> None:
        ds = self._dataset(name, self._strings, None, None)
        n0 = ds.shape[0]
        ds.resize((n0 + len(strings),))
        for s0 in range(0, len(strings), _STRING_BLOCK):
            part = strings[s0:s0 + _STRING_BLOCK]
            arr = np.empty(len(part), dtype=object)
            arr[:] = part
            ds[n0 + s0:n0 + s0 + len(part)] = arr

    def append(self, block: ReplayStore) -> None:
        """Add the questions of ``block`` (already validated)."""
        Qb, Nb, Kb = block.probe_ids.shape
        step = max(1, _BLOCK_ELEMENTS // max(1, Nb * max(Kb, 1)))
        kpos = np.arange(Kb, dtype=np.int32)
        for q0 in range(0, Qb, step):
            q1 = min(Qb, q0 + step)
            mask = kpos[None, None, :] < block.num_probes[q0:q1, :, None]
            ragged = block.probe_ids[q0:q1][mask].astype(np.int32)
            self._extend("probe_ids_ragged", ragged, np.int32, PAD_ID)
            self.P += ragged.shape[0]
        for name, (dtype, fill, _) in _ARRAYS.items():
            self._extend(name, np.ascontiguousarray(getattr(block, name), dtype=dtype), dtype, fill)
        tables = block.answer_tables
        sizes = tables.sizes()
        offsets = self.A + np.cumsum(sizes)
        self._extend("answer_offsets", offsets.astype(np.int64), np.int64, 0)
        for a0 in range(0, tables.num_answers, _STRING_BLOCK):
            self._extend_strings("answers", tables.flat(a0, min(tables.num_answers, a0 + _STRING_BLOCK)))
        if tables.num_answers == 0:
            self._dataset("answers", self._strings, None, None)
        self.A += tables.num_answers
        self._extend_strings("questions", list(block.questions))
        self._extend_strings("gold_answers", list(block.gold_answers))
        self.Q += Qb
        self.N = max(self.N, Nb)
        self.K = max(self.K, Kb)

    def close(self) -> None:
        for name, (dtype, fill, ndim) in _ARRAYS.items():   # datasets of a store with no question
            if name not in self._ds:
                self._dataset(name, dtype, 0 if ndim == 2 else None, fill)
        self._dataset("probe_ids_ragged", np.int32, None, PAD_ID)
        for name in ("answers", "questions", "gold_answers"):
            self._dataset(name, self._strings, None, None)
        for name, (dtype, fill, ndim) in _ARRAYS.items():   # every [Q, N] dataset as wide as the widest
            ds = self._ds[name]
            if ndim == 2 and ds.shape[1] < self.N:
                ds.resize((ds.shape[0], self.N))
        self.grp.attrs["probe_shape"] = np.array([self.Q, self.N, self.K], dtype=np.int64)


def _as_store_list(stores: ReplayStore | Mapping | Iterable[ReplayStore]) -> list[ReplayStore]:
    if isinstance(stores, ReplayStore):
        return [stores]
    if isinstance(stores, Mapping):
        return list(stores.values())
    return list(stores)


def _write_file(path: Path, fill, *, append: bool, keep: set[tuple[str, str]] | None = None) -> Path:
    """Write ``path`` atomically: ``fill(h5file)`` writes the new stores; with ``append`` the stores
    of the existing file not in ``keep`` (the new names) are copied first."""
    from tts_gym.files import atomic_path, check_output_path
    h5py = _h5py()
    check_output_path(path, what="store file", create_parent=False)
    old = None
    if append and path.exists():
        old = _open(path)   # checked before the temporary file is created
    try:
        with atomic_path(path, mkdir=False) as tmp:
            with h5py.File(tmp, "w") as out:
                out.attrs["format"] = FILE_FORMAT
                out.attrs["schema_version"] = SCHEMA_VERSION
                from tts_gym import __version__
                out.attrs["tts_gym_version"] = __version__
                if old is not None:
                    for model, benchmark in _store_keys(old, path):
                        if (model, benchmark) not in (keep or set()):
                            old.copy(old[model][benchmark], out.require_group(model), name=benchmark)
                fill(out)
    finally:
        if old is not None:
            old.close()
    return path


def save_stores(path: str | os.PathLike, stores: ReplayStore | Mapping | Iterable[ReplayStore], *,
                append: bool = False, compression: str | None = "gzip", compression_level: int | None = None,
                ) -> Path:
    """Write ``stores`` (a store, an iterable of stores, or a mapping whose values are stores) to ``path``.

    Every store is validated first (:meth:`ReplayStore.validate`). The file is replaced atomically
    (:func:`tts_gym.files.atomic_path`: temporary file in the same directory, fsync, ``os.replace``);
    on any error, or a kill, an existing file is untouched, and the temporary file left by a killed
    run is removed by the next write. With ``append=True`` the stores already in ``path`` are kept,
    except those with the same ``model/benchmark`` as a new one. ``compression``: ``"gzip"``
    (default, level 4, with shuffle), ``"lzf"`` or ``None``. Returns the path written.
    """
    path = Path(os.fspath(path)).expanduser()
    items = _as_store_list(stores)
    seen: set[tuple[str, str]] = set()
    for s in items:
        if not isinstance(s, ReplayStore):
            raise TypeError(f"expected ReplayStore objects, got {type(s).__name__}")
        key = (s.model, s.benchmark)
        if key in seen:
            raise ValueError(f"store {s.name} given twice")
        seen.add(key)
        _check_name(s.model, "model")
        _check_name(s.benchmark, "benchmark")
        s.validate()
    comp = _compression_kwargs(compression, compression_level)

    def fill(out) -> None:
        for s in items:
            w = StoreWriter(out, s.model, s.benchmark, attrs=s.attrs, compression=comp)
            w.append(s)
            w.close()

    return _write_file(path, fill, append=append, keep=seen)


def write_store_blocks(path: str | os.PathLike, stores: Iterable[tuple[str, str, dict, Iterable[ReplayStore]]],
                       *, append: bool = False, compression: str | None = "gzip") -> Path:
    """Write stores given as streams of question blocks: ``(model, benchmark, attrs, blocks)`` each
    (blocks validated by their producer). Atomic like :func:`save_stores`; memory: one block."""
    path = Path(os.fspath(path)).expanduser()
    comp = _compression_kwargs(compression, None)
    items = list(stores)
    keep = {(m, b) for m, b, _, _ in items}
    if len(keep) != len(items):
        raise ValueError("a store is given twice")

    def fill(out) -> None:
        for model, benchmark, attrs, blocks in items:
            w = StoreWriter(out, model, benchmark, attrs=attrs, compression=comp)
            for block in blocks:
                w.append(block)
            if w.Q == 0:
                raise StoreFormatError("the store holds no question", file=f"{model}/{benchmark}",
                                       kind="no_questions")
            w.close()

    return _write_file(path, fill, append=append, keep=keep)


def _open(path: str | os.PathLike):
    """Open an HDF5 store file for reading, with clear errors."""
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not an HDF5 store file")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{path}: permission denied (cannot read)")
    try:
        ok = h5py.is_hdf5(path)
    except OSError as exc:
        raise StoreFormatError(f"cannot read the file ({exc})", file=path, kind="not_hdf5") from None
    if not ok:
        raise StoreFormatError("not an HDF5 file (truncated, corrupt or another format)", file=path,
                               kind="not_hdf5")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise StoreFormatError(f"cannot open HDF5 file ({exc})", file=path, kind="not_hdf5") from None
    try:
        fmt = f.attrs.get("format")
        version = f.attrs.get("schema_version")
    except (OSError, KeyError, TypeError) as exc:
        f.close()
        raise StoreFormatError(f"cannot read the file's attributes ({exc})", file=path, kind="not_hdf5") from None
    if fmt != FILE_FORMAT or version is None:
        f.close()
        raise StoreFormatError(f"not a tts_gym replay-store file (no format={FILE_FORMAT!r} attribute)",
                               file=path, kind="not_hdf5")
    v = _int_attr(version)
    if v is None:
        f.close()
        raise StoreFormatError(f"schema_version attribute must be an integer, got {version!r}", file=path,
                               kind="schema_version")
    if v > SCHEMA_VERSION:
        f.close()
        raise StoreFormatError(f"schema version {v} is newer than this tts_gym supports "
                               f"({SCHEMA_VERSION}); upgrade tts_gym", file=path, kind="schema_version")
    return f


def _int_attr(v) -> int | None:
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    return None


def _store_keys(f, path) -> list[tuple[str, str]]:
    """``(model, benchmark)`` of every store group (``/<model>/<benchmark>`` with ``kind`` set), sorted."""
    h5py = _h5py()
    keys = []
    for model, mgrp in f.items():
        if not isinstance(mgrp, h5py.Group):
            continue
        for bench, grp in mgrp.items():
            if isinstance(grp, h5py.Group) and grp.attrs.get("kind") == STORE_KIND:
                keys.append((model, bench))
    return sorted(keys)


def _is_store(f, model: str, benchmark: str) -> bool:
    h5py = _h5py()
    mgrp = f.get(model) if "/" not in model else None
    grp = mgrp.get(benchmark) if isinstance(mgrp, h5py.Group) and "/" not in benchmark else None
    return isinstance(grp, h5py.Group) and grp.attrs.get("kind") == STORE_KIND


class _Reader:
    """Reads one store group dataset by dataset; every fault names the file, group and dataset."""

    def __init__(self, grp, loc: str) -> None:
        self.grp, self.loc = grp, loc

    def fail(self, detail: str, dataset: str | None = None, kind: str = "hdf5_layout", **where):
        raise StoreFormatError(detail, file=self.loc, dataset=dataset, kind=kind, **where)

    def dataset(self, name: str, ndim: int, kinds: str = "i"):
        h5py = _h5py()
        obj = self.grp.get(name)
        if obj is None:
            self.fail("missing dataset", name)
        if not isinstance(obj, h5py.Dataset):
            self.fail(f"must be a dataset, got a {type(obj).__name__.lower()}", name)
        if kinds == "s":
            if h5py.check_string_dtype(obj.dtype) is None:
                self.fail(f"must hold variable-length UTF-8 strings, got dtype {obj.dtype}", name,
                          kind="bad_dtype")
        elif obj.dtype.kind not in kinds:
            self.fail(f"must hold integers, got dtype {obj.dtype}", name, kind="bad_dtype")
        if len(obj.shape) != ndim:
            self.fail(f"must be {ndim}-dimensional, got shape {obj.shape}", name, kind="bad_shape")
        return obj

    def read(self, ds, sel=(), dataset: str | None = None):
        try:
            return ds[sel] if sel != () else ds[()]
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            self.fail(f"cannot read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                      f"corrupt file?)", dataset or ds.name.rsplit("/", 1)[-1], kind="corrupt")

    def ints(self, name: str, shape: tuple, dtype) -> np.ndarray:
        ds = self.dataset(name, len(shape))
        if tuple(ds.shape) != shape:
            self.fail(f"has shape {tuple(ds.shape)}, expected {shape} (probe_shape)", name, kind="bad_shape")
        arr = self.read(ds)
        info = np.iinfo(dtype)
        if arr.dtype != dtype:
            if arr.size and (int(arr.min()) < info.min or int(arr.max()) > info.max):
                bad = np.nonzero((arr < info.min) | (arr > info.max))
                where = dict(zip(("question", "branch"), (int(v[0]) for v in bad)))
                self.fail(f"value {int(arr[tuple(v[0] for v in bad)])} does not fit {np.dtype(dtype).name}",
                          name, kind="out_of_range", **where)
            arr = arr.astype(dtype)
        return arr

    def strings(self, name: str, n: int) -> tuple[str, ...]:
        ds = self.dataset(name, 1, "s")
        if ds.shape[0] != n:
            self.fail(f"has {ds.shape[0]} entries, expected {n}", name, kind="bad_shape")
        out: list[str] = []
        for s0 in range(0, n, _STRING_BLOCK):
            raw = self.read(ds, np.s_[s0:min(n, s0 + _STRING_BLOCK)], name)
            for i, b in enumerate(raw.tolist()):
                try:
                    out.append(b.decode("utf-8") if isinstance(b, bytes) else str(b))
                except UnicodeDecodeError:
                    self.fail("is not valid UTF-8", name, question=s0 + i, kind="invalid_string")
        return tuple(out)


def _read_store(f, model: str, benchmark: str, path, validate: bool) -> ReplayStore:
    grp = f[model][benchmark]
    loc = f"{path}:/{model}/{benchmark}"
    r = _Reader(grp, loc)
    version = _int_attr(grp.attrs.get("schema_version"))
    if version is None:
        r.fail(f"schema_version attribute must be an integer, got {grp.attrs.get('schema_version')!r}",
               kind="schema_version")
    if version > SCHEMA_VERSION:
        r.fail(f"schema version {version} is newer than supported ({SCHEMA_VERSION})", kind="schema_version")
    shape = grp.attrs.get("probe_shape")
    try:
        dims = [int(v) for v in np.asarray(shape).ravel()] if shape is not None else None
        ok = (dims is not None and len(dims) == 3 and np.asarray(shape).dtype.kind in "iu"
              and min(dims) >= 0)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        r.fail(f"attribute probe_shape must be three non-negative integers [Q, N, K], got {shape!r}")
    Q, N, K = dims
    try:
        attrs = json_object(grp.attrs.get("attrs_json", "{}"), "attribute attrs_json")
    except ValueError as exc:
        r.fail(str(exc))
    names = {}
    for key in ("model", "benchmark"):
        v = grp.attrs.get(key)
        if not isinstance(v, str):
            r.fail(f"attribute {key} must be a string, got {v!r}")
        names[key] = v
    arrays = {name: r.ints(name, (Q, N) if nd == 2 else (Q,), dtype) for name, (dtype, _, nd) in _ARRAYS.items()}
    offsets_ds = r.dataset("answer_offsets", 1)
    if offsets_ds.shape != (Q + 1,):
        r.fail(f"has shape {offsets_ds.shape}, expected {(Q + 1,)}", "answer_offsets", kind="bad_shape")
    offsets = r.read(offsets_ds).astype(np.int64)
    answers_ds = r.dataset("answers", 1, "s")
    A = answers_ds.shape[0]
    if offsets.size and (offsets[0] != 0 or offsets[-1] != A or np.any(np.diff(offsets) < 0)):
        bad = np.flatnonzero(np.diff(offsets) < 0)
        r.fail(f"must rise from 0 to the {A} entries of 'answers', got " + (
            f"{int(offsets[0])} first" if offsets[0] != 0 else f"{int(offsets[-1])} last"
            if offsets[-1] != A else f"a decrease after question {int(bad[0])}"), "answer_offsets")
    sizes = np.diff(offsets)
    num_probes = arrays["num_probes"]
    bad = (num_probes < 0) | (num_probes > K)
    if bad.any():
        q, b = (int(v[0]) for v in np.nonzero(bad))
        r.fail(f"must be in [0, {K}] (probe_shape K), got {int(num_probes[q, b])}", "num_probes",
               question=q, branch=b)
    ragged_ds = r.dataset("probe_ids_ragged", 1)
    P = int(num_probes.sum(dtype=np.int64))
    if ragged_ds.shape != (P,):
        r.fail(f"has {ragged_ds.shape[0]} entries, num_probes sums to {P}", "probe_ids_ragged", kind="bad_shape")
    dtype = answer_dtype(int(sizes.max()) if sizes.size else 0)
    probe_ids = np.full((Q, N, K), PAD_ID, dtype=dtype)
    per_q = num_probes.sum(axis=1, dtype=np.int64)
    qstart = np.zeros(Q + 1, np.int64)
    np.cumsum(per_q, out=qstart[1:])
    step = max(1, _BLOCK_ELEMENTS // max(1, N * max(K, 1)))
    kpos = np.arange(K, dtype=np.int32)
    for q0 in range(0, Q, step):
        q1 = min(Q, q0 + step)
        blk = r.read(ragged_ds, np.s_[int(qstart[q0]):int(qstart[q1])], "probe_ids_ragged")
        if dtype == np.int16 and blk.size and (int(blk.min()) < PAD_ID or int(blk.max()) > COMPACT_ANSWERS):
            # out of any table: locate it before the compact cast could wrap it
            i = int(np.argmax((blk < PAD_ID) | (blk > COMPACT_ANSWERS))) + int(qstart[q0])
            q = int(np.searchsorted(qstart, i, side="right") - 1)
            cum = np.cumsum(num_probes[q], dtype=np.int64)
            b = int(np.searchsorted(cum, i - qstart[q], side="right"))
            k = int(i - qstart[q] - (cum[b - 1] if b else 0))
            r.fail(f"probe {k}: answer id {int(ragged_ds[i])} outside the question's table of "
                   f"{int(sizes[q])} answers", "probe_ids_ragged", question=q, branch=b, kind="bad_answer_id")
        mask = kpos[None, None, :] < num_probes[q0:q1, :, None]
        probe_ids[q0:q1][mask] = blk
        del mask, blk
    chunks = (r.read(answers_ds, np.s_[a0:min(A, a0 + _STRING_BLOCK)], "answers").tolist()
              for a0 in range(0, A, _STRING_BLOCK))
    try:
        tables = AnswerTables.from_bytes(chunks, offsets)
    except StoreFormatError as exc:
        r.fail(exc.detail, "answers", kind=exc.kind, question=exc.question)
    store = ReplayStore(model=names["model"], benchmark=names["benchmark"], probe_ids=probe_ids,
                        answer_tables=tables, gold_answers=r.strings("gold_answers", Q),
                        questions=r.strings("questions", Q), attrs=attrs, **arrays)
    if validate:
        store.validate(loc, datasets=H5_DATASETS)
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


def iter_stores(path: str | os.PathLike, keys: Iterable[tuple[str, str]] | None = None, *,
                validate: bool = True) -> Iterator[ReplayStore]:
    """The stores of an HDF5 file one at a time (``keys``: which, in that order; default all, sorted)."""
    with _open(path) as f:
        for k in (_store_keys(f, path) if keys is None else list(keys)):
            yield _read_store(f, k[0], k[1], path, validate)


def load_stores(path: str | os.PathLike, *, validate: bool = True) -> dict[tuple[str, str], ReplayStore]:
    """All stores of an HDF5 file, keyed by ``(model, benchmark)`` in sorted order."""
    return {(s.model, s.benchmark): s for s in iter_stores(path, validate=validate)}
