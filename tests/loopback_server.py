"""A minimal OpenAI-compatible ``/v1/completions`` server on loopback, for tests and benchmarks.

Serves a *real* tiny model: a randomly initialised (seeded) GPT-2 from ``transformers`` with 2 layers
over a character-level tokenizer built here (:class:`CharTokenizer`), sampled with a generator seeded
by the request's ``seed`` -- so a completion depends only on (prompt, max_tokens, temperature, top_p,
seed, stop), whatever the scheduling. A torch-free ``"hash"`` backend (characters drawn from a keyed
hash) serves the same API for quick runs.

What it implements of the OpenAI completions API: ``model``, ``prompt`` (a string or a one-string
list), ``max_tokens``, ``temperature`` (0 = greedy), ``top_p``, ``seed``, ``stop`` (string or list,
excluded from the text like OpenAI/vLLM), ``n = 1``; responses carry ``choices[0].text``,
``finish_reason`` (``"stop"``/``"length"``) and ``usage`` (prompt/completion/total tokens).
Extra endpoints: ``GET /v1/models``, ``GET /stats`` (request counts per question tag: the first match
of ``tag_pattern`` in the prompt, by default ``[qid:...]``), ``POST /stats/reset``.

Simulated serving cost: every request sleeps ``latency + latency_per_token * completion_tokens``
seconds (asyncio, so concurrent requests overlap like on a batching server); model compute runs on one
worker thread. Fault injection: ``fail_every=k`` answers every k-th request with HTTP 503,
``reset_every=k`` drops every k-th connection without an answer.

Standalone: ``python tests/loopback_server.py --port 8000 [--backend hash] [--max-seconds 600]``.
Listens on 127.0.0.1 only.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web

DEFAULT_TAG_PATTERN = r"\[qid:([^\]]+)\]"


class CharTokenizer:
    """Character-level tokenizer: one id per printable ASCII character (plus ``\\n``), then UNK and EOS.

    Any other character encodes to UNK (prompts only: the model is never allowed to sample UNK), so
    decoding a completion and re-encoding it gives back the same ids -- token counts are exact.
    """

    def __init__(self):
        chars = [chr(c) for c in range(32, 127)] + ["\n"]
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}
        self.unk_id = len(chars)
        self.eos_id = len(chars) + 1
        self.vocab_size = len(chars) + 2

    def encode(self, text: str) -> list[int]:
        unk = self.unk_id
        return [self.index.get(c, unk) for c in text]

    def decode(self, ids) -> str:
        n = len(self.chars)
        return "".join(self.chars[i] for i in ids if i < n)


@dataclass
class GenResult:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def _apply_stop(text: str, stop: list[str]) -> int | None:
    """Index where the earliest stop string starts in ``text``, or ``None``."""
    hits = [text.find(s) for s in stop if s and s in text]
    return min(hits) if hits else None


class TinyGPT2:
    """A seeded, randomly initialised 2-layer GPT-2 (``transformers``) over :class:`CharTokenizer`."""

    name = "tiny-gpt2"

    def __init__(self, seed: int = 0, n_embd: int = 32, n_layer: int = 2, n_head: int = 2, n_positions: int = 1024,
                 init_range: float = 0.35):
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        self.torch = torch
        torch.set_num_threads(1)
        self.tok = CharTokenizer()
        cfg = GPT2Config(vocab_size=self.tok.vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                         n_head=n_head, initializer_range=init_range, bos_token_id=self.tok.eos_id,
                         eos_token_id=self.tok.eos_id)
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            self.model = GPT2LMHeadModel(cfg).eval()
        finally:
            torch.random.set_rng_state(state)
        self.max_len = n_positions
        # UNK is never sampled; EOS is made a bit more likely so trajectories end by themselves
        bias = torch.zeros(self.tok.vocab_size)
        bias[self.tok.unk_id] = float("-inf")
        bias[self.tok.eos_id] = 1.5
        self.bias = bias

    def generate(self, prompt: str, max_tokens: int, temperature: float, top_p: float, seed: int,
                 stop: list[str]) -> GenResult:
        torch = self.torch
        ids = self.tok.encode(prompt)
        if not ids:
            ids = [self.tok.eos_id]
        if len(ids) + max_tokens > self.max_len:
            raise ValueError(f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) exceeds the "
                             f"model's context length {self.max_len}")
        gen = torch.Generator().manual_seed(int(seed) & 0xFFFFFFFFFFFF)
        out: list[int] = []
        finish = "length"
        with torch.inference_mode():
            past = None
            x = torch.tensor([ids])
            for _ in range(max_tokens):
                res = self.model(x, past_key_values=past, use_cache=True)
                past = res.past_key_values
                logits = res.logits[0, -1].float() + self.bias
                if temperature <= 0:
                    nxt = int(torch.argmax(logits))
                else:
                    probs = torch.softmax(logits / temperature, dim=-1)
                    if top_p < 1.0:
                        sp, si = torch.sort(probs, descending=True)
                        keep = torch.cumsum(sp, 0) - sp < top_p
                        keep[0] = True
                        probs = torch.zeros_like(probs).scatter_(0, si[keep], sp[keep])
                    nxt = int(torch.multinomial(probs, 1, generator=gen))
                out.append(nxt)
                if nxt == self.tok.eos_id:
                    finish = "stop"
                    break
                if stop and _apply_stop(self.tok.decode(out[-64:]), stop) is not None:
                    finish = "stop"
                    break
                x = torch.tensor([[nxt]])
        text = self.tok.decode(out)
        if stop:
            cut = _apply_stop(text, stop)
            if cut is not None:
                text = text[:cut]
        return GenResult(text, finish, len(ids), len(out))


class HashLM:
    """Torch-free stand-in: characters from a keyed hash of (seed, prompt, position); EOS with
    probability ``p_eos`` per token. Greedy (temperature 0) ignores the seed."""

    name = "hash"

    def __init__(self, seed: int = 0, p_eos: float = 0.02, alphabet: str = "0123456789abcdefghij +-=\n"):
        self.seed = seed
        self.p_eos = p_eos
        self.alphabet = alphabet
        self.tok = CharTokenizer()

    def generate(self, prompt: str, max_tokens: int, temperature: float, top_p: float, seed: int,
                 stop: list[str]) -> GenResult:
        key = hashlib.blake2b(f"{self.seed}|{seed if temperature > 0 else 'greedy'}|{prompt}".encode(),
                              digest_size=16).digest()
        out = []
        finish = "length"
        for i in range(max_tokens):
            h = hashlib.blake2b(i.to_bytes(4, "little"), key=key, digest_size=8).digest()
            r = int.from_bytes(h, "little")
            if (r & 0xFFFF) / 65536.0 < self.p_eos:
                out.append(None)
                finish = "stop"
                break
            out.append(self.alphabet[(r >> 16) % len(self.alphabet)])
            if stop and _apply_stop("".join(c for c in out if c), stop) is not None:
                finish = "stop"
                break
        text = "".join(c for c in out if c)
        if stop:
            cut = _apply_stop(text, stop)
            if cut is not None:
                text = text[:cut]
        return GenResult(text, finish, len(self.tok.encode(prompt)), len(out))


class LoopbackServer:
    """The server, run on its own event-loop thread: ``with LoopbackServer(TinyGPT2()) as srv: srv.url``."""

    def __init__(self, backend, *, model_name: str = "tiny", host: str = "127.0.0.1", port: int = 0,
                 latency: float = 0.0, latency_per_token: float = 0.0, fail_every: int = 0, reset_every: int = 0,
                 tag_pattern: str = DEFAULT_TAG_PATTERN):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the loopback server listens on loopback only")
        self.backend = backend
        self.model_name = model_name
        self.host = host
        self.port = port
        self.latency = latency
        self.latency_per_token = latency_per_token
        self.fail_every = fail_every
        self.reset_every = reset_every
        self.tag_re = re.compile(tag_pattern)
        self._lock = threading.Lock()
        self.reset_stats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopback-model")
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- stats -------------------------------------------------------------------------------------
    def reset_stats(self) -> None:
        with self._lock:
            self.requests = 0           # every request received, faults included
            self.completed = 0          # answered with 200
            self.by_tag: Counter = Counter()
            self.completion_tokens = 0
            self.prompt_tokens = 0
            self.max_in_flight = 0
            self._in_flight = 0

    def stats(self) -> dict:
        with self._lock:
            return {"requests": self.requests, "completed": self.completed, "by_tag": dict(self.by_tag),
                    "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                    "max_in_flight": self.max_in_flight}

    # -- handlers ----------------------------------------------------------------------------------
    async def _completions(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.requests += 1
            n = self.requests
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not JSON")
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            return _error(400, "prompt must be a string")
        m = self.tag_re.search(prompt)
        with self._lock:
            self.by_tag[m.group(1) if m else ""] += 1
        if self.reset_every and n % self.reset_every == 0:
            request.transport.close()  # the client sees a dropped connection
            raise web.HTTPServiceUnavailable()
        if self.fail_every and n % self.fail_every == 0:
            return _error(503, "injected failure", "ServiceUnavailable")
        if body.get("model") not in (None, self.model_name):
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        try:
            max_tokens = int(body.get("max_tokens", 16))
            temperature = float(body.get("temperature", 1.0))
            top_p = float(body.get("top_p", 1.0))
            seed = body.get("seed")
            seed = int(seed) if seed is not None else int.from_bytes(
                hashlib.blake2b(prompt.encode(), digest_size=6).digest(), "little")
            stop = body.get("stop") or []
            stop = [stop] if isinstance(stop, str) else list(stop)
            if int(body.get("n", 1)) != 1:
                raise ValueError("only n = 1 is supported")
            if max_tokens < 1 or not 0 < top_p <= 1 or temperature < 0:
                raise ValueError("max_tokens >= 1, 0 < top_p <= 1, temperature >= 0")
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            loop = asyncio.get_running_loop()
            try:
                res = await loop.run_in_executor(self._executor, self.backend.generate, prompt, max_tokens,
                                                 temperature, top_p, seed, stop)
            except ValueError as exc:
                return _error(400, str(exc))
            delay = self.latency + self.latency_per_token * res.completion_tokens
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            with self._lock:
                self._in_flight -= 1
        with self._lock:
            self.completed += 1
            self.prompt_tokens += res.prompt_tokens
            self.completion_tokens += res.completion_tokens
        return web.json_response({
            "id": f"cmpl-{n}", "object": "text_completion", "created": int(time.time()), "model": self.model_name,
            "choices": [{"index": 0, "text": res.text, "logprobs": None, "finish_reason": res.finish_reason}],
            "usage": {"prompt_tokens": res.prompt_tokens, "completion_tokens": res.completion_tokens,
                      "total_tokens": res.prompt_tokens + res.completion_tokens}})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model_name, "object": "model"}]})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset_stats()
        return web.json_response({"ok": True})

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/stats/reset", self._reset)
        return app

    # -- lifecycle ---------------------------------------------------------------------------------
    async def _start(self) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:  # pragma: no cover - port in use etc.
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> "LoopbackServer":
        self._thread = threading.Thread(target=self._serve, name="loopback-server", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
        self._executor.shutdown(wait=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _error(status: int, message: str, typ: str = "BadRequestError") -> web.Response:
    return web.json_response({"object": "error", "message": message, "type": typ, "code": status}, status=status)


def make_backend(name: str, seed: int = 0):
    if name == "tiny-gpt2":
        return TinyGPT2(seed=seed)
    if name == "hash":
        return HashLM(seed=seed)
    raise ValueError(f"unknown backend {name!r} (tiny-gpt2 or hash)")


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="loopback OpenAI-compatible completions server (tests only)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--backend", choices=("tiny-gpt2", "hash"), default="tiny-gpt2")
    p.add_argument("--model-name", default="tiny")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    p.add_argument("--latency-per-token", type=float, default=0.0, help="seconds per completion token")
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this long")
    args = p.parse_args(argv)
    srv = LoopbackServer(make_backend(args.backend, args.seed), model_name=args.model_name, port=args.port,
                         latency=args.latency, latency_per_token=args.latency_per_token,
                         fail_every=args.fail_every).start()
    print(json.dumps({"url": srv.url, "backend": args.backend, "model": args.model_name}), flush=True)
    try:
        time.sleep(args.max_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
