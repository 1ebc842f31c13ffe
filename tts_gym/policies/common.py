"""Pieces shared by the Python baselines (:mod:`tts_gym.policies.baselines`) and the compiled ones
(:mod:`tts_gym.policies.compiled`), so both implementations use one definition of each:

* the CMC beta schedule (:func:`cmc_schedule`, ``docs/replay-semantics.md``, "CMC") and CMC's fixed caps;
* the policy names, parameter names and defaults of the evaluation protocol
  (:func:`normalize_params`, declared in :mod:`tts_gym.policies.registry` with their ranges),
  using the reference CSV's parameter names.
"""
from __future__ import annotations

from typing import Any

from tts_gym.policies.registry import POLICY_NAMES, SC_THRESHOLD  # noqa: F401 (re-export)
from tts_gym.policies.registry import REGISTRY as _REGISTRY
from tts_gym.policies.registry import defaults as _defaults
from tts_gym.policies.registry import normalize as normalize_params
from tts_gym.policies.registry import EXTERNAL_POLICIES, external_policy  # noqa: F401 (re-export)

__all__ = [
    "CMC_MAX_BRANCH", "CMC_MAX_ROUNDS", "CMC_SCHEDULE_KEYS", "cmc_schedule",
    "POLICY_NAMES", "POLICY_DEFAULTS", "normalize_params", "EXTERNAL_POLICIES", "external_policy",
]

CMC_MAX_BRANCH = 64
"""CMC's hard cap on spawned branches (``MAX_BRANCH``)."""
CMC_MAX_ROUNDS = 500
"""CMC's round cap (``MAX_ROUNDS``; never reached on the AutoTTS stores)."""

CMC_SCHEDULE_KEYS = (
    "n_init", "max_branch_use", "warm_up", "abandon_patience", "T_ema", "ema_alpha",
    "conf_thresh", "delta_slack", "burst_aligned", "widen_burst", "trend_thresh", "min_complete",
)


def cmc_schedule(beta: float | None = 0.5) -> dict[str, Any]:
    """The CMC hyper-parameters derived from ``beta`` exactly as the reference does it.

    ``b = clamp(float(beta), 0, 1)`` (0.5 when ``beta`` is ``None``); every expression is evaluated
    in IEEE double in the order written (``c0 + c1*b``) and rounded with Python's ``round``
    (half-to-even; ``round(x, 4)`` for the float parameters). Integers are ``int``, the four float
    parameters ``float``; keys in :data:`CMC_SCHEDULE_KEYS` order.
    """
    b = 0.5 if beta is None else float(beta)
    b = max(0.0, min(1.0, b))
    return {
        "n_init": max(2, round(2 + 6 * b)),
        "max_branch_use": min(64, round(4 + 60 * b)),
        "warm_up": max(2, round(2 + 8 * b)),
        "abandon_patience": max(3, round(3 + 9 * b)),
        "T_ema": max(2, round(2 + 6 * b)),
        "ema_alpha": round(0.70 - 0.40 * b, 4),
        "conf_thresh": round(0.85 + 0.12 * b, 4),
        "delta_slack": round(0.04 - 0.03 * b, 4),
        "burst_aligned": max(1, round(1 + 2 * b)),
        "widen_burst": max(1, round(1 + 3 * b)),
        "trend_thresh": round(0.04 - 0.03 * b, 4),
        "min_complete": max(2, round(2 + 3 * b)),
    }


# ---------------------------------------------------------------------------------------------
# policy names and parameters of the evaluation protocol: declared once, in the registry
# ---------------------------------------------------------------------------------------------


POLICY_DEFAULTS: dict[str, dict[str, Any]] = {name: _defaults(name) for name in _REGISTRY}
"""Every built-in family's parameters with the reference driver's values (see the registry)."""
