"""The replay stores known by name: the public AutoTTS release, and its search / held-out split.

The release replays four Qwen3 models on three benchmarks. Controllers are searched (and agents
trained) on :data:`SEARCH_BENCHMARKS` only; :data:`HELDOUT_BENCHMARKS` are kept for the final
evaluation, so a proposer or a training run never sees them.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

MODELS = ("Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B")
BENCHMARKS = ("aime24", "aime25", "hmmt25")
SEARCH_BENCHMARKS = ("aime24",)
HELDOUT_BENCHMARKS = ("aime25", "hmmt25")

SYNTHETIC = "synthetic"
"""Model name of the generated stores (:mod:`tts_gym.data.synthetic`); their benchmark is ``seed<N>``."""


class StoreNotFoundError(LookupError, FileNotFoundError):
    """A requested store is not there: a missing path, no data location configured, or a model /
    benchmark that the file or directory does not hold. The message lists what exists. It is also a
    ``FileNotFoundError`` (and ``LookupError``), so generic handlers of either catch it."""


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def store_names(models: Iterable[str] = MODELS, benchmarks: Iterable[str] = BENCHMARKS) -> list[str]:
    """``"model/benchmark"`` for every pair, models outer."""
    benchmarks = list(benchmarks)
    return [f"{m}/{b}" for m in models for b in benchmarks]


def model_sort_key(model: str) -> tuple[float, str]:
    """Orders models by the last number in their name (the parameter count of ``Qwen3-1.7B``), then
    by name: ``Qwen3-0.6B < Qwen3-1.7B < Qwen3-4B < Qwen3-8B < Qwen3-14B``."""
    numbers = _NUMBER.findall(model)
    return (float(numbers[-1]) if numbers else 0.0, model)


def _benchmark_key(benchmark: str) -> tuple[int, str]:
    return (BENCHMARKS.index(benchmark) if benchmark in BENCHMARKS else len(BENCHMARKS), benchmark)


def store_sort_key(key: tuple[str, str]) -> tuple:
    """Orders ``(model, benchmark)`` pairs by model (:func:`model_sort_key`), then benchmark: the
    catalog's benchmarks in catalog order first, any other after them by name."""
    return (model_sort_key(key[0]), _benchmark_key(key[1]))


def select_stores(keys: Sequence[tuple[str, str]], models, benchmarks, where: str) -> list[tuple[str, str]]:
    """The ``(model, benchmark)`` keys of ``keys`` that ``models``/``benchmarks`` (tuples of names, or
    ``None``: any) select, in the order of the names given, else in catalog order
    (:func:`store_sort_key`). Each name given must match a key, and with both given every pair
    must exist; otherwise :class:`StoreNotFoundError` lists what ``where`` holds."""
    held = ", ".join(f"{m}/{b}" for m, b in sorted(keys, key=store_sort_key)) or "no stores"
    if models and benchmarks:
        missing = [f"{m}/{b}" for m in models for b in benchmarks if (m, b) not in keys]
    elif models:
        missing = [f"model {m}" for m in models if not any(k[0] == m for k in keys)]
    elif benchmarks:
        missing = [f"benchmark {b}" for b in benchmarks if not any(k[1] == b for k in keys)]
    else:
        missing = [] if keys else [""]
    if missing:
        what = ", ".join(m for m in missing if m)
        raise StoreNotFoundError(f"{where} holds no store{' ' + what if what else ''}; it holds: {held}")
    found = [k for k in keys if (not models or k[0] in models) and (not benchmarks or k[1] in benchmarks)]

    def order(k):
        m = models.index(k[0]) if models else model_sort_key(k[0])
        b = benchmarks.index(k[1]) if benchmarks else _benchmark_key(k[1])
        return m, b
    return sorted(found, key=order)
