"""Pieces shared by the Python baselines (:mod:`tts_gym.policies.baselines`) and the compiled ones
(:mod:`tts_gym.policies.compiled`), so both implementations use one definition of each:

* the CMC beta schedule (:func:`cmc_schedule`, ``docs/replay-semantics.md``, "CMC") and CMC's fixed caps;
* the policy names, parameter names and defaults of the evaluation protocol
  (:func:`normalize_params`), using the reference CSV's parameter names.
"""
from __future__ import annotations

from typing import Any, Mapping

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
# policy names and parameters of the evaluation protocol
# ---------------------------------------------------------------------------------------------

POLICY_NAMES = ("sc", "asc", "esc", "parallel_probe", "cmc")

POLICY_DEFAULTS: dict[str, dict[str, Any]] = {
    # SC@N is ASC with a threshold no confidence can exceed (replay semantics, "SC@N"; the reference used 1.01)
    "sc": {"max_samples": 64},
    "asc": {"max_samples": 64, "threshold": 0.95},
    "esc": {"max_samples": 64, "window_size": 8},
    # the configuration the reference driver runs (the constructor's own defaults T=14,
    # prune_patience=8, warm_up=10 are never used for published figures); K, eps_* are unused
    "parallel_probe": {"num_chains": 64, "K": 5, "T": 40, "eps_inter": 5.0, "eps_intra": 5.0,
                       "prune_patience": 7, "warm_up": 15, "probe_burst": 1, "max_steps": 100},
    "cmc": {"beta": 0.5},
}

# Policies defined in their own modules (name -> module, imported on first use). Such a module
# provides NAME, PARAM_NAMES, normalize(params), label(params), its Python policy class and, for
# the compiled path (tts_gym.policies.compiled.run_compiled), rollout_<NAME>,
# positions_needed(policy_params) and scratch_sizes(policy_params, M, num_answers, max_probes).
EXTERNAL_POLICIES: dict[str, str] = {"bwc": "tts_gym.policies.brevity_consensus"}


def external_policy(name: str):
    """The module of an :data:`EXTERNAL_POLICIES` policy (``None`` for the others)."""
    mod = EXTERNAL_POLICIES.get(str(name).strip().lower().replace("-", "_"))
    if mod is None:
        return None
    import importlib
    return importlib.import_module(mod)


_INT_PARAMS = {"max_samples", "window_size", "num_chains", "K", "T", "prune_patience", "warm_up",
               "probe_burst", "max_steps"}
_ALIASES = {"sc": {"n": "max_samples"}}
SC_THRESHOLD = 1.01


def normalize_params(policy: str, params: Mapping[str, Any] | None = None) -> tuple[str, dict]:
    """Canonical ``(policy, params)``: defaults filled in, integer parameters as ``int``, ``beta`` and
    ``threshold`` as ``float``. ``sc`` accepts ``n`` or ``max_samples`` and becomes
    ``("asc", {"max_samples": n, "threshold": 1.01})``. ``parallel_probe`` also accepts
    ``"pp"`` / ``"parallel-probe"`` as policy name. Unknown parameters raise ``ValueError``."""
    name = str(policy).strip().lower().replace("-", "_")
    if name == "pp":
        name = "parallel_probe"
    ext = external_policy(name)
    if ext is not None:
        return ext.NAME, ext.normalize(params)
    if name not in POLICY_DEFAULTS:
        raise ValueError(f"unknown policy {policy!r}; choose one of "
                         f"{POLICY_NAMES + tuple(EXTERNAL_POLICIES)}")
    out = dict(POLICY_DEFAULTS[name])
    aliases = _ALIASES.get(name, {})
    for k, v in dict(params or {}).items():
        k = aliases.get(k) or k
        if k not in out:
            raise ValueError(f"unknown parameter {k!r} for policy {name!r}; "
                             f"known: {sorted(out) + sorted(aliases)}")
        out[k] = v
    for k in out:
        if k in _INT_PARAMS:
            v = out[k]
            if isinstance(v, str):
                v = float(v)
            if float(v) != int(float(v)):
                raise ValueError(f"parameter {k!r} of {name!r} must be an integer, got {out[k]!r}")
            out[k] = int(float(v))
        elif k in ("threshold", "beta", "eps_inter", "eps_intra"):
            out[k] = float(out[k])
    if name == "sc":
        return "asc", {"max_samples": out["max_samples"], "threshold": SC_THRESHOLD}
    return name, out
