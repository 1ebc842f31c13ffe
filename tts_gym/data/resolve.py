"""Where replay data comes from, and a summary of what a store holds.

Resolution used by :func:`resolve_store` (and so by the main command):

1. ``data`` given explicitly: a :class:`ReplayStore`, ``"synthetic"``, an HDF5 file (``.h5``/``.hdf5``),
   an AutoTTS JSON file, or a directory of AutoTTS JSON laid out ``<model>/<benchmark>.json``.
2. no ``data`` and no ``model``/``benchmark``: the embedded synthetic default store
   (:func:`default_store`, generated on the fly from a fixed seed, cached in-process).
3. no ``data`` but a ``model`` (other than ``"synthetic"``) or ``benchmark``: the location named by the
   ``TTS_GYM_DATA`` environment variable (a directory of AutoTTS JSON or an HDF5 file), else the
   user cache filled by ``tts-gym data fetch`` (``$TTS_GYM_CACHE``, else ``$XDG_CACHE_HOME/tts_gym``,
   else ``~/.cache/tts_gym``).
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from tts_gym.data.store import GOLD_ABSENT, ReplayStore

ENV_DATA = "TTS_GYM_DATA"
ENV_CACHE = "TTS_GYM_CACHE"
DEFAULT_SEED = 0
DEFAULT_QUESTIONS = 30
DEFAULT_BRANCHES = 128
FETCHED_FILE = "autotts.h5"
HDF5_SUFFIXES = (".h5", ".hdf5")


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


def load_autotts_dir(path: str | os.PathLike) -> dict[tuple[str, str], ReplayStore]:
    """All AutoTTS JSON stores under ``path`` (``<model>/<benchmark>.json``), validated, keyed by
    ``(model, benchmark)``."""
    from tts_gym.data.autotts import import_autotts
    return import_autotts(path)


def _load_from(location: Path, model: str | None, benchmark: str | None) -> ReplayStore:
    from tts_gym.data.autotts import find_autotts_files, infer_names, read_autotts_json
    from tts_gym.data.hdf5 import _select, open_store

    if not location.exists():
        raise FileNotFoundError(f"{location}: no such file or directory")
    if location.is_file() and location.suffix.lower() in HDF5_SUFFIXES:
        return open_store(location, model=model, benchmark=benchmark)
    if location.is_file():
        return read_autotts_json(location, model, benchmark)
    files = {infer_names(f): f for f in find_autotts_files(location)}
    key = _select(sorted(files), model, benchmark, str(location))
    return read_autotts_json(files[key])


_SEED_NAME = re.compile(r"seed(\d+)$")


def resolve_store(data: Any = None, model: str | None = None, benchmark: str | None = None) -> ReplayStore:
    """The replay store to run on (see the module docstring for the resolution order).

    ``data``: ``None``, a :class:`ReplayStore`, ``"synthetic"``, or a path (HDF5 file, AutoTTS JSON
    file, or directory of them). ``model``/``benchmark`` select within the location; they may be
    omitted when a single store matches. ``model="synthetic"`` gives the synthetic default, or with
    ``benchmark="seed<N>"`` the synthetic store of seed ``N``.
    """
    if isinstance(data, ReplayStore):
        return data
    if data is None and model is None and benchmark is None:
        return default_store()
    if (isinstance(data, str) and data == "synthetic") or (data is None and model == "synthetic"):
        m = _SEED_NAME.match(benchmark or "")
        if benchmark is not None and not m:
            raise ValueError(f"synthetic benchmark must be 'seed<N>', got {benchmark!r}")
        return default_store(int(m.group(1)) if m else DEFAULT_SEED)
    if data is None:
        location = data_location()
        if location is None:
            raise FileNotFoundError(
                f"no replay data for model={model!r} benchmark={benchmark!r}: run `tts-gym data fetch`, "
                f"or set {ENV_DATA}=DIR (a directory of AutoTTS JSON <model>/<benchmark>.json, or an .h5 file "
                f"made by `tts-gym data import DIR -o OUT.h5`)")
    else:
        location = Path(os.fspath(data)).expanduser()
    return _load_from(location, model, benchmark)


# -- summary statistics -----------------------------------------------------------------------------

def summarize_store(store: ReplayStore) -> dict[str, Any]:
    """Summary statistics of a store (vectorised).

    ``majority_acc``: share of questions whose majority final answer over all branches equals the
    gold (ties go to the answer whose first vote comes from the earliest stored branch, as
    ``collections.Counter.most_common`` over the finals in stored order); ``pass_acc``: share whose gold is
    among the final answers; ``gold_anywhere``: share whose gold appears in any probe or final;
    ``branch_acc``: share of correct branches; ``distinct_finals``/``distinct_answers``: mean distinct
    final answers / all answers (probes too) per question; ``first_final_depth``: mean 1-based probe
    index at which a branch's final answer first appears among its probes (``first_final_frac``: the
    same as a fraction of ``K``); ``err_probe_share``: share of probes equal to the string ``"ERR"``.
    """
    Q, N, K = store.probe_ids.shape
    nb = store.num_branches
    real = np.arange(N)[None, :] < nb[:, None]
    kp = store.num_probes[real]
    tok = store.branch_tokens[real]
    fin = store.final_ids
    qidx = np.broadcast_to(np.arange(Q)[:, None], (Q, N))[real].astype(np.int64)
    sizes = np.array([len(t) for t in store.answer_tables], dtype=np.int64)
    A = int(sizes.max()) if Q else 1
    key = qidx * A + fin[real]
    uk, first_b, cnt = np.unique(key, return_index=True, return_counts=True)
    uq, uid = uk // A, uk % A
    o = np.lexsort((first_b, -cnt, uq))  # most votes; ties: the answer of the earliest branch
    head = np.ones(len(o), dtype=bool)
    head[1:] = uq[o][1:] != uq[o][:-1]
    maj_id = np.full(Q, -2, dtype=np.int64)
    maj_id[uq[o][head]] = uid[o][head]
    gold = store.gold_ids.astype(np.int64)
    has_gold = gold != GOLD_ABSENT
    majority = has_gold & (maj_id == gold)
    pass_n = has_gold & np.isin(np.arange(Q) * A + gold, uk)
    correct = has_gold[:, None] & (fin == gold[:, None]) & real
    in_probe = np.arange(K)[None, None, :] < store.num_probes[:, :, None]
    eq = (store.probe_ids == fin[:, :, None]) & in_probe
    found = eq.any(axis=2) & real
    first = eq.argmax(axis=2)[found] + 1
    err_share = 0.0
    n_probes = int(kp.sum())
    if n_probes:
        err_ids = np.array([t.index("ERR") if "ERR" in t else -3 for t in store.answer_tables], dtype=np.int64)
        err_share = float(((store.probe_ids == err_ids[:, None, None]) & in_probe).sum()) / n_probes
    return {
        "model": store.model, "benchmark": store.benchmark, "questions": Q, "branches": int(nb.sum()),
        "max_branches": N, "k_min": int(kp.min()), "k_mean": float(kp.mean()), "k_max": int(kp.max()),
        "tokens_min": int(tok.min()), "tokens_mean": float(tok.mean()), "tokens_max": int(tok.max()),
        "majority_acc": float(majority.mean()), "pass_acc": float(pass_n.mean()),
        "gold_anywhere": float(has_gold.mean()), "branch_acc": float(correct.sum() / max(1, real.sum())),
        "distinct_finals": float(np.bincount(uq, minlength=Q).mean()), "distinct_answers": float(sizes.mean()),
        "first_final_depth": float(first.mean()) if first.size else float("nan"),
        "first_final_frac": float((first / store.num_probes[found]).mean()) if first.size else float("nan"),
        "err_probe_share": err_share,
    }
