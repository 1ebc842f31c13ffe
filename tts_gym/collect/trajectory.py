"""One sampled reasoning trajectory, generated interval by interval: the unit the collector stores
and the live backend (:mod:`tts_gym.online`) plays.

A :class:`Trajectory` owns the requests of one branch of one question:

* :meth:`Trajectory.next_chunk` generates the next Δ tokens (``prompt + text so far``,
  ``max_tokens = Δ``); a chunk that comes back full below the token cap is a *probe chunk*: its end
  is boundary ``k·Δ`` and the trajectory goes on; any other chunk ends the trajectory;
* :meth:`Trajectory.probe` asks for the intermediate answer at boundary ``k`` with the
  answer-forcing continuation;
* :meth:`Trajectory.final` gives the final answer (last ``\\boxed{}`` or a forced answer, per
  :attr:`~tts_gym.collect.collector.CollectConfig.final_answer`).

Every request carries the seed :func:`request_seed` derives from ``(seed, question id, branch,
kind, chunk)`` and is made at most once (results are cached), so the collector, which probes every
boundary while it generates the next chunk, and a live episode, which asks for chunks and probes
when a policy's actions need them (or ahead of them), send identical requests and get identical
trajectories from a server that honours per-request seeds.
"""
from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

from tts_gym.collect.client import Usage
from tts_gym.data.answers import ERR, extract_boxed, extract_forced_answer

if TYPE_CHECKING:  # pragma: no cover
    from tts_gym.collect.client import CompletionsClient

__all__ = ["CollectError", "Trajectory", "request_seed"]


class CollectError(RuntimeError):
    """The collection cannot start or go on (bad input, incompatible checkpoints, a server that
    keeps returning empty trajectories)."""


def request_seed(seed: int, qid: str, branch: int, kind: str, chunk: int, attempt: int = 0) -> int:
    """Per-request sampling seed (31-bit) derived from the request's identity."""
    h = hashlib.blake2b(f"{seed}|{qid}|{branch}|{kind}|{chunk}|{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFF


class Trajectory:
    """Branch ``branch`` of question ``qid`` under ``config`` (see the module docstring).

    State: ``text`` and ``tokens`` generated so far, ``chunks`` generated, ``boundaries`` (probe
    chunks so far = the ``K`` of the finished trajectory), ``ended``, ``truncated``. Requests are
    counted in ``client.usage`` and in ``usage`` (one per question) under the kinds ``generate``,
    ``probe`` and ``final``.
    """

    def __init__(self, client: "CompletionsClient", config: "CollectConfig", prompt: str, qid: str,
                 branch: int, usage: Usage | None = None):
        self.client = client
        self.cfg = config
        self.prompt = prompt
        self.qid = qid
        self.branch = int(branch)
        self.usage = usage if usage is not None else Usage()
        self.text = ""
        self.tokens = 0
        self.chunks = 0
        self.boundaries = 0
        self.ended = False
        self.truncated = False
        self.resamples = 0
        self.forced_final = False
        self._cuts: list[int] = []          # len(text) at boundary k (index k - 1)
        self._chunk_tokens: list[int] = []  # completion tokens of each chunk
        self.forcing_tokens: dict[tuple[str, int], int] = {}   # (kind, chunk) -> completion tokens
        self._probes: dict[int, asyncio.Future] = {}
        self._final: asyncio.Future | None = None
        self._lock = asyncio.Lock()

    # -- generation --------------------------------------------------------------------------------
    async def next_chunk(self) -> bool:
        """Generate the next chunk; ``True`` if it was a probe chunk (boundary ``self.boundaries``
        now exists and the trajectory goes on), ``False`` if it ended the trajectory."""
        cfg = self.cfg
        if self.ended:
            raise RuntimeError(f"question {self.qid}, branch {self.branch}: the trajectory has ended")
        while True:
            n = min(cfg.interval, cfg.max_tokens - self.tokens)
            c = await self.client.complete(
                self.prompt + self.text, max_tokens=n, temperature=cfg.temperature, top_p=cfg.top_p,
                seed=request_seed(cfg.seed, self.qid, self.branch, "generate", self.chunks, self.resamples),
                stop=list(cfg.stop) or None, kind="generate", usage=self.usage)
            if self.chunks == 0 and c.completion_tokens == 0:
                # an empty trajectory cannot be stored (T must be > 0): resample it
                self.resamples += 1
                if self.resamples > cfg.max_empty_resamples:
                    raise CollectError(f"question {self.qid}, branch {self.branch}: the server returned an "
                                       f"empty completion {self.resamples} times")
                continue
            break
        self.text += c.text
        self.tokens += c.completion_tokens
        self.chunks += 1
        self._chunk_tokens.append(c.completion_tokens)
        full = c.finish_reason == "length" and c.completion_tokens >= n
        if not full or self.tokens >= cfg.max_tokens:
            self.ended = True
            self.truncated = self.tokens >= cfg.max_tokens and c.finish_reason == "length"
            return False
        self.boundaries += 1
        self._cuts.append(len(self.text))
        return True

    async def ensure_chunks(self, n: int) -> None:
        """Generate chunks until ``n`` exist or the trajectory has ended (safe to call from several
        tasks: one generates, the others wait for it)."""
        async with self._lock:
            while self.chunks < n and not self.ended:
                await self.next_chunk()

    async def run_to_end(self) -> None:
        """Generate the rest of the trajectory."""
        async with self._lock:
            while not self.ended:
                await self.next_chunk()

    def chunk_tokens(self, j: int) -> int:
        """Completion tokens of chunk ``j`` (0-based; it must have been generated)."""
        return self._chunk_tokens[j]

    # -- answers -------------------------------------------------------------------------------------
    async def _force(self, text: str, chunk: int, kind: str) -> str:
        cfg = self.cfg
        suffix = (cfg.probe_suffix_after_think if cfg.think_end and cfg.think_end in text
                  else cfg.probe_suffix)
        c = await self.client.complete(self.prompt + text + suffix, max_tokens=cfg.probe_max_tokens,
                                       temperature=cfg.probe_temperature, top_p=cfg.probe_top_p,
                                       seed=request_seed(cfg.seed, self.qid, self.branch, kind, chunk),
                                       kind=kind, usage=self.usage)
        self.forcing_tokens[(kind, chunk)] = c.completion_tokens
        return extract_forced_answer(c.text, cfg.probe_unclosed)

    def answer_cost(self, k: int | None = None) -> int:
        """Completion tokens spent on the answer at boundary ``k`` (``None``: the final answer; 0
        when it was read off the text without a request)."""
        key = ("final", self.chunks) if k is None else ("probe", k)
        return self.forcing_tokens.get(key, 0)

    def probe_task(self, k: int) -> asyncio.Future:
        """The (cached) request for the intermediate answer at boundary ``k`` (1-based; the boundary
        must exist)."""
        if not 1 <= k <= self.boundaries:
            raise ValueError(f"question {self.qid}, branch {self.branch}: no boundary {k} "
                             f"(the trajectory has {self.boundaries} so far)")
        t = self._probes.get(k)
        if t is None or _failed(t):
            t = self._probes[k] = asyncio.ensure_future(self._force(self.text[:self._cuts[k - 1]], k, "probe"))
        return t

    async def probe(self, k: int) -> str:
        return await asyncio.shield(self.probe_task(k))

    def probed(self, k: int) -> bool:
        """Whether the answer at boundary ``k`` has been asked for."""
        return k in self._probes

    async def _final_answer(self) -> str:
        cfg = self.cfg
        text = self.text
        if cfg.final_answer == "extract":
            return extract_boxed(text) or ERR
        final = extract_boxed(text) if (cfg.final_answer == "extract-or-force" and not self.truncated) else None
        if not final:
            self.forced_final = True
            final = await self._force(text, self.chunks, "final")
        return final

    def final_task(self) -> asyncio.Future:
        """The (cached) final answer of the ended trajectory."""
        if not self.ended:
            raise RuntimeError(f"question {self.qid}, branch {self.branch}: the trajectory has not ended")
        if self._final is None or _failed(self._final):
            self._final = asyncio.ensure_future(self._final_answer())
        return self._final

    async def final(self) -> str:
        return await asyncio.shield(self.final_task())

    def probes_known(self) -> list[str] | None:
        """The answers at boundaries ``1..boundaries`` if all were asked for and have come back."""
        out = []
        for k in range(1, self.boundaries + 1):
            t = self._probes.get(k)
            if t is None or not t.done() or _failed(t):
                return None
            out.append(t.result())
        return out

    def cancel(self) -> None:
        """Cancel the pending answer requests of this trajectory."""
        for t in self._probes.values():
            t.cancel()
        if self._final is not None:
            self._final.cancel()

    def __repr__(self) -> str:
        return (f"Trajectory(qid={self.qid!r}, branch={self.branch}, tokens={self.tokens}, "
                f"boundaries={self.boundaries}, ended={self.ended})")


def _failed(f: asyncio.Future) -> bool:
    """A finished request that gave no answer (cancelled or failed): asking again re-sends it."""
    return f.done() and (f.cancelled() or f.exception() is not None)
