"""Asynchronous client of an OpenAI-compatible ``/v1/completions`` endpoint (vLLM, SGLang, ...).

* bounded concurrency: at most ``concurrency`` requests in flight (an ``asyncio.Semaphore``; the
  slot is released while a failed request waits to be retried);
* retries with exponential backoff and jitter on connection errors, timeouts, HTTP 5xx, 408 and
  429 (``Retry-After`` honoured); other 4xx answers fail at once with the server's message;
* token accounting from the responses' ``usage`` fields (:class:`Usage`).

Uses ``aiohttp`` (``pip install 'tts_gym[collect]'``).
"""
from __future__ import annotations

import asyncio
import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class CompletionError(RuntimeError):
    """A completions request failed for good (non-retryable answer, or retries exhausted)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Usage:
    """Token and request counters (summed over every request, generation and probes alike)."""
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    failures: int = 0
    by_kind: dict = field(default_factory=dict)  # kind -> {"requests", "prompt_tokens", "completion_tokens"}

    def add(self, c: Completion, kind: str = "generate") -> None:
        self.requests += 1
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        k = self.by_kind.setdefault(kind, {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
        k["requests"] += 1
        k["prompt_tokens"] += c.prompt_tokens
        k["completion_tokens"] += c.completion_tokens

    def merge(self, other: "Usage | dict") -> None:
        o = other if isinstance(other, Usage) else Usage.from_dict(other)
        self.requests += o.requests
        self.prompt_tokens += o.prompt_tokens
        self.completion_tokens += o.completion_tokens
        self.retries += o.retries
        self.failures += o.failures
        for kind, v in o.by_kind.items():
            k = self.by_kind.setdefault(kind, {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
            for key in k:
                k[key] += int(v.get(key, 0))

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Usage":
        return cls(requests=int(d.get("requests", 0)), prompt_tokens=int(d.get("prompt_tokens", 0)),
                   completion_tokens=int(d.get("completion_tokens", 0)), retries=int(d.get("retries", 0)),
                   failures=int(d.get("failures", 0)),
                   by_kind={k: dict(v) for k, v in d.get("by_kind", {}).items()})


def completions_url(base_url: str) -> str:
    """``http://host:8000``, ``.../v1`` or ``.../v1/completions`` -> the completions endpoint."""
    url = base_url.rstrip("/")
    if url.endswith("/completions"):
        return url
    if not url.endswith("/v1"):
        url += "/v1"
    return url + "/completions"


class CompletionsClient:
    """``async with CompletionsClient(url, model) as c: await c.complete(prompt, max_tokens=...)``."""

    def __init__(self, base_url: str, model: str, *, concurrency: int = 64, timeout: float = 600.0,
                 max_retries: int = 8, backoff_base: float = 0.5, backoff_max: float = 60.0,
                 api_key: str | None = None, extra_body: dict[str, Any] | None = None):
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.url = completions_url(base_url)
        self.model = model
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.api_key = api_key
        self.extra_body = dict(extra_body or {})
        self.usage = Usage()
        self._sem: asyncio.Semaphore | None = None
        self._session = None
        self._jitter = random.Random()  # backoff jitter only: never affects what is sampled
        self.in_flight = 0

    async def __aenter__(self) -> "CompletionsClient":
        try:
            import aiohttp
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError("tts-gym collect needs aiohttp: pip install 'tts_gym[collect]'") from exc
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._sem = asyncio.Semaphore(self.concurrency)
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency))
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        d = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        d *= 0.5 + self._jitter.random()  # full jitter in [0.5, 1.5) x
        if retry_after is not None:
            d = max(d, min(retry_after, self.backoff_max))
        return d

    async def complete(self, prompt: str, *, max_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
                       seed: int | None = None, stop: list[str] | None = None, kind: str = "generate",
                       extra: dict[str, Any] | None = None, usage: Usage | None = None) -> Completion:
        """One completion; retried on transient failures.

        Counted in :attr:`usage` under ``kind`` (and in ``usage`` too when given: the collector keeps
        one per question).
        """
        import aiohttp

        if self._session is None:
            raise RuntimeError("use 'async with CompletionsClient(...)'")
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, "max_tokens": int(max_tokens),
                                "temperature": float(temperature), "top_p": float(top_p), "n": 1,
                                "stream": False}
        if seed is not None:
            body["seed"] = int(seed)
        if stop:
            body["stop"] = list(stop)
        body.update(self.extra_body)
        if extra:
            body.update(extra)
        attempt = 0
        while True:
            retry_after = None
            try:
                async with self._sem:
                    self.in_flight += 1
                    try:
                        async with self._session.post(self.url, json=body) as resp:
                            status = resp.status
                            raw = await resp.read()
                            retry_after = _retry_after(resp.headers.get("Retry-After"))
                    finally:
                        self.in_flight -= 1
                if status == 200:
                    c = _parse_completion(raw)
                    self.usage.add(c, kind)
                    if usage is not None:
                        usage.add(c, kind)
                    return c
                message = _error_message(raw)
                if status not in RETRY_STATUS:
                    self.usage.failures += 1
                    raise CompletionError(f"{self.url}: HTTP {status}: {message}", status)
                failure = f"HTTP {status}: {message}"
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
                status = None
            if attempt >= self.max_retries:
                self.usage.failures += 1
                raise CompletionError(f"{self.url}: giving up after {attempt + 1} attempts; last error: {failure}",
                                      status)
            self.usage.retries += 1
            if usage is not None:
                usage.retries += 1
            await asyncio.sleep(self._delay(attempt, retry_after))
            attempt += 1


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_message(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            err = data.get("error", data.get("message", data))
            if isinstance(err, dict):
                err = err.get("message", err)
            return str(err)[:500]
    except ValueError:
        pass
    return text[:500]


def _parse_completion(raw: bytes) -> Completion:
    try:
        data = json.loads(raw)
        choice = data["choices"][0]
        text = choice["text"]
        finish = choice.get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise CompletionError(f"malformed completions response ({exc!r}): {raw[:200]!r}") from None
    usage = data.get("usage") or {}
    if "completion_tokens" not in usage:
        raise CompletionError("the server's response has no usage.completion_tokens: token counts are "
                              "taken from it (vLLM and SGLang return it)")
    return Completion(text=text, finish_reason=finish, prompt_tokens=int(usage.get("prompt_tokens", 0)),
                      completion_tokens=int(usage["completion_tokens"]))

