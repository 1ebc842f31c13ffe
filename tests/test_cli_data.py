"""``tts-gym data`` commands, the offline fetch path, and data-location resolution."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tts_gym.cli import main
from tts_gym.data.resolve import fetched_store_path, resolve_store, resolve_stores
from tts_gym.data import StoreNotFoundError, list_stores, load_stores, open_store
from tts_gym.data.fetch import FetchError, fetch_autotts
from tts_gym.data.synthetic import synthesize

from conftest import BENCHMARKS, MODELS, REPO_ROOT


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket closes


def test_import_then_info(shared_replay_dir, tmp_path, capsys):
    out = tmp_path / "one.h5"
    assert main(["data", "import", str(shared_replay_dir / "Qwen3-1.7B"), "-o", str(out)]) == 0
    assert "imported 3 store(s)" in capsys.readouterr().err
    assert list_stores(out) == [("Qwen3-1.7B", b) for b in BENCHMARKS]
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    for b in BENCHMARKS:
        assert f"Qwen3-1.7B/{b}" in text
    assert "majority@N" in text and "pass@N" in text and "73.3 %" in text  # aime24 majority@128


def test_info_json_statistics(shared_h5, capsys):
    assert main(["data", "info", str(shared_h5), "--json", "--model", "Qwen3-8B"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["benchmark"] for r in rows] == list(BENCHMARKS)
    r = rows[0]  # Qwen3-8B aime24, cf. docs/replay-semantics.md, "Replay stores"
    assert (r["questions"], r["branches"], r["k_min"], r["k_max"]) == (30, 3840, 4, 80)
    assert (r["tokens_min"], r["tokens_max"]) == (1977, 41470)
    assert round(r["k_mean"], 1) == 27.7 and round(r["distinct_finals"], 1) == 9.3
    assert round(r["pass_acc"] * 30) == 28  # gold among the finals for 28 of 30 questions


def test_majority_statistic_matches_counter_over_finals(shared_replay_dir):
    """majority@N: Counter.most_common over the finals in stored order (ties: earliest branch)."""
    from collections import Counter

    from tts_gym.data.summary import summarize_store
    from tts_gym.data import read_autotts_json
    for b in BENCHMARKS:
        path = shared_replay_dir / "Qwen3-0.6B" / f"{b}.json"
        recs = json.loads(path.read_text())
        want = sum(Counter(br[2] for br in r["each_branch"]).most_common(1)[0][0] == r["gold_answer"]
                   for r in recs) / len(recs)
        assert summarize_store(read_autotts_json(path))["majority_acc"] == pytest.approx(want, abs=1e-12)


def test_info_reads_json_sources_too(shared_replay_dir, capsys):
    assert main(["data", "info", str(shared_replay_dir / "Qwen3-4B" / "aime25.json"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["model"], row["benchmark"], row["k_max"]) == ("Qwen3-4B", "aime25", 80)


def test_synth_command_and_append(tmp_path, capsys):
    out = tmp_path / "syn.h5"
    assert main(["data", "synth", "-o", str(out), "--questions", "12", "--branches", "8", "--seed", "5"]) == 0
    assert main(["data", "synth", "-o", str(out), "--questions", "4", "--branches", "3", "--seed", "6",
                 "--append", "--compression", "lzf"]) == 0
    assert list_stores(out) == [("synthetic", "seed5"), ("synthetic", "seed6")]
    assert open_store(out, benchmark="seed5").equals(synthesize(12, 8, seed=5))
    assert main(["data", "info", str(out)]) == 0
    assert "synthetic/seed6" in capsys.readouterr().out


def test_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "missing.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.h5" in err and "Traceback" not in err
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF garbage")
    assert main(["data", "info", str(junk)]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err
    assert main(["data", "synth", "-o", str(tmp_path / "no" / "dir" / "x.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_entry_point_exit_code_and_no_traceback(tmp_path):
    code = "import sys; from tts_gym.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", code, "data", "import", str(tmp_path / "nope"),
                           "-o", str(tmp_path / "o.h5")], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "no such file" in proc.stderr
    assert not (tmp_path / "o.h5").exists()


def test_fetch_offline_fails_fast_with_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TTS_GYM_CACHE", str(tmp_path / "cache"))
    url = f"http://127.0.0.1:{_closed_port()}/AutoTTS"
    t0 = time.perf_counter()
    rc = main(["data", "fetch", "--base-url", url, "-o", str(tmp_path / "out.h5"), "--no-progress"])
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 2 and elapsed < 20  # fails at once instead of hanging on a timeout
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "tts-gym data import DIR -o OUT.h5" in err and "TTS_GYM_DATA=DIR" in err
    assert not (tmp_path / "out.h5").exists()
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert leftovers == []  # no partial download
    with pytest.raises(FetchError, match="offline"):
        fetch_autotts(tmp_path / "x.h5", cache_dir=tmp_path / "c2", base_url=url, progress=False, timeout=1)


def test_fetch_unresolvable_host_fails_fast(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(FetchError, match="TTS_GYM_DATA"):
        fetch_autotts(tmp_path / "x.h5", cache_dir=tmp_path / "c", base_url="https://no-such-host.invalid/x",
                      progress=False, timeout=2)
    assert time.perf_counter() - t0 < 20  # fails at once instead of hanging


def test_fetch_from_a_local_mirror_converts_and_reuses_the_cache(shared_replay_dir, shared_h5, tmp_path,
                                                                 monkeypatch, capsys):
    """The download + verify + convert path, with a file:// mirror of the 12 stores."""
    monkeypatch.setenv("TTS_GYM_CACHE", str(tmp_path / "cache"))
    mirror = shared_replay_dir.resolve().as_uri()
    assert main(["data", "fetch", "--base-url", mirror, "--no-progress"]) == 0
    out = fetched_store_path()
    assert out == tmp_path / "cache" / "autotts.h5" and out.is_file()
    got, ref = load_stores(out), load_stores(shared_h5)
    assert list(got) == [(m, b) for m in MODELS for b in BENCHMARKS]
    assert all(got[k].equals(ref[k]) for k in ref)
    # a second fetch needs no network: the verified cache is reused (the URL is unreachable now)
    url = f"http://127.0.0.1:{_closed_port()}/"
    assert main(["data", "fetch", "--base-url", url, "-o", str(tmp_path / "again.h5"), "-q"]) == 0
    # and the real-data resolution finds the fetched file by default
    monkeypatch.delenv("TTS_GYM_DATA", raising=False)
    s = resolve_store(model="Qwen3-8B", benchmark="hmmt25")
    assert s.equals(ref[("Qwen3-8B", "hmmt25")])


def test_fetch_checksum_mismatch(shared_replay_dir, tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "Qwen3-4B").mkdir(parents=True)
    recs = json.loads((shared_replay_dir / "Qwen3-4B" / "aime24.json").read_text())
    recs[0]["question"] += " (edited)"
    (mirror / "Qwen3-4B" / "aime24.json").write_text(json.dumps(recs))
    one = {"models": ("Qwen3-4B",), "benchmarks": ("aime24",), "progress": False}
    with pytest.raises(FetchError, match="checksum mismatch for Qwen3-4B/aime24.json"):
        fetch_autotts(tmp_path / "x.h5", cache_dir=tmp_path / "c", base_url=mirror.as_uri(), **one)
    assert not (tmp_path / "x.h5").exists()
    assert not (tmp_path / "c" / "autotts" / "Qwen3-4B" / "aime24.json").exists()
    out = fetch_autotts(tmp_path / "x.h5", cache_dir=tmp_path / "c", base_url=mirror.as_uri(),
                        verify_checksums=False, **one)
    assert list_stores(out) == [("Qwen3-4B", "aime24")]
    assert open_store(out).questions[0].endswith("(edited)")


def test_resolve_store_locations(shared_replay_dir, shared_h5, tmp_path, monkeypatch):
    monkeypatch.setenv("TTS_GYM_CACHE", str(tmp_path / "empty-cache"))
    ref = open_store(shared_h5, model="Qwen3-0.6B", benchmark="aime25")
    # explicit data: directory of JSON, one JSON file, HDF5 file, a store object
    assert resolve_store(shared_replay_dir, "Qwen3-0.6B", "aime25").equals(ref)
    assert resolve_store(str(shared_replay_dir / "Qwen3-0.6B" / "aime25.json")).equals(ref)
    assert resolve_store(shared_h5, model="Qwen3-0.6B", benchmark="aime25").equals(ref)
    assert resolve_store(ref) is ref
    with pytest.raises(StoreNotFoundError, match="Qwen3-0.6B/aime24"):
        resolve_store(shared_replay_dir, model="Qwen3-0.6B")  # ambiguous: lists the candidates
    # TTS_GYM_DATA: a directory, or an .h5 file
    monkeypatch.setenv("TTS_GYM_DATA", str(shared_replay_dir))
    assert resolve_store(model="Qwen3-0.6B", benchmark="aime25").equals(ref)
    monkeypatch.setenv("TTS_GYM_DATA", str(shared_h5))
    assert resolve_store(model="Qwen3-0.6B", benchmark="aime25").equals(ref)
    # no data at all: the embedded synthetic default, whatever the environment says
    assert resolve_store().model == "synthetic"
    # asking for real data with nothing configured says how to get it
    monkeypatch.delenv("TTS_GYM_DATA")
    with pytest.raises(FileNotFoundError, match="tts-gym data fetch"):
        resolve_store(model="Qwen3-0.6B", benchmark="aime25")


def test_resolve_a_model_directory(shared_replay_dir):
    stores = resolve_stores(shared_replay_dir / "Qwen3-8B")  # one model's <benchmark>.json files
    assert [(s.model, s.benchmark) for s in stores] == [("Qwen3-8B", b) for b in BENCHMARKS]


def test_cache_dir_env(tmp_path, monkeypatch):
    from tts_gym.data.resolve import cache_dir
    monkeypatch.setenv("TTS_GYM_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TTS_GYM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "tts_gym"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "tts_gym"
    assert os.environ.get("TTS_GYM_CACHE") is None
