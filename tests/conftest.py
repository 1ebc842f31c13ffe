"""Shared test fixtures.

The public AutoTTS replay stores live beside the repository at ``../shared/autotts-replay`` (CI has
them). Tests that use them must run, never skip: a missing directory is an error.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import pytest

from tts_gym.data.catalog import BENCHMARKS, MODELS  # noqa: F401 (the tests import them from here)
from tts_gym.data.store import ReplayStore

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_REPLAY_DIR = Path(os.environ.get("TTS_GYM_DATA", REPO_ROOT.parent / "shared" / "autotts-replay"))
SHARED_REFERENCE_DIR = SHARED_REPLAY_DIR.parent / "reference"


@lru_cache(maxsize=None)
def shared_store(model: str, benchmark: str) -> ReplayStore:
    """One shared AutoTTS store, loaded once per test session."""
    path = SHARED_REPLAY_DIR / model / f"{benchmark}.json"
    if not path.exists():
        raise FileNotFoundError(f"shared replay store missing: {path} (CI provides ../shared)")
    with open(path) as fh:
        return ReplayStore.from_records(model, benchmark, json.load(fh))


@lru_cache(maxsize=None)
def ragged_store() -> ReplayStore:
    """A small synthetic store whose questions have 3..14 branches, so every policy meets branch
    exhaustion (never reached on the 128-branch shared stores)."""
    from tts_gym.data.synthetic import synthesize

    base = synthesize(num_questions=12, num_branches=14, seed=3, max_probes=12)
    records = base.to_records()
    for q, rec in enumerate(records):
        n = 3 + (q * 5) % 12
        rec["each_branch"] = rec["each_branch"][:n]
        rec["final_answers_trace"] = rec["final_answers_trace"][:n]
    return ReplayStore.from_records("synthetic", "ragged", records)


@pytest.fixture(scope="session")
def shared_replay_dir() -> Path:
    if not SHARED_REPLAY_DIR.is_dir():
        raise FileNotFoundError(f"{SHARED_REPLAY_DIR} not found: the shared replay data is required")
    return SHARED_REPLAY_DIR


@pytest.fixture(scope="session")
def shared_h5(shared_replay_dir, tmp_path_factory) -> Path:
    """All 12 shared stores imported (with validation) into one HDF5 file, once per session."""
    from tts_gym.data import import_autotts, save_stores

    path = tmp_path_factory.mktemp("shared_h5") / "autotts.h5"
    save_stores(path, import_autotts(shared_replay_dir))
    return path


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance of 2 CPUs (shut down after the module if this fixture started it)."""
    import ray
    from tts_gym.evaluation.ray_backend import ensure_ray
    started = not ray.is_initialized()
    ensure_ray(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()
