"""Every writer is atomic: ``kill -9`` during a write leaves the previous output whole, the next
write removes the dead writer's temporary file, and files get the usual mode. Also: ``plot`` and
``table`` over several stores restart without redoing finished stores."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tts_gym.files import atomic_path, atomic_write, check_output_path, remove_stale_temp_files

ROOT = Path(__file__).resolve().parents[1]

# Each writer: code run in a child as ``write(version)`` (version 0 = the previous output,
# 1, 2, ... = the writes that get killed) and a check of what is on disk afterwards.
WRITERS = {
    "hdf5 store (save_stores)": """
        from tts_gym.data import save_stores
        from tts_gym.data.synthetic import synthesize
        def write(v):
            save_stores(OUT, synthesize(1500 if v else 20, 64, seed=v % 2))
    """,
    "hdf5 import (data import, streamed)": """
        import json, os
        from tts_gym.data.autotts import import_autotts_to_hdf5
        from tts_gym.data.synthetic import synthesize
        src = {}
        for s in (0, 1):
            d = os.path.join(os.path.dirname(OUT), f"src{s}", "m")
            os.makedirs(d, exist_ok=True)
            p = os.path.join(d, "b.json")
            if not os.path.exists(p):
                with open(p, "w") as fh:
                    json.dump(synthesize(20 if s == 0 else 600, 64, seed=s).to_records(), fh)
            src[s] = p
        def write(v):
            import_autotts_to_hdf5(src[1 if v else 0], OUT)
    """,
    "results JSON (EvalResult.to_json)": """
        from tts_gym.evaluation.evaluate import evaluate
        from tts_gym.data.synthetic import synthesize
        res = evaluate("sc", synthesize(4, 8), seeds=[0], progress=False)
        res.rows = res.rows * 20000
        small = res.rows[:1]
        def write(v):
            rows, res.rows = res.rows, (res.rows if v else small)
            res.to_json(OUT)
            res.rows = rows
    """,
    "markdown table (atomic_write)": """
        from tts_gym.files import atomic_write
        def write(v):
            atomic_write(OUT, ("| a | b |\\n" * (2_000_000 if v else 3)))
    """,
    "PNG (scaling_plot)": """
        from tts_gym.reports.plots import scaling_plot
        rows = [{"store": f"m/b{i}", "family": "sc", "label": f"SC@{n}", "accuracy": 50 + n / 10,
                 "avg_tokens": 1000.0 * n, "acc_low": 49.0, "acc_high": 51.0} for i in range(6) for n in (1, 4, 16, 64)]
        def write(v):
            scaling_plot(rows if v else rows[:4], path=OUT, ncols=3, dpi=300 if v else 40)
    """,
    "discovery history (write_json)": """
        from tts_gym.discovery.history import write_json
        def write(v):
            write_json(OUT, {"round": v, "data": ["x" * 100] * (300_000 if v else 1)})
    """,
    "collector checkpoint": """
        from pathlib import Path
        from tts_gym.collect.collector import _atomic_write_json
        def write(v):
            _atomic_write_json(Path(OUT), {"q": v, "branches": [[["1"] * 50, 500, "1"]] * (100_000 if v else 1)})
    """,
}

_DRIVER = """
import sys
OUT = sys.argv[1]
{code}
write(0)
print("ready", flush=True)
v = 1
while True:
    write(v)
    v += 1
"""


def _check(name: str, path: Path) -> int:
    """The version on disk (0: the previous output), after checking it is whole."""
    if name.startswith("hdf5"):
        from tts_gym.data import open_store
        s = open_store(path)          # validated: a whole, consistent store
        return 0 if s.num_questions == 20 else 1
    if name.startswith("PNG"):
        raw = path.read_bytes()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[-8:-4] == b"IEND", "truncated PNG"
        import matplotlib.image
        img = matplotlib.image.imread(path)
        return 0 if img.shape[1] < 1000 else 1
    text = path.read_text()
    if name.startswith("markdown"):
        assert text.endswith("|\n") and text.count("\n") in (3, 2_000_000)
        return 0 if text.count("\n") == 3 else 1
    obj = json.loads(text)            # whole JSON
    if name.startswith("results"):
        return 0 if len(obj) == 1 else 1
    key = "round" if "round" in obj else "q"
    return 0 if obj[key] == 0 else 1


@pytest.mark.parametrize("name", list(WRITERS))
def test_kill_minus_9_leaves_the_previous_output_whole(name, tmp_path):
    ext = {"hdf5": ".h5", "PNG": ".png", "markdown": ".md"}
    out = tmp_path / ("out" + next((e for k, e in ext.items() if name.startswith(k)), ".json"))
    script = tmp_path / "writer.py"
    script.write_text(_DRIVER.format(code=textwrap.dedent(WRITERS[name])))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # a kill landed during a write when the dead writer's temporary file is left behind; the
    # timing is the machine's, so try a few kill points until two writes were cut short
    landed = 0
    for attempt, delay in enumerate((0.05, 0.6, 0.0, 0.2, 0.0, 0.4, 0.0, 0.1, 0.0, 0.3)):
        if landed >= 2 or (landed and attempt >= 2):
            break
        proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, text=True)
        try:
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read()
            before = _check(name, out)
            assert before == 0
            # kill while a later write is under way (its temporary file exists)
            t_end = time.monotonic() + 60
            while not list(tmp_path.glob(f".{out.name}.{proc.pid}.*.tmp")) and time.monotonic() < t_end:
                time.sleep(0.002)
            time.sleep(delay * 0.1)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        landed += bool(list(tmp_path.glob(f".{out.name}.{proc.pid}.*.tmp")))
        assert _check(name, out) in (0, 1)     # whole: the previous output or a finished new one
        assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()
    assert landed, "the kill never landed during a write"
    # the next write removes what the killed writers left
    assert remove_stale_temp_files(out) >= 0
    assert not list(tmp_path.glob(f".{out.name}.*.tmp"))


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_next_write_cleans_stale_temporaries_but_not_live_ones(tmp_path):
    out = tmp_path / "r.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".r.json.{dead}.0123abcd.tmp"
    live = tmp_path / f".r.json.{os.getppid()}.0123abcd.tmp"
    other = tmp_path / f".other.json.{dead}.0123abcd.tmp"
    for p in (stale, live, other):
        p.write_text("partial")
    atomic_write(out, "{}")
    assert not stale.exists() and live.exists() and other.exists()
    assert out.read_text() == "{}"


def test_file_modes(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write(tmp_path / "a.txt", "x")
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        os.umask(0o077)
        q = atomic_write(tmp_path / "b.txt", "y")
        assert stat.S_IMODE(q.stat().st_mode) == 0o600
        os.chmod(p, 0o640)                       # replacing keeps the file's mode
        atomic_write(p, "z")
        assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.read_text() == "z"
        os.umask(0o022)
        from tts_gym.discovery.history import write_json
        write_json(tmp_path / "h.json", {"a": 1})
        assert stat.S_IMODE((tmp_path / "h.json").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_failed_writer_leaves_nothing(tmp_path):
    out = tmp_path / "x.png"
    atomic_write(out, b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert out.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["x.png"]
    with pytest.raises(FileNotFoundError, match="produced no file"):
        with atomic_path(tmp_path / "y.png"):
            pass


@pytest.mark.parametrize("bad,fragment", [("dir", "is a directory"), ("under_file", "is not a directory"),
                                          ("missing_parent", "does not exist"), ("", "not a file name")])
def test_check_output_path(tmp_path, bad, fragment):
    from tts_gym.files import OutputPathError
    (tmp_path / "f").write_text("x")
    target = {"dir": tmp_path, "under_file": tmp_path / "f" / "o.json",
              "missing_parent": tmp_path / "no" / "o.json", "": ""}[bad]
    with pytest.raises(OutputPathError, match=fragment):
        check_output_path(target, create_parent=False)


# -- restartable multi-store runs ------------------------------------------------------------------

def test_table_restarts_without_redoing_finished_stores(tmp_path, monkeypatch, capsys):
    from tts_gym.cli import main
    from tts_gym.data import save_stores
    from tts_gym.data.synthetic import synthesize
    import tts_gym.evaluation.evaluate as E

    data = tmp_path / "stores.h5"
    save_stores(data, [synthesize(5, 16, seed=s, model=f"Qwen3-{s}B", benchmark="aime24") for s in (1, 2, 3)])
    out = tmp_path / "table.md"
    argv = ["table", "--data", str(data), "--seeds", "2", "-o", str(out), "--no-progress"]
    real = E.evaluate
    calls: list[str] = []

    def interrupted(policies, stores=None, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(stores.name)
        return real(policies, stores, **kw)

    monkeypatch.setattr(E, "evaluate", interrupted)
    assert main(argv) == 130                       # interrupted during the third store
    assert not out.exists() and len(list((tmp_path / "table.md.parts").glob("*.json"))) == 2

    def counting(policies, stores=None, **kw):
        calls.append(stores.name)
        return real(policies, stores, **kw)

    monkeypatch.setattr(E, "evaluate", counting)
    calls.clear()
    assert main(argv) == 0
    assert calls == ["Qwen3-3B/aime24"]            # only the unfinished store
    assert "reused 2 finished store(s)" in capsys.readouterr().err
    assert not (tmp_path / "table.md.parts").exists()
    resumed = out.read_text()
    calls.clear()
    assert main(argv) == 0 and len(calls) == 3     # nothing left to reuse: a fresh run
    assert out.read_text() == resumed              # identical to the interrupted-then-resumed run


def test_plot_resume_reuses_oracle_curves(tmp_path, monkeypatch):
    from tts_gym.cli import main
    from tts_gym.data import save_stores
    from tts_gym.data.synthetic import synthesize
    import tts_gym.evaluation.evaluate as E

    data = tmp_path / "stores.h5"
    save_stores(data, [synthesize(4, 16, seed=s, model="m", benchmark=f"b{s}") for s in (1, 2)])
    png = tmp_path / "p.png"
    argv = ["plot", "--data", str(data), "--seeds", "2", "--policies", "sc,cmc", "-o", str(png),
            "--no-progress", "--keep-parts"]
    assert main(argv) == 0
    first = png.read_bytes()
    monkeypatch.setattr(E, "evaluate", lambda *a, **k: pytest.fail("a finished store was evaluated again"))
    assert main(argv) == 0
    assert png.read_bytes() == first
