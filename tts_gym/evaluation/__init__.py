"""Evaluation of policies over replay stores: protocols, tables with confidence intervals, paired
comparisons, frontiers, oracle bounds and a Ray backend (figures: :mod:`tts_gym.reports.plots`).

The main entry point is :func:`evaluate` (also ``tts_gym.evaluate``). Submodules:

* :mod:`~tts_gym.evaluation.protocols` -- episode sets ("reference", "subsample", "bootstrap", ...)
* :mod:`~tts_gym.evaluation.stats` -- confidence intervals, paired comparisons
* :mod:`~tts_gym.evaluation.frontier` -- Pareto frontier, frontier score, dominance
* :mod:`~tts_gym.evaluation.oracle` -- oracle bounds from the store arrays
* :mod:`~tts_gym.evaluation.traces` -- per-step execution traces from the compiled path
* :mod:`~tts_gym.evaluation.ray_backend` -- the Ray backend

Attributes are imported lazily, so ``import tts_gym`` stays cheap and a missing optional module
(e.g. the Python episode loop) does not break the others.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "evaluate": "evaluate", "EvalResult": "evaluate", "Sweep": "evaluate", "Config": "evaluate",
    "Outcome": "evaluate", "config_label": "evaluate", "DEFAULT_SWEEPS": "evaluate",
    "MAIN_TABLE_CONFIGS": "evaluate",
    "EpisodeSet": "protocols", "make_episodes": "protocols", "PROTOCOLS": "protocols",
    "Interval": "stats", "mean_ci": "stats", "paired_difference": "stats",
    "PairedComparison": "stats", "question_bootstrap_ci": "stats",
    "Frontier": "frontier", "pareto_frontier": "frontier", "frontier_score": "frontier",
    "compare_frontiers": "frontier", "dominates": "frontier",
    "oracle_curve": "oracle", "oracle_reveal_costs": "oracle", "schedule_oracle": "oracle",
    "sc_vote_oracle": "oracle",
    "Traces": "traces", "record_traces": "traces",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'tts_gym.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tts_gym.evaluation.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
