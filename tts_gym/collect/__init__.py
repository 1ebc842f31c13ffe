"""Collecting replay stores from an OpenAI-compatible completions server (``tts-gym collect``).

See :mod:`tts_gym.collect.collector` for the sampling procedure (chunked generation at exact token
boundaries, answer-forcing probes, checkpoints), :mod:`tts_gym.collect.trajectory` for one
trajectory's requests (shared with the live backend, :mod:`tts_gym.online`) and
:mod:`tts_gym.collect.client` for the HTTP client (bounded concurrency, retries, token accounting).
Needs ``pip install 'tts_gym[collect]'`` (aiohttp).
"""
from __future__ import annotations

from tts_gym.collect.client import Completion, CompletionError, CompletionsClient, Usage, completions_url
from tts_gym.collect.collector import (CHAT_TEMPLATES, CheckpointDir, CollectConfig, CollectError, Collector,
                                       CollectResult, Question, collect, collect_async, default_checkpoint_dir,
                                       format_summary, load_questions, request_seed)
from tts_gym.collect.trajectory import Trajectory

__all__ = [
    "CHAT_TEMPLATES", "CheckpointDir", "CollectConfig", "CollectError", "CollectResult", "Collector",
    "Completion", "CompletionError", "CompletionsClient", "Question", "Usage", "collect", "collect_async",
    "Trajectory", "completions_url", "default_checkpoint_dir", "format_summary", "load_questions", "request_seed",
]
