"""The built-in policy families in one place: names, aliases, parameters with defaults and declared
ranges, display labels, the AutoTTS sweeps and the main-table configurations.

Every entry point that takes a policy by name -- :func:`tts_gym.policies.make_policy`, the compiled
path (:func:`tts_gym.policies.compiled.run_compiled`), :func:`tts_gym.evaluate` / ``Sweep``, and the
command line -- resolves it here, so a parameter outside its range is refused the same way
everywhere, with a message naming the parameter, the value and the range::

    >>> normalize("esc", {"window_size": 0})
    PolicyParamError: policy 'esc': parameter 'window_size' must be an integer in [1, 2147483647], got 0

=====================  =========================================================================
family (aliases)       parameters: default, declared range
=====================  =========================================================================
``sc``                 ``max_samples`` (alias ``n``) 64, [1, 2**31-1]; runs as ASC with
(self_consistency)     threshold 1.01 (no confidence exceeds it)
``asc``                ``max_samples`` 64, [1, 2**31-1]; ``threshold`` 0.95, [0, 1.01]
(adaptive_consistency)
``esc``                ``max_samples`` 64, [1, 2**31-1]; ``window_size`` 8, [1, max_samples]
(early_stopping_sc)
``parallel_probe``     ``num_chains`` 64, ``T`` 40, ``prune_patience`` 7, ``max_steps`` 100 (all
(pp, parallel-probe,   [1, 2**31-1]); ``warm_up`` 15, [0, 2**31-1]; ``probe_burst`` 1, [1, 65536];
parallelprobe)         ``K`` 5, [1, 2**31-1], ``eps_inter`` / ``eps_intra`` 5.0, [0, inf) (accepted,
                       unused, as in the reference)
``cmc``                ``beta`` 0.5, [0, 1]
=====================  =========================================================================

Integers accept integral numbers (``64``, ``64.0``, ``"64"``); floats accept finite numbers. ``null``,
booleans, lists, objects, NaN and infinities are refused.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "Param", "PolicySpec", "PolicyParamError", "REGISTRY", "POLICY_NAMES", "FAMILY_NAMES",
    "DEFAULT_SWEEPS", "MAIN_TABLE_CONFIGS", "SC_THRESHOLD", "INT_MAX", "canonical", "spec",
    "normalize", "defaults", "validate_params", "label", "kernel_name", "is_builtin",
]

INT_MAX = 2**31 - 1
"""Upper bound of the integer parameters (they are int32 inside the compiled kernels)."""
SC_THRESHOLD = 1.01
"""The ASC threshold SC@N runs with: no Beta-majority confidence exceeds it (``docs/replay-semantics.md``,
"SC@N")."""


class PolicyParamError(ValueError):
    """An unknown policy or parameter, or a parameter value outside its declared range."""


@dataclass(frozen=True)
class Param:
    """One declared parameter: ``kind`` (``int`` or ``float``), default and closed range
    ``[low, high]`` (``None``: unbounded); ``high_param`` bounds it by another parameter's value."""
    name: str
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    doc: str = ""
    used: bool = True
    high_param: str | None = None

    def range_text(self) -> str:
        lo = "-inf" if self.low is None else _num(self.low)
        hi = self.high_param or ("inf" if self.high is None else _num(self.high))
        return f"[{lo}, {hi}]" if self.high is not None or self.high_param else f"[{lo}, inf)"


def _num(v) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


@dataclass(frozen=True)
class PolicySpec:
    """A built-in family: canonical ``name``, display ``family_label``, ``aliases``, parameters, the
    compiled ``kernel`` it runs on, parameter ``param_aliases`` and its default ``sweep``."""
    name: str
    family_label: str
    params: tuple[Param, ...]
    aliases: tuple[str, ...] = ()
    kernel: str = ""
    param_aliases: Mapping[str, str] = field(default_factory=dict)
    sweep: Mapping[str, list] = field(default_factory=dict)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


_COUNT = dict(kind=int, low=1, high=INT_MAX)

REGISTRY: dict[str, PolicySpec] = {s.name: s for s in (
    PolicySpec("sc", "SC", (
        Param("max_samples", default=64, doc="full reads; majority of their finals", **_COUNT),),
        aliases=("self_consistency", "self-consistency"), kernel="asc",
        param_aliases={"n": "max_samples"},
        sweep={"max_samples": [1, 2, 4, 8, 16, 32, 64]}),
    PolicySpec("asc", "ASC", (
        Param("max_samples", default=64, doc="full reads at most", **_COUNT),
        Param("threshold", float, 0.95, 0.0, SC_THRESHOLD,
              doc="stop once the Beta-majority confidence of the top two exceeds it (>= 1: never)")),
        aliases=("adaptive_consistency", "adaptive-consistency"), kernel="asc",
        sweep={"max_samples": [1, 4, 8, 16, 32, 64], "threshold": [0.95]}),
    PolicySpec("esc", "ESC", (
        Param("max_samples", default=64, doc="full reads at most", **_COUNT),
        Param("window_size", int, 8, 1, INT_MAX, doc="reads per window; a unanimous window stops",
              high_param="max_samples")),
        aliases=("early_stopping_sc", "early-stopping-sc"), kernel="esc",
        sweep={"max_samples": [16, 32, 64], "window_size": [8]}),
    # the configuration the reference driver runs (the constructor's own defaults T=14,
    # prune_patience=8, warm_up=10 are never used for published figures); K, eps_* are unused
    PolicySpec("parallel_probe", "Parallel-Probe", (
        Param("num_chains", default=64, doc="branches opened", **_COUNT),
        Param("K", default=5, doc="accepted, unused (as in the reference)", used=False, **_COUNT),
        Param("T", default=40, doc="rounds of a stable majority that stop", **_COUNT),
        Param("eps_inter", float, 5.0, 0.0, None, doc="accepted, unused", used=False),
        Param("eps_intra", float, 5.0, 0.0, None, doc="accepted, unused", used=False),
        Param("prune_patience", default=7, doc="disagreeing rounds before a prune", **_COUNT),
        Param("warm_up", int, 15, 0, INT_MAX, doc="rounds before pruning starts"),
        Param("probe_burst", int, 1, 1, 65536, doc="CONTINUEs per live branch and round"),
        Param("max_steps", default=100, doc="rounds at most", **_COUNT)),
        aliases=("pp", "parallelprobe", "parallel-probe"), kernel="parallel_probe",
        sweep={"num_chains": [1, 4, 8, 16, 32, 64]}),
    PolicySpec("cmc", "CMC", (
        Param("beta", float, 0.5, 0.0, 1.0, doc="effort: the schedule of cmc_schedule(beta)"),),
        aliases=("confidence_momentum",), kernel="cmc",
        sweep={"beta": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}),
)}

POLICY_NAMES = tuple(REGISTRY)
FAMILY_NAMES = {**{n: s.family_label for n, s in REGISTRY.items()}, "oracle": "Oracle"}
DEFAULT_SWEEPS: dict[str, dict[str, list]] = {n: dict(s.sweep) for n, s in REGISTRY.items()}
"""The AutoTTS sweeps (reference CSV / driver), used by ``tts-gym compare`` and the benchmark."""

MAIN_TABLE_CONFIGS: list[tuple[str, dict]] = [
    ("sc", {"max_samples": 64}),
    ("asc", {"max_samples": 64, "threshold": 0.95}),
    ("esc", {"max_samples": 64, "window_size": 8}),
    ("parallel_probe", {"num_chains": 64, "T": 40, "prune_patience": 7, "warm_up": 15}),
    ("cmc", {"beta": 0.5}),
    ("cmc", {"beta": 1.0}),
]
"""The configurations of the AutoTTS main table (``docs/replay-semantics.md``, "Parity targets")."""

_ALIASES = {a: s.name for s in REGISTRY.values() for a in (s.name, *s.aliases)}

# Families defined in modules of their own (name -> module, imported on first use). Such a module
# provides NAME, PARAM_NAMES, normalize(params), label(params), its Python policy class and, for
# the compiled path (tts_gym.policies.compiled), rollout_<NAME>, positions_needed(policy_params)
# and scratch_sizes(policy_params, M, num_answers, max_probes).
EXTERNAL_POLICIES: dict[str, str] = {"bwc": "tts_gym.policies.brevity_consensus"}
FAMILY_NAMES.update({"bwc": "BWC"})


def external_policy(name: Any):
    """The module of an :data:`EXTERNAL_POLICIES` family (``None`` for the others)."""
    if not isinstance(name, str):
        return None
    mod = EXTERNAL_POLICIES.get(_key(name).replace("-", "_"))
    if mod is None:
        return None
    import importlib
    return importlib.import_module(mod)


def _key(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_")


def canonical(name: Any, *, strict: bool = True) -> str:
    """The canonical family name of ``name`` (case, ``-``/``_``/space and aliases folded).

    Unknown names raise :class:`PolicyParamError` listing the families, or are returned folded
    (lower case) when ``strict=False`` (custom policy names)."""
    if not isinstance(name, str):
        raise PolicyParamError(f"policy name must be a string, got {type(name).__name__}")
    k = _key(name)
    hit = _ALIASES.get(k) or _ALIASES.get(k.replace("-", "_")) or _ALIASES.get(k.replace("_", "-"))
    if hit is not None:
        return hit
    if k.replace("-", "_") in EXTERNAL_POLICIES:
        return k.replace("-", "_")
    if strict:
        raise PolicyParamError(f"unknown policy {name!r}; choose one of "
                               f"{', '.join(POLICY_NAMES + tuple(EXTERNAL_POLICIES))} "
                               f"(aliases: pp = parallel_probe)")
    return k


def is_builtin(name: Any) -> bool:
    return isinstance(name, str) and (canonical(name, strict=False) in REGISTRY
                                      or external_policy(name) is not None)


def spec(name: str) -> PolicySpec:
    return REGISTRY[canonical(name)]


def kernel_name(name: str) -> str:
    """The compiled kernel a family runs on (``sc`` -> ``asc``)."""
    return spec(name).kernel


def defaults(name: str) -> dict[str, Any]:
    """Every parameter of a family with its default."""
    return {p.name: p.default for p in spec(name).params}


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _coerce(policy: str, p: Param, value: Any, given_as: str | None = None) -> Any:
    shown = p.name if given_as in (None, p.name) else f"{given_as}"
    where = f"policy {policy!r}: parameter {shown!r}"
    want = "an integer" if p.kind is int else "a number"
    rng = p.range_text()

    def bad(got: str) -> PolicyParamError:
        return PolicyParamError(f"{where} must be {want} in {rng}, got {got}")

    v = value
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            raise bad(_show(value)) from None
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        kinds = {list: "a list", tuple: "a list", dict: "an object"}
        raise bad(_show(value) if isinstance(value, (str, bool)) or value is None
                  else f"{kinds.get(type(value), type(value).__name__)} {_show(value)}")
    f = float(v)
    if not math.isfinite(f):
        raise bad(_show(value))
    if p.kind is int:
        if isinstance(v, numbers.Integral):
            out: Any = int(v)
        elif f.is_integer():
            out = int(f)
        else:
            raise bad(_show(value))
    else:
        out = f
    if (p.low is not None and out < p.low) or (p.high is not None and out > p.high):
        raise bad(_show(value))
    return out


def validate_params(name: str, params: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """``(canonical family, every parameter)``: defaults filled in, values coerced and checked against
    the declared ranges (and cross-parameter bounds), parameter aliases resolved. Raises
    :class:`PolicyParamError` naming the parameter, the value and the range."""
    fam = canonical(name)
    ext = external_policy(fam)
    if ext is not None:
        return ext.NAME, ext.normalize(params)
    s = REGISTRY[fam]
    if params is not None and not isinstance(params, Mapping):
        raise PolicyParamError(f"policy {fam!r}: parameters must be a mapping, got {type(params).__name__}")
    out = defaults(fam)
    given: dict[str, str] = {}
    for k, v in dict(params or {}).items():
        if not isinstance(k, str):
            raise PolicyParamError(f"policy {fam!r}: parameter names must be strings, got {k!r}")
        canon = s.param_aliases.get(k, k)
        if canon not in out:
            known = sorted(s.param_names) + sorted(s.param_aliases)
            raise PolicyParamError(f"policy {fam!r}: unknown parameter {k!r}; known: {', '.join(known)}")
        if canon in given:
            raise PolicyParamError(f"policy {fam!r}: parameter {canon!r} given twice "
                                   f"(as {given[canon]!r} and {k!r})")
        given[canon] = k
        out[canon] = _coerce(fam, s.param(canon), v, k)
    for p in s.params:
        if p.high_param is not None and out[p.name] > out[p.high_param]:
            raise PolicyParamError(
                f"policy {fam!r}: parameter {p.name!r} must be an integer in [{_num(p.low)}, "
                f"{p.high_param}={out[p.high_param]}], got {out[p.name]} (no complete window fits)")
    return fam, out


def normalize(name: str, params: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The protocol form of a configuration: :func:`validate_params`, then ``sc`` becomes
    ``("asc", {"max_samples": n, "threshold": 1.01})`` (the compiled kernel it runs on)."""
    fam, out = validate_params(name, params)
    if fam == "sc":
        return "asc", {"max_samples": out["max_samples"], "threshold": SC_THRESHOLD}
    return fam, out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def label(family: str, params: Mapping[str, Any]) -> str:
    """Display label of a configuration, e.g. ``SC@64``, ``ASC@64``, ``ESC@64``, ``PP@64``,
    ``CMC β=0.5``; parameters differing from the defaults are appended. A custom (non built-in)
    family is shown as ``name(k=v, ...)``."""
    p = dict(params)
    fam = canonical(family, strict=False) if isinstance(family, str) else family
    ext = external_policy(fam)
    if ext is not None:
        return ext.label(p)
    if fam == "sc":
        return f"SC@{p.get('max_samples', p.get('n', 64))}"
    if fam == "asc":
        s = f"ASC@{p.get('max_samples', 64)}"
        thr = float(p.get("threshold", 0.95))
        return s if thr == 0.95 else f"{s} (thr {thr:g})"
    if fam == "esc":
        s = f"ESC@{p.get('max_samples', 64)}"
        w = int(p.get("window_size", 8))
        return s if w == 8 else f"{s} (w{w})"
    if fam == "parallel_probe":
        d = defaults("parallel_probe")
        s = f"PP@{p.get('num_chains', 64)}"
        extra = [f"{k}={_fmt(v)}" for k, v in sorted(p.items())
                 if k != "num_chains" and k in d and v != d[k]]
        return s if not extra else f"{s} ({', '.join(extra)})"
    if fam == "cmc":
        return f"CMC β={_fmt(float(p.get('beta', 0.5)))}"
    inner = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(p.items()))
    return f"{family}({inner})" if inner else str(family)
