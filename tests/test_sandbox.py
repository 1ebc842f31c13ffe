"""The controller sandbox: the bubblewrap confinement, the seccomp filters, the per-episode
processes, the Python-level rules, the output channel, and the parent's scoring.

Hostile controllers, one file per attack, are in tests/hostile (tests/test_sandbox_hostile.py);
here are the pieces and the end-to-end properties: exact scores through the sandbox, no silent
downgrade, ``tts-gym eval --controller`` sandboxed and ``--trusted``, nothing left behind after a
CLI run, a parent that never raises on what a sandbox sends.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SHARED_REPLAY_DIR, shared_store
from sandbox_inputs import VOTE_MARGIN, first_questions
from test_sandbox_hostile import processes_with, snapshot
from tts_gym.discovery.sandbox import confinement as C
from tts_gym.discovery.sandbox import frames as F
from tts_gym.discovery.sandbox import seccomp
from tts_gym.discovery.sandbox.evaluation import (
    SearchSet, evaluate_controller, redact_store, run_unrestricted_probe,
)
from tts_gym.discovery.sandbox.inprocess import load_controller_policy
from tts_gym.discovery.sandbox.interface import ControllerRejected, make_question
from tts_gym.discovery.sandbox.namespace import check_source
from tts_gym.discovery.sandbox.runner import SandboxLimits, interpret

REPO = Path(__file__).resolve().parents[1]
CMC_FILE = REPO / "agents" / "controllers" / "cmc.py"
HOSTILE = REPO / "tests" / "hostile"
SECRET = "sk-ant-test-SECRET-0123456789"
STORE_FILE = SHARED_REPLAY_DIR / "Qwen3-1.7B" / "aime24.json"
LIMITS = SandboxLimits(timeout_s=60, episode_timeout_s=3, memory_mb=400)

@pytest.fixture(scope="module")
def store():
    return shared_store("Qwen3-1.7B", "aime24")


@pytest.fixture(scope="module")
def search(store):
    return SearchSet([store], seeds=[0])


@pytest.fixture(scope="module")
def small(store):
    return SearchSet([first_questions(store, 2)], seeds=[0, 1])


# ------------------------------------------------------------------------------------------------
# static rules and the question object
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("src, needle", [
    ("import os\nclass Controller: pass", "import of 'os'"),
    ("import numpy.testing\nclass Controller: pass", "numpy.testing"),
    ("from numpy import *\nclass Controller: pass", "import *"),
    ("class Controller:\n    def f(self, q): return q.__class__", ".__class__"),
    ("class Controller:\n    def f(self): return __builtins__", "__builtins__"),
    ("class Controller:\n    def f(self, g): return g.gi_frame", ".gi_frame"),
    ("class Controller:\n    def f(self): return '{0.x}'.format(self)", ".format"),
    ("class Other: pass", "top-level class `Controller`"),
    ("class Controller:\n    def f(self, q):\n        match q:\n"
     "            case object(__globals__=g): return g", "'__globals__' in a class pattern"),
    ("class Controller:\n    def __getattr__(self, n): return n", "defining '__getattr__'"),
    ("class Controller:\n    def __init_subclass__(cls): pass", "defining '__init_subclass__'"),
    ("class M(type): pass\nclass Controller(metaclass=M): pass", "class keywords"),
    ("class Controller:\n    x = '__globals__'", "the string '__globals__'"),
    ("class Controller:\n    def f(self, c): return c.cell_contents", ".cell_contents"),
    ("class Controller:\n    def f(self): return dict(__class__=1)", "keyword '__class__'"),
    ("import numpy as __np__\nclass Controller: pass", "name '__np__'"),
])
def test_static_rules(src, needle):
    with pytest.raises(ControllerRejected) as exc:
        check_source(src)
    assert needle in str(exc.value)


def test_static_rules_accept_ordinary_code():
    check_source(CMC_FILE.read_text())
    check_source(VOTE_MARGIN)
    check_source("from __future__ import annotations\nfrom dataclasses import dataclass\n"
                 "import numpy as np\nfrom collections import Counter, namedtuple\n"
                 "class Controller:\n    __slots__ = ('b',)\n    def __init__(self, beta):\n"
                 "        self.b = beta\n    def __repr__(self):\n        return type(self).__name__\n"
                 "    def solve(self, q):\n        match q.probe_new():\n"
                 "            case (a, i, True): return a\n            case _: return None\n"
                 "if __name__ == '__main__':\n    pass\n")


def test_question_object_leads_to_no_module(store):
    """No attribute of the question object is, or has as globals, a module: every longer path
    needs a dunder the rules refuse (``__closure__``, ``__self__``, ...)."""
    import types

    from tts_gym.core import kernels as K
    from tts_gym.envs.view import EpisodeView
    from tts_gym.policies.autotts_adapter import ReplayQuestion
    data = K.pack_stores([store])
    params = K.EnvParams(max_branches=int(data.probe_ids.shape[1]), fused=True, probe_cost=0,
                         token_budget=0)
    state = K.make_state(1, params.max_branches)
    view = EpisodeView(state, data, params, 0, store.answer_tables)
    K.reset_episode(state, 0, 0, np.arange(data.probe_ids.shape[1], dtype=np.int32))
    q = make_question(ReplayQuestion(view, lambda a: K.step_episode(state, data, params, 0, a),
                                     strict=True), lambda m: None)
    names = [n for n in dir(q) if not n.startswith("__")]
    assert sorted(names) == ["get_cost_per_branch_active", "get_new_branch_final_answer",
                             "get_seq_and_total_tokens", "num_branches", "probe_freq",
                             "probe_more", "probe_new"]
    for n in names:
        v = getattr(q, n)
        assert not isinstance(v, types.ModuleType)
        if callable(v):
            g = v.__globals__
            assert g["__builtins__"] == {} and not any(isinstance(x, types.ModuleType)
                                                       for x in g.values()), n
    assert q.probe_new()[1] == 0 and q.get_seq_and_total_tokens()[1] > 0


def test_redacted_payload_has_no_gold(search):
    import pickle
    red = search.redacted[0]
    assert np.all(red.gold_ids == -1) and set(red.gold_answers) == {""} and set(red.questions) == {""}
    full = search.stores[0]
    assert np.array_equal(red.final_ids, full.final_ids) and red.answer_tables == full.answer_tables
    raw = pickle.dumps(search.payload("x", [0.0]))
    assert full.questions[0][:40].encode() not in raw
    assert redact_store(full).attrs == {}


# ------------------------------------------------------------------------------------------------
# seccomp programs (installed in a forked child, without bubblewrap)
# ------------------------------------------------------------------------------------------------

def test_seccomp_programs_are_well_formed():
    for arch in ("x86_64", "aarch64"):
        for prog in (seccomp.sandbox_program(arch), seccomp.episode_program(arch)):
            assert len(prog) % 8 == 0 and 8 < len(prog) < 4096 * 8
            code, jt, jf, k = __import__("struct").unpack_from("<HBBI", prog, 0)
            assert (code, k) == (0x20, 4)          # the first instruction loads the arch
    with pytest.raises(seccomp.SeccompUnsupported, match="riscv64"):
        seccomp.sandbox_program("riscv64")


CHILD_CHECK = r'''
import errno, json, os, resource, socket, sys, threading
from tts_gym.discovery.sandbox import seccomp
out = {}
def attempt(name, f):
    try:
        f()
        out[name] = "ok"
    except (OSError, RuntimeError, ValueError) as exc:
        out[name] = errno.errorcode.get(getattr(exc, "errno", None) or 0, type(exc).__name__)
def fork_and_wait():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
def thread():
    t = threading.Thread(target=int)
    t.start()
    t.join()
seccomp.install(seccomp.sandbox_program())
attempt("socket", lambda: socket.socket())
attempt("fork", fork_and_wait)
attempt("thread", thread)
seccomp.install(seccomp.episode_program())
attempt("read", lambda: open(sys.executable, "rb").read(4))
attempt("write", lambda: open("/tmp/tts-gym-seccomp-test", "w"))
attempt("fork2", fork_and_wait)
attempt("thread2", thread)
attempt("kill", lambda: os.kill(os.getppid(), 0))
attempt("getrlimit", lambda: resource.getrlimit(resource.RLIMIT_AS))
attempt("setrlimit", lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))
print(json.dumps(out))
'''


def test_seccomp_filters_refuse_what_they_list():
    p = subprocess.run([sys.executable, "-c", CHILD_CHECK], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out == {"socket": "EPERM", "fork": "ok", "thread": "ok", "read": "ok", "write": "EPERM",
                   "fork2": "EPERM", "thread2": "RuntimeError", "kill": "EPERM",
                   "getrlimit": "ok", "setrlimit": "ValueError"}, out
    assert not os.path.exists("/tmp/tts-gym-seccomp-test")


# ------------------------------------------------------------------------------------------------
# the sandbox end to end
# ------------------------------------------------------------------------------------------------

def test_cmc_file_in_sandbox_matches_reference_fingerprints(store):
    """agents/controllers/cmc.py through the sandbox + parent re-play reproduces the reference's
    per-seed fingerprints (docs/replay-semantics.md, section 6: CMC b=0.5 seed 0: 21 correct,
    7,900,547 tokens; b=1.0 seed 0: 22, 13,764,893)."""
    search = SearchSet([store], seeds=[0])
    ev = evaluate_controller(CMC_FILE.read_text(), search, betas=[0.5, 1.0],
                             limits=SandboxLimits(timeout_s=120, episode_timeout_s=10))
    assert ev.ok, ev.error
    assert ev.point(0.5)["stores"][store.name]["correct"] == 21
    assert ev.point(0.5)["stores"][store.name]["total_tokens"] == 7_900_547
    assert ev.point(1.0)["stores"][store.name]["correct"] == 22
    assert ev.point(1.0)["stores"][store.name]["total_tokens"] == 13_764_893
    assert ev.monotone["ok"]
    layers = ev.layers
    assert layers["confinement"].startswith("bubblewrap") and layers["uid"] == "65534"
    assert layers["python_layer"] == "restricted namespace + audit hook"
    assert layers["episode_filter"] == "on" and layers["dumpable"] == "no"
    traces = ev.trace_summaries(search, 0.5, n=2)
    assert traces.count("### ") == 2 and "branch 0" in traces


PROBE = '''
import json, os
class Controller:
    def __init__(self, beta):
        pass
    def solve(self, question):
        R = {"env": dict(os.environ), "uid": os.getuid(), "gid": os.getgid(),
             "caps": [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1],
             "root": sorted(os.listdir("/")), "tmp": os.listdir("/tmp"),
             "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
             "hostname": os.uname().nodename}
        def attempt(name, f):
            try:
                R[name] = "OK " + str(f())[:300]
            except BaseException as exc:
                R[name] = "DENIED " + type(exc).__name__
        attempt("self_environ", lambda: open("/proc/self/environ", "rb").read())
        attempt("worker_environ", lambda: open("/proc/%d/environ" % os.getppid(), "rb").read())
        attempt("store", lambda: open(@@STORE@@).read(100))
        attempt("write_tmp", lambda: open("/tmp/x.txt", "w").write("x"))
        attempt("socket", lambda: __import__("socket").socket().connect(("127.0.0.1", 9)))
        attempt("subprocess", lambda: __import__("subprocess").run(["true"]))
        attempt("fork", lambda: os.fork())
        print(json.dumps(R))
        return None
'''


def probe_result(res) -> dict:
    assert res.ok, (res.error_kind, res.error, res.stderr[-2000:])
    return json.loads(res.stdout.splitlines()[0])


def test_operating_system_layers_alone(small, monkeypatch):
    """Raw Python (no rules, no audit hook) in the sandbox: nothing of the parent's environment,
    uid/gid 65534 without capabilities, its own host name, /proc showing only the sandbox, a
    root with the runtime and an empty /tmp, no store file, no writes, sockets or processes."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("TTS_GYM_CANARY", "inherited")
    res = run_unrestricted_probe(small, PROBE.replace("@@STORE@@", repr(str(STORE_FILE))),
                                 SandboxLimits(timeout_s=60, landlock=False))
    r = probe_result(res)
    assert SECRET not in json.dumps(r) and "TTS_GYM_CANARY" not in json.dumps(r)
    # nothing inherited (imports inside may set a variable or two of their own)
    assert set(C.child_environment(True)) <= set(r["env"]) and r["env"]["HOME"] == "/tmp"
    assert not {k for k, v in r["env"].items() if os.environ.get(k) == v} - set(
        C.child_environment(True)) - {"PYGAME_HIDE_SUPPORT_PROMPT"}
    assert (r["uid"], r["gid"], int(r["caps"], 16), r["hostname"]) == (65534, 65534, 0, "sandbox")
    bound = {Path(d).parts[1] for d in C.python_dirs() + C.site_dirs() + [C.package_dir()]}
    assert r["tmp"] == []                 # the private /tmp starts empty
    assert set(r["root"]) <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "proc",
                              "dev", "tmp"} | bound, r["root"]
    assert max(r["pids"]) < 10, r["pids"]
    for name in ("self_environ", "worker_environ", "store", "write_tmp", "socket", "subprocess",
                 "fork"):
        assert r[name].startswith("DENIED"), (name, r[name])


def test_audit_hook_alone_refuses_and_records(small, monkeypatch):
    """Raw Python with the audit hook (no rules): reads outside the runtime, writes, sockets and
    processes are refused by the hook, and the refusals are recorded even if caught."""
    res = run_unrestricted_probe(small, PROBE.replace("@@STORE@@", repr(str(STORE_FILE))),
                                 SandboxLimits(timeout_s=60, landlock=False), audit_hook=True)
    assert not res.ok and res.error_kind == "violation"
    assert "sandbox: open('/proc/self/status', 'r') refused" in res.error
    assert res.violations and res.failed_episode == 0


def test_landlock_is_an_extra_layer(small):
    """With the seccomp filters off, writing the private /tmp works -- unless Landlock is on (where
    the kernel has it); with the filters on it fails either way (the suite passes without it)."""
    code = ('class Controller:\n    def __init__(self, b): pass\n    def solve(self, q):\n'
            '        open("/tmp/probe.txt", "w").write("x")\n        print("written")\n')
    plain = run_unrestricted_probe(small, code, SandboxLimits(timeout_s=60, landlock=False,
                                                              seccomp=False))
    assert plain.ok and "written" in plain.stdout and plain.layers["landlock"] == "off"
    locked = run_unrestricted_probe(small, code, SandboxLimits(timeout_s=60, landlock=True,
                                                               seccomp=False))
    if locked.layers.get("landlock", "unavailable") == "unavailable":
        assert locked.ok
    else:
        assert not locked.ok and "PermissionError: [Errno 13]" in locked.error
    filtered = run_unrestricted_probe(small, code, SandboxLimits(timeout_s=60, landlock=False))
    assert not filtered.ok and "PermissionError: [Errno 1]" in filtered.error


LIBRARY_HEAVY = '''
from __future__ import annotations
import bisect, heapq, itertools, math, random, statistics
from collections import Counter, deque, namedtuple
from dataclasses import dataclass, field
from functools import lru_cache, partial, reduce
from typing import NamedTuple, Optional, TypeVar
import numpy as np

T = TypeVar("T")
Vote = namedtuple("Vote", "answer count")


class Seen(NamedTuple):
    answer: str
    index: int


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    order: list = field(default_factory=list)


@lru_cache(maxsize=None)
def threshold(n: int) -> float:
    return 1.0 - math.exp(-n / 4)


class Controller:
    def __init__(self, beta):
        self.reads = 2 + round(6 * beta)
        self.rng = np.random.default_rng(0)

    def solve(self, question):
        tally = Tally()
        for _ in range(self.reads):
            got = question.probe_new()
            if got is None:
                break
            match got:
                case (answer, index, finished):
                    tally.counts[answer] += 1
                    tally.order.append(Seen(answer, index))
        best = heapq.nlargest(1, (Vote(a, c) for a, c in tally.counts.items()),
                              key=lambda v: v.count)
        spread = statistics.pstdev([c for c in tally.counts.values()] or [0])
        _ = (np.linalg.norm(self.rng.random(3)), bisect.bisect([1, 2, 3], 2), threshold(3),
             reduce(partial(max), [1, 2]), list(itertools.islice(deque([1, 2]), 1)),
             random.random(), spread)
        print(f"votes {dict(tally.counts)} spread {spread:.2f}")
        return best[0].answer if best else None
'''


def test_ordinary_library_code_runs_in_the_sandbox(small):
    """What LLM-written controllers commonly use works under every layer (namedtuple and
    typing.NamedTuple ask for frames; dataclasses read code objects; numpy, statistics...)."""
    ev = evaluate_controller(LIBRARY_HEAVY, small, [0.0, 1.0], LIMITS)
    assert ev.ok, ev.error
    assert "votes" in ev.stdout and ev.monotone["ok"]


def test_wall_clock_limit_kills_the_sandbox(search):
    code = "class Controller:\n    def __init__(self, b): pass\n    def solve(self, q):\n" \
           "        while True:\n            try:\n                while True: pass\n" \
           "            except BaseException:\n                pass\n"
    t = time.monotonic()
    ev = evaluate_controller(code, search, betas=[0.0],
                             limits=SandboxLimits(timeout_s=4, episode_timeout_s=120))
    # the per-episode limit is far beyond the wall-clock limit: only the parent's kill ends it
    # (before the episode limit could, however slow the machine is)
    assert not ev.ok and ev.error_kind == "timeout" and "wall-clock" in ev.error
    assert time.monotonic() - t < 100
    assert processes_with("sandbox.worker") == []


STRICT = dataclasses.replace(LIMITS, episodes_per_process=1)

# after its first episode it answers after one probe: cheaper episodes because of what an earlier
# episode read, kept on a class of an allowed module, with no error to give it away
REMEMBERING = """
import collections


class Controller:
    def __init__(self, beta):
        pass

    def solve(self, question):
        memory = getattr(collections.ChainMap, "seen", None)
        if memory is None:
            memory = {}
            collections.ChainMap.seen = memory
        answer, index, finished = question.probe_new()
        if memory:
            return memory.get(answer, answer)
        for _ in range(3):
            answer, index, finished = question.probe_new()
        memory[answer] = answer
        return answer
"""


def test_episodes_are_independent_one_process_each(small):
    """State set on module objects in one episode is gone in the next (one process per episode);
    the same file in this process (``--trusted``) does see it: the check is sensitive."""
    code = (HOSTILE / "memory_across_episodes.py").read_text()
    ev = evaluate_controller(code, small, [0.5], STRICT)
    assert ev.ok, ev.error
    assert ev.layers["episodes"] == "one process per episode"
    assert ev.episodes[0.5]["steps"].shape == (4,)
    path = HOSTILE / "memory_across_episodes.py"
    from tts_gym.evaluation.rollout import evaluate_reference_python
    with pytest.raises(RuntimeError, match="state carried over"):
        evaluate_reference_python(small.stores[0], load_controller_policy(path, 0.5), seeds=[0, 1])


def test_batched_episodes_give_the_strict_results(small):
    """Several episodes per process (the default) give exactly what one process per episode
    gives, episode for episode, for a controller without cross-episode state."""
    strict = evaluate_controller(CMC_FILE.read_text(), small, [0.5, 1.0], STRICT)
    batched = evaluate_controller(CMC_FILE.read_text(), small, [0.5, 1.0], LIMITS)
    assert strict.ok and batched.ok, (strict.error, batched.error)
    assert "episodes per process" in batched.layers["episodes"]
    assert strict.per_beta == batched.per_beta
    for b in (0.5, 1.0):
        for k in ("answer", "cost", "steps"):
            assert np.array_equal(strict.episodes[b][k], batched.episodes[b][k]), (b, k)


def test_state_across_batched_episodes_is_caught(small):
    """A controller that uses what earlier episodes of its process read (to answer seen
    questions at once) fails the job as ``state``, naming the episode; one process per episode
    evaluates it honestly."""
    ev = evaluate_controller(REMEMBERING, small, [0.5], LIMITS)
    assert not ev.ok and ev.error_kind == "state", (ev.error_kind, ev.error)
    assert "played differently when run alone" in ev.error and "actions differ" in ev.error
    assert ev.failed_episode is not None and "question" in ev.failed_episode
    honest = evaluate_controller(REMEMBERING, small, [0.5], STRICT)
    assert honest.ok and (honest.episodes[0.5]["steps"] == 5).all()
    # the module-level-raising variant stops at its second episode instead
    raising = evaluate_controller((HOSTILE / "memory_across_episodes.py").read_text(), small,
                                  [0.5], LIMITS)
    assert not raising.ok and "state carried over" in raising.error


def test_load_controller_policy_matches_sandbox(store):
    """The same file in-process (``tts-gym eval --controller FILE --trusted``) gives the numbers
    the sandbox gives (the reference fingerprint of CMC b=0.5, seed 0)."""
    from tts_gym.evaluation.rollout import evaluate_reference_python
    policy = load_controller_policy(CMC_FILE, beta=0.5)
    res = evaluate_reference_python(store, policy, seeds=[0])
    assert (int(res.sumC), int(res.sumTT)) == (21, 7_900_547)


def test_eval_cli_controller_sandboxed_and_trusted(capsys):
    from tts_gym.cli import main
    base = ["eval", "--controller", str(CMC_FILE), "--param", "beta=0.5", "--data",
            str(SHARED_REPLAY_DIR), "--model", "Qwen3-1.7B", "--benchmark", "aime24", "--seeds", "1",
            "--json"]
    assert main(base) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["sumC"], out["sumTT"], out["params"], out["impl"]) == (21, 7_900_547,
                                                                      {"beta": 0.5}, "sandbox")
    assert out["sandbox"]["uid"] == "65534"
    assert main(base + ["--trusted"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["sumC"], out["sumTT"], out["impl"]) == (21, 7_900_547, "python")
    assert main(["eval", "--controller", str(CMC_FILE), "--param", "gamma=1"]) == 2
    assert main(["eval", "--policy", "sc", "--trusted"]) == 2
    capsys.readouterr()
    # a hostile file: one line naming the file and what happened, exit status 2
    hostile = HOSTILE / "ns_question_globals.py"
    assert main(base[:2] + [str(hostile)] + base[3:]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(hostile) in err[0] and "(exception)" in err[0]
    assert "'__globals__' is not available" in err[0]


def _without_bwrap(monkeypatch, tmp_path):
    """PATH without bubblewrap (a real lookup, as on a machine where it is not installed)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("python3", "sh"):
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True,
                              text=True).stdout.strip()
        if real:
            os.symlink(real, bindir / tool)
    monkeypatch.setenv("PATH", str(bindir))
    assert isinstance(C.confinement(refresh=True), str)


def test_no_silent_downgrade(small, monkeypatch, tmp_path, capsys):
    _without_bwrap(monkeypatch, tmp_path)
    try:
        with pytest.raises(C.SandboxUnavailable) as exc:
            evaluate_controller(VOTE_MARGIN, small, [0.5], LIMITS)
        msg = str(exc.value)
        for needle in ("bubblewrap (`bwrap`) is not installed", "apt-get install bubblewrap",
                       "dnf install bubblewrap", "pacman -S bubblewrap"):
            assert needle in msg
        from tts_gym.cli import main
        assert main(["eval", "--controller", str(CMC_FILE), "--data", str(SHARED_REPLAY_DIR),
                     "--model", "Qwen3-1.7B", "--benchmark", "aime24", "--seeds", "1"]) == 2
        err = capsys.readouterr().err
        assert "apt-get install bubblewrap" in err and "--trusted" in err
        assert main(["discover", "--rounds", "0", "--out", str(tmp_path / "run"),
                     "--data", str(SHARED_REPLAY_DIR), "--models", "Qwen3-1.7B"]) == 2
        err = capsys.readouterr().err
        assert "apt-get install bubblewrap" in err and "--allow-unsandboxed" in err
        assert not (tmp_path / "run").exists()
        # explicitly allowed: it runs, and says so
        ev = evaluate_controller(VOTE_MARGIN, small, [0.5],
                                 SandboxLimits(timeout_s=60, allow_unsandboxed=True))
        assert ev.ok, ev.error
        assert ev.layers["unsandboxed"] == "yes" and "NOT sandboxed" in ev.layers["confinement"]
    finally:
        monkeypatch.undo()
        C.confinement(refresh=True)


def test_unsandboxed_run_is_recorded_and_printed(monkeypatch, tmp_path):
    """``discover --allow-unsandboxed`` where bubblewrap is missing: recorded in config.json per
    session (and kept on resume), flagged on each candidate, printed in the summary."""
    from rich.console import Console

    from tts_gym.cli.discover import print_summary
    from tts_gym.discovery.history import read_json
    from tts_gym.discovery.loop import DiscoveryConfig, run_discovery
    seed = tmp_path / "good.py"
    seed.write_text(VOTE_MARGIN)
    cfg = DiscoveryConfig(rounds=0, betas=(1.0,), select_beta=1.0, seeds=1, final_seeds=1,
                          models=("Qwen3-1.7B",), data=str(SHARED_REPLAY_DIR), baselines=False,
                          heldout=False, jobs=1, job_timeout_s=60, episode_timeout_s=5,
                          memory_mb=400, seed_controllers=(str(seed),), allow_unsandboxed=True)
    _without_bwrap(monkeypatch, tmp_path)
    try:
        summary = run_discovery(cfg, tmp_path / "run")
    finally:
        monkeypatch.undo()
        C.confinement(refresh=True)
    summary2 = run_discovery(cfg, tmp_path / "run", resume=True)        # now sandboxed again
    sessions = read_json(tmp_path / "run" / "config.json")["sandbox_sessions"]
    assert [s["sandboxed"] for s in sessions] == [False, True]
    assert summary["sandbox"]["unsandboxed"] and summary2["sandbox"]["unsandboxed"]
    scores = read_json(tmp_path / "run" / "seeds" / "good" / "scores.json")
    assert scores["ok"] and scores["sandbox"]["unsandboxed"] == "yes"
    console = Console(record=True, width=200)
    print_summary(console, summary2, 1.0)
    text = console.export_text()
    assert "WARNING: 1 of 2 session(s) of this run ran LLM-written code WITHOUT" in text


# ------------------------------------------------------------------------------------------------
# the parent never raises on what a sandbox sends
# ------------------------------------------------------------------------------------------------

def _valid_stream(n: int = 2) -> bytes:
    import struct
    out = F.record(b"H", b"uid=65534")
    for k in range(n):
        out += F.record(b"S", struct.pack("<I", k))
        child = F.record(b"V", b"x") if k == 1 else b""
        child += F.result_record(0, 10, struct.pack("<hh", 1, 2), "printed")
        out += F.record(b"C", struct.pack("<I", k) + child)
        out += F.record(b"X", struct.pack("<IiBII", k, 0, 0, 5, 1))
    return out + F.record(b"D", struct.pack("<I", n))


def _batched_stream(n: int = 3, audit: bool = True, fail_at: int | None = None,
                    killed_in: int | None = None) -> bytes:
    """A worker's output for one process playing episodes ``0 .. n - 1``, then (``audit``) the
    re-run alone of episode 1."""
    import signal
    import struct
    out = F.record(b"H", b"episodes=batched") + F.record(b"B", struct.pack("<II", 0, n))
    status, ended = 0, 0
    for k in range(n):
        if k == killed_in:
            out += F.record(b"C", struct.pack("<I", k) + F.record(b"V", b"refused"))
            status = signal.SIGKILL
            break
        if k == fail_at:
            out += F.record(b"C", struct.pack("<I", k) + F.error_record("exception", f"boom in {k}"))
            status, ended = 1 << 8, ended + 1
            break
        rec = F.result_record(k, 10 * k, struct.pack("<h", k), f"p{k}")
        out += F.record(b"C", struct.pack("<I", k) + rec[:7]) + F.record(b"C", struct.pack("<I", k) + rec[7:])
        ended += 1
    out += F.record(b"X", struct.pack("<IiBII", 0, status, 1 if killed_in is not None else 0, 30,
                                      ended))
    if audit and fail_at is None and killed_in is None:
        out += F.record(b"A", struct.pack("<I", 1))
        out += F.record(b"C", struct.pack("<I", 1)
                        + F.result_record(1, 10, struct.pack("<h", 1), "p1"))
        out += F.record(b"X", struct.pack("<IiBII", 1, 0, 0, 3, 1))
    return out + F.record(b"D", struct.pack("<I", n))


def test_stream_decoding_of_batched_episodes():
    st_ = F.decode_stream(_batched_stream(), 3)
    assert st_.done and [e.index for e in st_.episodes] == [0, 1, 2]
    assert [(e.ok, e.answer, e.cost, e.printed, e.status) for e in st_.episodes] == [
        (True, 0, 0, "p0", 0), (True, 1, 10, "p1", 0), (True, 2, 20, "p2", 0)]
    assert [e.index for e in st_.audits] == [1] and st_.audits[0].actions == b"\x01\x00"
    res = interpret(_batched_stream(), 0, "", LIMITS, 3)
    assert res.ok and res.arrays["answers"].tolist() == [0, 1, 2]
    assert res.arrays["offsets"].tolist() == [0, 1, 2, 3]


def test_batched_failures_name_their_episode():
    res = interpret(_batched_stream(fail_at=1), 0, "", LIMITS, 3)
    assert not res.ok and res.error_kind == "exception" and res.failed_episode == 1
    assert "boom in 1" in res.error
    st_ = F.decode_stream(_batched_stream(killed_in=2), 3)
    assert [e.index for e in st_.episodes] == [0, 1, 2] and st_.episodes[2].timed_out
    res = interpret(_batched_stream(killed_in=2), 0, "", LIMITS, 3)
    assert not res.ok and res.failed_episode == 2 and res.error_kind == "violation"


def test_an_audit_that_differs_fails_the_job():
    import struct
    raw = _batched_stream(audit=False)[:-len(F.record(b"D", bytes(4)))]
    raw += F.record(b"A", struct.pack("<I", 2))
    raw += F.record(b"C", struct.pack("<I", 2) + F.result_record(2, 20, struct.pack("<hh", 2, 5), ""))
    raw += F.record(b"X", struct.pack("<IiBII", 2, 0, 0, 3, 1)) + F.record(b"D", struct.pack("<I", 3))
    res = interpret(raw, 0, "", LIMITS, 3)
    assert not res.ok and res.error_kind == "state" and res.failed_episode == 2
    assert "actions differ from action 1 on" in res.error


def test_stream_decoding_of_a_valid_stream():
    st_ = F.decode_stream(_valid_stream(), 2)
    assert st_.done and st_.layers == {"uid": "65534"} and len(st_.episodes) == 2
    e0, e1 = st_.episodes
    assert e0.ok and e0.actions == b"\x01\x00\x02\x00" and e0.printed == "printed"
    assert e1.violations == ["x"]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_parent_never_raises_on_sandbox_output(data):
    raw = bytearray(data.draw(st.sampled_from([_valid_stream(), _batched_stream(2)])))
    how = data.draw(st.sampled_from(["random", "flip", "cut", "splice"]))
    if how == "random":
        raw = bytearray(data.draw(st.binary(max_size=400)))
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    elif how == "cut":
        raw = raw[:data.draw(st.integers(0, len(raw)))]
    else:
        i = data.draw(st.integers(0, len(raw)))
        raw[i:i] = data.draw(st.binary(max_size=64))
    try:
        F.decode_stream(bytes(raw), 2)
    except F.FrameError:
        pass
    res = interpret(bytes(raw), 0, "", LIMITS, 2)
    assert res.ok in (True, False)
    if not res.ok:
        assert res.error_kind and res.error


@pytest.mark.parametrize("raw", [
    b"", b"\xff" * 9, F.record(b"H", b"\xff\xfe" * 3000), F.record(b"Q", b""),
    F.record(b"S", b"\0\0\0\0") + F.record(b"C", b"\0\0\0\0" + F.record(b"R", b"\0" * 5)),
    F.record(b"S", b"\x07\0\0\0"),
    b"R" + (2**32 - 1).to_bytes(4, "little") + b"{" * 100000,
], ids=["empty", "junk", "bad-utf8", "unknown", "truncated-result", "out-of-order", "huge"])
def test_malformed_outputs_are_failed_jobs(raw):
    res = interpret(raw, 0, "", LIMITS, 2)
    assert not res.ok and res.error_kind in ("protocol", "crash") and res.error


# ------------------------------------------------------------------------------------------------
# nothing left behind by the command-line tools
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def private_tmp():
    """A TMPDIR of the test's own (uid 65534 must be able to traverse it), to check for leftovers."""
    import shutil
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="tts-gym-test-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _cli(args, tmpdir, env=None, timeout=300):
    return subprocess.run([sys.executable, "-c",
                           "import sys; from tts_gym.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=timeout, start_new_session=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmpdir),
                                   **(env or {})))


def _left_behind(tmpdir: Path) -> list:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = processes_with("sandbox.worker") + processes_with(tmpdir.name) + \
            [str(p) for p in tmpdir.iterdir()]
        if not left:
            break
        time.sleep(0.2)
    return left


def test_eval_cli_of_a_hostile_file_leaves_nothing(private_tmp):
    watched = [C.package_dir(), STORE_FILE, REPO / "agents", REPO / "tests" / "hostile"]
    before = snapshot(watched)
    for name in ("proc_daemon_setsid.py", "fs_metadata.py", "ns_class_pattern_globals.py"):
        p = _cli(["eval", "--controller", str(HOSTILE / name), "--data", str(SHARED_REPLAY_DIR),
                  "--model", "Qwen3-1.7B", "--benchmark", "aime24", "--seeds", "1"],
                 private_tmp, env={"ANTHROPIC_API_KEY": SECRET})
        assert p.returncode == 2, p.stderr
        assert SECRET not in p.stdout + p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and name in p.stderr
    assert _left_behind(private_tmp) == []
    assert snapshot(watched) == before


def test_discover_cli_with_hostile_proposals_leaves_nothing(tmp_path, private_tmp):
    """A discovery run whose proposals are hostile files: every candidate fails with its message,
    the run finishes, no process is left, nothing outside the run's folder changed."""
    sys.path.insert(0, str(REPO / "tests"))
    from messages_api_server import MessagesAPIServer
    names = ["ns_update_wrapper.py", "memory_lists.py", "cpu_busy_loop.py"]
    proposals = [f"Here.\n\n```python\n{(HOSTILE / n).read_text()}\n```\n" for n in names]
    watched = [C.package_dir(), STORE_FILE, REPO / "agents"]
    before = snapshot(watched)
    out = tmp_path / "run"
    with MessagesAPIServer(proposals) as srv:
        p = _cli(["discover", "--rounds", str(len(names)), "--model", "claude-sonnet-4-6",
                  "--out", str(out), "--seeds", "1", "--final-seeds", "1", "--betas", "1",
                  "--select-beta", "1", "--models", "Qwen3-1.7B", "--data", str(SHARED_REPLAY_DIR),
                  "--no-baselines", "--no-heldout", "--jobs", "1", "--episode-timeout", "2",
                  "--job-timeout", "60", "--memory-mb", "400", "--base-url", srv.url,
                  "--max-retries", "0", "--quiet"], private_tmp, env={"ANTHROPIC_API_KEY": SECRET})
    assert p.returncode == 0, p.stderr
    kinds = [json.loads((out / f"round_{r:04d}" / "scores.json").read_text())["error_kind"]
             for r in range(len(names))]
    assert kinds == ["exception", "memory", "timeout"]
    assert "No candidate succeeded" in p.stderr and "sandbox: bubblewrap" in p.stderr
    assert _left_behind(private_tmp) == []
    assert snapshot(watched) == before
    for f in out.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="replace")
