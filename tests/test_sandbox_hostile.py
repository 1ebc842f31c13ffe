"""Hostile controllers (tests/hostile/*.py) against the sandbox: each one is contained, and the
failure (or the printed observation) it is recorded with says what happened.

Every file starts with ``# key: value`` lines: ``hostile`` (the attack), ``layer`` (``full``: the
real path, static rules + restricted namespace + audit hook; ``hook``: raw Python with the audit
hook; ``none``: raw Python, the operating-system layers alone), optionally ``seccomp: off`` (to show
what another layer does on its own), ``machine`` and ``template`` (code that follows the file's own,
from ``tests/sandbox_inputs.py``: the part that several attacks share), then ``expect`` (the
recorded error kind, or ``ok``) and ``message`` (a substring of the recorded error, or of the
printed output when ``ok``), and ``landlock`` where Landlock, when on, stops the attempt earlier
with a message of its own. ``@@NAME@@`` placeholders are filled in here (paths of the host, the
secret, a marker).

Containment is checked on the host for every case: the parent's API key appears in nothing that
came back, no file outside the sandbox changed (the package, the store file, a world-writable
canary folder), no process of the sandbox is left (process table), nothing reached a loopback
listener of the host. Every case runs with Landlock off (it is an extra layer the sandbox does not
rely on) and, where the kernel has it, on.
"""
from __future__ import annotations

import os
import platform
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import SHARED_REPLAY_DIR, shared_store
from sandbox_inputs import HOSTILE_DIR, first_questions, hostile_header, hostile_source
from tts_gym.discovery.sandbox.confinement import package_dir
from tts_gym.discovery.sandbox.evaluation import SearchSet, evaluate_controller
from tts_gym.discovery.sandbox.runner import SandboxLimits

CASES = sorted(HOSTILE_DIR.glob("*.py"))
SECRET = "sk-ant-test-HOSTILE-SECRET-9876543210"
MARKER = "ttsgymdmn" + os.urandom(2).hex()
STORE_FILE = SHARED_REPLAY_DIR / "Qwen3-1.7B" / "aime24.json"


def snapshot(paths) -> dict:
    out = {}
    for root in paths:
        root = Path(root)
        items = [root] if root.is_file() else [p for p in root.rglob("*")
                                               if "__pycache__" not in p.parts]
        for p in items:
            st = p.lstat()
            out[str(p)] = (st.st_mtime_ns, st.st_size, st.st_mode, st.st_uid, st.st_gid)
        if root.is_dir():
            out[str(root)] = sorted(x.name for x in root.iterdir())
    return out


def processes_with(needle: str) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            comm = (p / "comm").read_text().strip()
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if needle in comm or needle in cmd:
            found.append(f"{p.name} {comm} {cmd[:120]}")
    return found


class Listener:
    """A loopback TCP listener of the host that records every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def _runtime_neighbours() -> list[str]:
    """Entries beside the package that are there only because the Python runtime the sandbox sees
    read-only lives there (a virtual environment inside the checkout, as CI makes it)."""
    import os
    import sys
    parent = os.path.dirname(package_dir())
    out = []
    for root in {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}:
        rel = os.path.relpath(root, parent)
        if not rel.startswith(".."):
            out.append(rel.split(os.sep)[0])
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    store = shared_store("Qwen3-1.7B", "aime24")
    search = SearchSet([first_questions(store, 2)], seeds=[0, 1])
    canary = tmp_path_factory.mktemp("canary")
    (canary / "world-writable.txt").write_text("untouched\n")
    os.chmod(canary, 0o777)
    os.chmod(canary / "world-writable.txt", 0o666)
    listener = Listener()
    mp = pytest.MonkeyPatch()
    mp.setenv("ANTHROPIC_API_KEY", SECRET)
    subs = {"STORE_FILE": str(STORE_FILE), "SHARED_DIR": str(SHARED_REPLAY_DIR),
            "PACKAGE_DIR": package_dir(), "CANARY_DIR": str(canary), "SECRET": SECRET,
            "MARKER": MARKER, "HOST_PORT": str(listener.port),
            "QUESTION_HEX": store.questions[0][:40].encode().hex(),
            "RUNTIME_NEIGHBOURS": repr(_runtime_neighbours())}
    yield {"search": search, "subs": subs, "canary": canary, "listener": listener}
    mp.undo()
    listener.close()


def test_there_are_enough_cases():
    kinds = {hostile_header(p)["hostile"].split(" -- ")[0] for p in CASES}
    assert len(CASES) >= 30
    for k in ("namespace escape", "hook tampering", "secrets", "gold on disk",
              "gold by introspection", "exec", "fork", "daemons", "filesystem writes",
              "metadata changes", "sockets of every family", "floods", "memory", "CPU", "sleep",
              "recursion", "forged frames", "cross-episode memory"):
        assert k in kinds, k


def landlock_available() -> bool:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return platform.machine() in ("x86_64", "aarch64") and libc.syscall(
        444, None, ctypes.c_size_t(0), ctypes.c_uint32(1)) >= 1


@pytest.mark.parametrize("landlock", [False, True], ids=["landlock-off", "landlock-on"])
@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_hostile_controller_is_contained(path, landlock, world):
    m = hostile_header(path)
    if m.get("machine") and m["machine"] != platform.machine():
        pytest.skip(f"needs {m['machine']}")
    if landlock and not landlock_available():
        pytest.skip("the kernel has no Landlock (the landlock-off run covers this machine)")
    source = hostile_source(path)
    for k, v in world["subs"].items():
        source = source.replace(f"@@{k}@@", v)
    limits = SandboxLimits(timeout_s=90, episode_timeout_s=3, memory_mb=400, landlock=landlock,
                           seccomp=m.get("seccomp") != "off",
                           episodes_per_process=int(m.get("episodes-per-process", "64").split()[0]))
    watched = [package_dir(), world["canary"], STORE_FILE]
    before = snapshot(watched)
    connections = world["listener"].connections
    ev = evaluate_controller(source, world["search"], [0.5], limits, python_layer=m["layer"])
    recorded = ev.error if not ev.ok else ev.stdout
    expect, message = m["expect"], m["message"]
    if landlock and "landlock" in m:
        expect, message = "exception", m["landlock"]
    # the recorded outcome is the expected one, with a message that says what happened
    assert ("ok" if ev.ok else ev.error_kind) == expect, (path.name, ev.error_kind, ev.error,
                                                          ev.stdout[:500])
    assert message in (recorded or ""), (path.name, recorded)
    # containment, seen from the host
    everything = " ".join(str(x) for x in (ev.error, ev.stdout, ev.failed_episode, ev.layers))
    assert SECRET not in everything
    assert snapshot(watched) == before, "a file outside the sandbox changed"
    assert (world["canary"] / "world-writable.txt").read_text() == "untouched\n"
    assert world["listener"].connections == connections
    deadline = time.monotonic() + 10
    while processes_with(MARKER) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(MARKER) == [], "a process of the sandbox survived the job"
    if ev.layers:
        assert ev.layers.get("uid") == "65534"
        assert (ev.layers.get("landlock") == "off") == (not landlock)
        assert ev.layers.get("episode_filter") == ("off" if m.get("seccomp") == "off" else "on")
