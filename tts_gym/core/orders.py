"""Per-episode branch orders.

The reference evaluation shuffles each question's branch list with CPython's
``random.Random(seed).shuffle``; position ``p`` of an episode then holds stored branch ``perm[p]``.
The permutation depends only on ``seed`` and the list length, so one table serves every question
of a seed. numpy's generators do *not* reproduce it, hence CPython's ``random`` here (this runs once
per (seed, N), never inside a step).
"""
from __future__ import annotations

import random
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4096)
def _reference_permutation(seed: int, n: int) -> tuple[int, ...]:
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    return tuple(idx)


def reference_permutation(seed: int, n: int) -> np.ndarray:
    """Branch order of the reference protocol: ``random.Random(seed).shuffle(list(range(n)))``."""
    return np.asarray(_reference_permutation(int(seed), int(n)), dtype=np.int32)


def reference_permutations(seeds, n: int) -> np.ndarray:
    """int32 table ``[len(seeds), n]`` of :func:`reference_permutation` rows."""
    return np.stack([reference_permutation(s, n) for s in seeds]).astype(np.int32)
