"""Every ``tts-gym`` subcommand, walked with bad inputs: each ends with one line on stderr and a
non-zero status -- never a traceback. Numeric flags are checked against their ranges, conflicting
flags are refused, output locations are checked before any work, a closed stdout pipe is one line."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tts_gym.cli import build_parser, main
from tts_gym.data import save_stores
from tts_gym.data.synthetic import synthesize

ROOT = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    good = d / "good.h5"
    save_stores(good, synthesize(6, 8, seed=1))
    (d / "garbage.h5").write_bytes(b"not an hdf5 file")
    (d / "garbage.json").write_bytes(b"\x00\xff not json")
    (d / "empty_dir").mkdir()
    (d / "a_file").write_text("x")
    (d / "rows_missing.json").write_text(json.dumps([{"store": "m/b", "label": "SC@1"}]))
    (d / "rows_bad.json").write_text("{nope")
    (d / "rows_empty.json").write_text("[]")
    (d / "questions.jsonl").write_text(json.dumps({"question": "1+1?", "gold_answer": "2"}) + "\n")
    (d / "bad_questions.jsonl").write_text("not json\n")
    return d


# subcommand -> list of (argv after the command, fragment of the one-line message)
CASES = {
    ("data", "import"): [
        (["{d}/missing", "-o", "{d}/o.h5"], "no such file"),
        (["{d}/empty_dir", "-o", "{d}/o.h5"], "no AutoTTS store files"),
        (["{d}/garbage.json", "-o", "{d}/o.h5"], "corrupt JSON"),
        (["{d}/garbage.json", "-o", "{d}/empty_dir"], "is a directory"),
        (["{d}/garbage.json", "-o", "{d}/no/such/dir/o.h5"], "does not exist"),
        (["{d}/garbage.json", "-o", "{d}/a_file/o.h5"], "not a directory"),
        (["{d}/garbage.json", "-o", "{d}/o.h5", "--compression", "zip"], "invalid choice"),
    ],
    ("data", "fetch"): [
        (["--timeout", "0"], "must be a number in (0, 3600]"),
        (["--timeout", "inf"], "must be a number"),
        (["--base-url", "http://127.0.0.1:{port}/x", "--cache-dir", "{d}/cache", "-o", "{d}/f.h5",
          "--no-progress"], "cannot reach"),
        (["--cache-dir", "{d}/a_file", "--base-url", "http://127.0.0.1:{port}/x", "--no-progress"], "a_file"),
    ],
    ("data", "synth"): [
        (["-o", "{d}/s.h5", "--questions", "0"], "--questions: must be an integer in [1, 2147483647], got 0"),
        (["-o", "{d}/s.h5", "--branches", str(2**21)], "--branches"),
        (["-o", "{d}/s.h5", "--probe-interval", "0"], "--probe-interval"),
        (["-o", "{d}/s.h5", "--seed", "-1"], "--seed"),
        (["-o", "{d}/s.h5", "--questions", "1.5"], "got '1.5'"),
        (["-o", "{d}/empty_dir"], "is a directory"),
        (["-o", "{d}/nope/s.h5"], "does not exist"),
    ],
    ("data", "info"): [
        (["{d}/missing.h5"], "no such file"),
        (["{d}/garbage.h5"], "not an HDF5 file"),
        (["{d}/empty_dir"], "no AutoTTS store files"),
        (["{d}/good.h5", "--model", "nobody"], "no store"),
    ],
    ("collect",): [
        (["--base-url", "http://x", "--model", "m", "--questions", "{d}/questions.jsonl", "-o", "{d}/c.h5",
          "--concurrency", "0"], "--concurrency"),
        (["--base-url", "http://x", "--model", "m", "--questions", "{d}/questions.jsonl", "-o", "{d}/c.h5",
          "--top-p", "1.5"], "--top-p"),
        (["--base-url", "http://x", "--model", "m", "--questions", "{d}/questions.jsonl", "-o", "{d}/c.h5",
          "--temperature", "-1"], "--temperature"),
        (["--base-url", "http://x", "--model", "m", "--questions", "{d}/questions.jsonl", "-o", "{d}/c.h5",
          "--interval", "0"], "--interval"),
        (["--base-url", "http://x", "--model", "m", "--questions", "{d}/missing.jsonl", "-o", "{d}/c.h5"],
         "no such questions file"),
        (["--base-url", "http://x", "--model", "m", "--questions", "{d}/bad_questions.jsonl", "-o", "{d}/c.h5"],
         "not JSON"),
        (["--base-url", "http://x", "--model", "m", "--questions", "{d}/questions.jsonl", "-o", "{d}/good.h5"],
         "exists"),
        (["--base-url", "http://x", "--model", "m", "--questions", "{d}/questions.jsonl", "-o", "{d}/good.h5",
          "--append", "--overwrite"], "cannot be used together"),
        (["--base-url", "http://x", "--model", "m", "--questions", "{d}/questions.jsonl", "-o",
          "{d}/nope/c.h5"], "does not exist"),
        (["--base-url", "http://127.0.0.1:{port}", "--model", "m", "--questions", "{d}/questions.jsonl",
          "-o", "{d}/c2.h5", "--branches", "2", "--max-retries", "0", "--progress", "none",
          "--checkpoint-dir", "{d}/ck"], "rerun the same command to resume"),
    ],
    ("run",): [
        (["--base-url", "http://127.0.0.1:9", "--model", "m", "--questions", "{d}/missing.jsonl",
          "--policy", "sc"], "no such questions file"),
        (["--base-url", "http://127.0.0.1:9", "--model", "m", "--questions", "{d}/questions.jsonl",
          "--policy", "nope"], "unknown policy 'nope'"),
        (["--base-url", "http://127.0.0.1:9", "--model", "m", "--questions", "{d}/questions.jsonl",
          "--policy", "sc", "--param", "n=0"], "parameter 'n' must be an integer in [1,"),
        (["--model", "m", "--questions", "{d}/questions.jsonl", "--policy", "sc"], "--base-url"),
        (["--base-url", "http://127.0.0.1:9", "--model", "m", "--questions", "{d}/questions.jsonl",
          "--policy", "sc", "--param", "n=2", "--max-retries", "0", "--timeout", "2", "-o", "{d}/r1"],
         "rerun the same command to resume"),
    ],
    ("compare",): [
        (["--policies", "nope", "--out", "{d}/cmp"], "unknown policies"),
        (["--out", "{d}/a_file"], "not a directory"),
        (["--seeds", "0", "--out", "{d}/cmp"], "--seeds"),
        (["--level", "1.5", "--out", "{d}/cmp"], "--level: must be a number in (0, 1), got 1.5"),
        (["--level", "nan", "--out", "{d}/cmp"], "--level"),
        (["--subsample-n", "4", "--out", "{d}/cmp"], "--subsample-n applies to --protocol subsample"),
        (["--address", "auto", "--out", "{d}/cmp"], "--address applies to --backend ray"),
        (["--data", "{d}/missing.h5", "--out", "{d}/cmp"], "no such file"),
        (["--data", "{d}/good.h5", "--protocol", "subsample", "--subsample-n", "99", "--out", "{d}/cmp",
          "--policies", "sc", "--no-progress"], "exceeds"),
    ],
    ("plot",): [
        (["--results", "{d}/missing.json", "-o", "{d}/p.png"], "no such file"),
        (["--results", "{d}/rows_bad.json", "-o", "{d}/p.png"], "rows_bad.json: not a results JSON file"),
        (["--results", "{d}/rows_missing.json", "-o", "{d}/p.png"], "row 0: field 'model' is missing"),
        (["--results", "{d}/rows_empty.json", "-o", "{d}/p.png"], "no rows"),
        (["--results", "{d}/rows_empty.json", "--data", "{d}/good.h5", "-o", "{d}/p.png"], "would be ignored"),
        (["--results", "{d}/rows_empty.json", "-o", "{d}/empty_dir"], "is a directory"),
        (["--ncols", "0", "-o", "{d}/p.png"], "--ncols"),
    ],
    ("table",): [
        (["--results", "{d}/rows_bad.json"], "not a results JSON file"),
        (["--results", "{d}/rows_empty.json"], "no rows"),
        (["--results", "{d}/rows_missing.json", "--seeds", "3"], "--seeds would be ignored"),
        (["--data", "{d}/garbage.h5", "-o", "{d}/t.md"], "not an HDF5 file"),
        (["--data", "{d}/good.h5", "--model", "nobody", "-o", "{d}/t.md"], "holds no store"),
        (["--results", "{d}/rows_empty.json", "-o", "{d}/a_file/t.md"], "not a directory"),
    ],
    ("discover",): [
        (["--out", "{d}/disc", "--rounds", "-1"], "--rounds"),
        (["--out", "{d}/disc", "--betas", "1.5"], "--betas"),
        (["--out", "{d}/disc", "--select-beta", "0.3"], "must be one of the betas"),
        (["--out", "{d}/disc", "--seeds", "0"], "--seeds"),
        (["--out", "{d}/a_file"], "not a directory"),
        (["--out", "{d}/disc", "--rounds", "1"], "ANTHROPIC_API_KEY"),
    ],
    ("eval",): [
        (["--policy", "sc", "--param", "n=-5"], "'n' must be an integer in [1, 2147483647], got -5"),
        (["--policy", "sc", "--param", "n=0"], "got 0"),
        (["--policy", "esc", "--param", "window_size=0"], "'window_size'"),
        (["--policy", "pp", "--param", "num_chains=-3"], "'num_chains'"),
        (["--policy", "pp", "--param", "max_steps=0"], "'max_steps'"),
        (["--policy", "asc", "--param", "threshold=-1"], "'threshold'"),
        (["--policy", "asc", "--param", "threshold=1.5"], "'threshold'"),
        (["--policy", "sc", "--param", "n=null"], "got null"),
        (["--policy", "sc", "--param", "n=[1]"], "got a list"),
        (["--policy", "sc", "--param", "n={{}}"], "got an object"),
        (["--policy", "sc", "--param", "n=Infinity"], "got inf"),
        (["--policy", "sc", "--param", "n"], "--param expects KEY=VALUE"),
        (["--policy", "sc", "--params", "{{bad"], "--params is not valid JSON"),
        (["--policy", "cmc", "--param", "beta=2"], "'beta'"),
        (["--policy", "sc", "--seeds", "0"], "--seeds"),
        (["--policy", "sc", "--seeds", "-3"], "--seeds"),
        (["--policy", "sc", "--seeds", "ten"], "--seeds"),
        (["--policy", "sc", "--workers", "0"], "--workers"),
        (["--policy", "sc", "--impl", "python", "--workers", "2"], "no effect with --impl python"),
        (["--policy", "sc", "--num-cpus", "2"], "--num-cpus applies to --backend ray"),
        (["--policy", "sc", "--controller", "x.py"], "not both"),
        (["--controller", "{d}/missing.py"], "missing.py"),
        (["--controller", "agents/controllers/cmc.py", "--param", "beta=7"], "controller: parameter 'beta'"),
        (["--policy", "nope"], "unknown policy 'nope'"),
        (["--policy", "sc", "--data", "{d}/garbage.h5"], "not an HDF5 file"),
        (["--policy", "sc", "--data", "{d}/empty_dir"], "no AutoTTS store files"),
        (["--policy", "sc", "--data", "{d}/good.h5", "--model", "x"], "holds no store"),
        (["--policy", "sc", "--data", "synthetic", "--benchmark", "nope"], "seed<N>"),
        (["--agent", "maskable_ppo_aime24", "--param", "cost_weight=abc"], "'cost_weight' must be a number in [0, inf)"),
        (["--agent", "maskable_ppo_aime24", "--param", "cost_weight=-1"], "got -1"),
        (["--agent", "maskable_ppo_aime24", "--param", "greedy=maybe"], "'greedy' must be true or false"),
        (["--agent", "maskable_ppo_aime24", "--param", "seed=1.5"], "'seed' must be an integer"),
        (["--agent", "nope"], "no agent 'nope'"),
    ],
}


def _subcommands() -> set[tuple[str, ...]]:
    """Every leaf subcommand of the parser."""
    import argparse
    out = set()

    def walk(parser, prefix):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.add(prefix)
            return
        for name, sp in subs[0].choices.items():
            walk(sp, prefix + (name,))
    walk(build_parser(), ())
    return out


def test_every_subcommand_is_walked():
    assert _subcommands() == set(CASES)
    assert sum(len(v) for v in CASES.values()) >= 80


@pytest.mark.parametrize("command,i", [(c, i) for c, cases in CASES.items() for i in range(len(cases))],
                         ids=lambda x: "-".join(x) if isinstance(x, tuple) else str(x))
def test_bad_input_is_one_line(command, i, files, capsys, monkeypatch):
    argv, fragment = CASES[command][i]
    port = _closed_port()
    argv = [a.format(d=files, port=port) for a in argv]
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("TTS_GYM_CACHE", str(files / "cache_env"))
    try:
        rc = main(list(command) + argv)
    except SystemExit as exc:      # argparse
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc not in (0, None), err
    errors = [line for line in err.splitlines() if "error:" in line]   # progress lines may precede it
    assert "Traceback" not in err and len(errors) == 1 and errors[0] == err.splitlines()[-1], err
    assert fragment in errors[0], (fragment, err)


def test_output_checked_before_work(tmp_path, capsys, monkeypatch):
    """A bad output location fails at once: nothing is evaluated."""
    import tts_gym.evaluation.evaluate as E
    calls = []
    monkeypatch.setattr(E, "evaluate", lambda *a, **k: calls.append(1))
    (tmp_path / "f").write_text("x")
    assert main(["compare", "--out", str(tmp_path / "f" / "out")]) == 2
    assert main(["table", "-o", str(tmp_path), "--data", "synthetic"]) == 2
    assert main(["plot", "-o", str(tmp_path / "f" / "p.png")]) == 2
    assert calls == []


def test_broken_pipe_is_one_line():
    """``tts-gym eval --json | head -c 1``: the closed pipe is one line and status 141."""
    code = ("import sys, runpy; sys.argv = ['tts-gym', 'eval', '--policy', 'sc', '--param', 'n=4', "
            "'--seeds', '2', '--json']; from tts_gym.cli import main; sys.exit(main())")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r, w = os.pipe()
    os.close(r)                      # the reader is gone before anything is written
    proc = subprocess.run([sys.executable, "-c", code], stdout=w, stderr=subprocess.PIPE, env=env, cwd=ROOT,
                          timeout=600)
    os.close(w)
    err = proc.stderr.decode()
    assert proc.returncode == 141, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "broken pipe" in err


def test_unreachable_api_is_one_line(tmp_path, shared_replay_dir):
    """``discover`` against an unreachable Messages API: one line, status 1 (no SDK traceback)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANTHROPIC_API_KEY="test-key", TTS_GYM_DATA=str(shared_replay_dir))
    cmd = [sys.executable, "-m", "tts_gym.cli", "discover", "--out", str(tmp_path / "run"), "--rounds", "1",
           "--base-url", f"http://127.0.0.1:{_closed_port()}", "--max-retries", "0", "--no-baselines",
           "--no-heldout", "--models", "Qwen3-0.6B", "--seeds", "1", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    err = proc.stderr.strip()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and len(err.splitlines()) == 1 and "Messages API" in err, err


def test_conflicting_results_and_protocol_options(tmp_path, capsys):
    rows = tmp_path / "r.json"
    assert main(["compare", "--out", str(tmp_path / "c"), "--seeds", "2", "--policies", "sc",
                 "--no-progress"]) == 0
    rows.write_bytes((tmp_path / "c" / "results.json").read_bytes())
    capsys.readouterr()
    assert main(["table", "--results", str(rows), "--protocol", "bootstrap"]) == 2
    assert "--protocol would be ignored" in capsys.readouterr().err
    assert main(["table", "--results", str(rows)]) == 0
