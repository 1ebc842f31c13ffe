"""Price table of the Claude models the discovery loop may call (US dollars per million tokens).

Source: Anthropic's pricing page (https://platform.claude.com/docs/en/about-claude/pricing) and the
per-model overview pages (platform.claude.com/docs/.../models/<model>/overview), as read on
2026-11-22 (standard, non-batch rates; prompts up to each model's base context tier). Prices
change: check the page, and pass ``prices=`` / ``--price-input`` / ``--price-output`` for a model
that is missing or whose price differs. Prompt-cache tokens are billed with the page's
multipliers on the input price: cache writes (5 minutes) 1.25x, cache reads 0.1x.

=================================  ===========  ============
model (API id prefix)              input $/MTok output $/MTok
=================================  ===========  ============
claude-fable-5-1, claude-fable-5   10.00        50.00
claude-mythos-5-1, claude-mythos-5 10.00        50.00
claude-opus-5-5                    4.00         20.00
claude-opus-5, -4-8, -4-7, -4-6,   5.00         25.00
claude-opus-4-5
claude-opus-4-1, claude-opus-4(-0) 15.00        75.00
claude-sonnet-5-5, claude-sonnet-5 2.00         10.00
claude-sonnet-4-6, -4-5, -4(-0),   3.00         15.00
claude-3-7-sonnet
claude-haiku-5-5 (prompts <= 100k) 0.10         0.50
claude-haiku-4-5                   1.00         5.00
claude-3-5-haiku                   0.80         4.00
claude-3-haiku                     0.25         1.25
=================================  ===========  ============

Model ids with a date suffix (``claude-haiku-4-5-20251001``) match their prefix. An unknown
model has no price: :func:`cost_usd` returns ``None`` and the loop records the tokens only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = ["Price", "PRICES", "price_for", "cost_usd", "CACHE_WRITE_MULTIPLIER",
           "CACHE_READ_MULTIPLIER", "PRICE_SOURCE"]

PRICE_SOURCE = "https://platform.claude.com/docs/en/about-claude/pricing (read 2026-11-22)"
CACHE_WRITE_MULTIPLIER = 1.25
CACHE_READ_MULTIPLIER = 0.1


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float


PRICES: dict[str, Price] = {
    "claude-fable-5-1": Price(10.0, 50.0),
    "claude-fable-5": Price(10.0, 50.0),
    "claude-mythos-5-1": Price(10.0, 50.0),
    "claude-mythos-5": Price(10.0, 50.0),
    "claude-opus-5-5": Price(4.0, 20.0),
    "claude-opus-5": Price(5.0, 25.0),
    "claude-opus-4-8": Price(5.0, 25.0),
    "claude-opus-4-7": Price(5.0, 25.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4-0": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),          # claude-opus-4-20250514
    "claude-sonnet-5-5": Price(2.0, 10.0),
    "claude-sonnet-5": Price(2.0, 10.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4-0": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),         # claude-sonnet-4-20250514
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-haiku-5-5": Price(0.10, 0.50),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.80, 4.0),
    "claude-3-haiku": Price(0.25, 1.25),
}


def price_for(model: str, prices: Mapping[str, Price] | None = None) -> Price | None:
    """The price of ``model``: exact id, else the longest table key that prefixes it
    (``claude-opus-4-5-20251101`` -> ``claude-opus-4-5``); ``None`` when unknown."""
    table = PRICES if prices is None else prices
    if model in table:
        return table[model]
    best = None
    for key in table:
        if model.startswith(key + "-") and (best is None or len(key) > len(best)):
            best = key
    return table[best] if best is not None else None


def cost_usd(model: str, input_tokens: int, output_tokens: int, cache_write_tokens: int = 0,
             cache_read_tokens: int = 0, prices: Mapping[str, Price] | None = None) -> float | None:
    """Dollar cost of one request, or ``None`` when the model has no price."""
    p = price_for(model, prices)
    if p is None:
        return None
    inp = (input_tokens + CACHE_WRITE_MULTIPLIER * cache_write_tokens
           + CACHE_READ_MULTIPLIER * cache_read_tokens) * p.input_per_mtok
    return (inp + output_tokens * p.output_per_mtok) / 1e6
