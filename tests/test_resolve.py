"""The one store resolver: every front end accepts the same inputs and raises the same error."""
from __future__ import annotations

import pytest

import tts_gym
from tts_gym.data.catalog import (BENCHMARKS, HELDOUT_BENCHMARKS, MODELS, SEARCH_BENCHMARKS,
                                  StoreNotFoundError, model_sort_key, store_names)
from tts_gym.data.hdf5 import open_store
from tts_gym.data.resolve import default_store, resolve_store, resolve_stores
from tts_gym.data.synthetic import synthesize


def _keys(stores):
    return [(s.model, s.benchmark) for s in stores]


def test_catalog():
    assert set(SEARCH_BENCHMARKS) | set(HELDOUT_BENCHMARKS) == set(BENCHMARKS)
    assert not set(SEARCH_BENCHMARKS) & set(HELDOUT_BENCHMARKS)
    assert sorted(MODELS, key=model_sort_key) == list(MODELS)
    assert sorted(["Qwen3-14B", "Qwen3-8B", "Qwen3-0.6B"], key=model_sort_key) == ["Qwen3-0.6B", "Qwen3-8B",
                                                                                     "Qwen3-14B"]
    assert store_names(MODELS[:1], BENCHMARKS[:2]) == ["Qwen3-0.6B/aime24", "Qwen3-0.6B/aime25"]


def test_package_root_exports_the_resolver():
    assert tts_gym.resolve_stores is resolve_stores


def test_synthetic_and_store_objects():
    d = default_store()
    assert resolve_stores() == [d]
    assert resolve_stores(None) == resolve_stores("synthetic") == resolve_stores("synthetic/seed0") == [d]
    assert resolve_stores(model="synthetic") == [d]
    three, five = resolve_stores("synthetic", benchmark=["seed3", "seed5"])
    assert three.equals(synthesize(seed=3)) and five.equals(synthesize(seed=5))
    assert resolve_stores(d) == [d] and resolve_stores([d, three]) == [d, three]
    assert resolve_stores({"a": d}) == [d] and resolve_stores(iter([d])) == [d]
    with pytest.raises(StoreNotFoundError, match="seed<N>"):
        resolve_stores("synthetic", benchmark="aime24")
    with pytest.raises(ValueError, match="empty"):
        resolve_stores([])
    with pytest.raises(TypeError, match="replay data"):
        resolve_stores(3.5)


def test_hdf5_gives_all_its_stores_unless_narrowed(shared_h5):
    every = [(m, b) for m in MODELS for b in BENCHMARKS]
    assert _keys(resolve_stores(shared_h5)) == every
    assert _keys(resolve_stores(str(shared_h5), model="Qwen3-4B")) == [("Qwen3-4B", b) for b in BENCHMARKS]
    assert _keys(resolve_stores(shared_h5, benchmark="aime24")) == [(m, "aime24") for m in MODELS]
    got = resolve_stores(shared_h5, ["Qwen3-8B", "Qwen3-1.7B"], ["hmmt25", "aime24"])  # the order asked for
    assert _keys(got) == [("Qwen3-8B", "hmmt25"), ("Qwen3-8B", "aime24"), ("Qwen3-1.7B", "hmmt25"),
                          ("Qwen3-1.7B", "aime24")]
    assert got[0].equals(open_store(shared_h5, "Qwen3-8B", "hmmt25"))


def test_directory_json_file_and_names(shared_replay_dir, shared_h5, monkeypatch):
    ref = open_store(shared_h5, "Qwen3-1.7B", "aime25")
    assert len(resolve_stores(shared_replay_dir)) == len(MODELS) * len(BENCHMARKS)
    assert resolve_store(shared_replay_dir, "Qwen3-1.7B", "aime25").equals(ref)
    assert resolve_store(shared_replay_dir / "Qwen3-1.7B" / "aime25.json").equals(ref)
    renamed = resolve_store(shared_replay_dir / "Qwen3-1.7B" / "aime25.json", "M", "B")
    assert (renamed.model, renamed.benchmark) == ("M", "B")
    for location in (shared_replay_dir, shared_h5):   # "Model/benchmark" names under $TTS_GYM_DATA
        monkeypatch.setenv("TTS_GYM_DATA", str(location))
        assert resolve_store("Qwen3-1.7B/aime25").equals(ref)
        assert resolve_store(None, "Qwen3-1.7B", "aime25").equals(ref)
        assert _keys(resolve_stores(["Qwen3-1.7B/aime25", "synthetic/seed2"])) == [("Qwen3-1.7B", "aime25"),
                                                                                   ("synthetic", "seed2")]


def test_one_error_type_that_lists_what_exists(shared_replay_dir, shared_h5, tmp_path, monkeypatch):
    for location in (shared_replay_dir, shared_h5):
        with pytest.raises(StoreNotFoundError, match="Qwen3-32B/aime24; it holds: Qwen3-0.6B/aime24, "):
            resolve_stores(location, ["Qwen3-8B", "Qwen3-32B"], "aime24")   # no silent partial result
        with pytest.raises(StoreNotFoundError, match="benchmark gsm8k; it holds: .*Qwen3-8B/hmmt25"):
            resolve_stores(location, benchmark="gsm8k")
        with pytest.raises(StoreNotFoundError, match="3 stores match .*Qwen3-4B/hmmt25.*choose one"):
            resolve_store(location, model="Qwen3-4B")
    with pytest.raises(StoreNotFoundError, match="no such file or directory"):
        resolve_stores(tmp_path / "missing.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreNotFoundError, match="no AutoTTS store files"):
        resolve_stores(tmp_path / "empty")
    monkeypatch.delenv("TTS_GYM_DATA", raising=False)
    monkeypatch.setenv("TTS_GYM_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(StoreNotFoundError, match="tts-gym data fetch"):
        resolve_stores("Qwen3-8B/aime24")
    assert issubclass(StoreNotFoundError, FileNotFoundError) and issubclass(StoreNotFoundError, LookupError)


def test_env_and_evaluate_accept_the_same_inputs(shared_h5):
    """A multi-store file: the env and evaluate both take all its stores, or the one narrowed to."""
    from tts_gym.envs.env import ReplaySetup
    from tts_gym.evaluation.evaluate import _as_stores

    assert [s.name for s in ReplaySetup(shared_h5).stores] == [s.name for s in _as_stores(shared_h5)]
    assert len(_as_stores(shared_h5)) == len(MODELS) * len(BENCHMARKS)
    assert [s.name for s in ReplaySetup(shared_h5, "Qwen3-4B", "aime24").stores] == ["Qwen3-4B/aime24"]
    assert [s.name for s in _as_stores("synthetic/seed1")] == ["synthetic/seed1"]
