"""``tts_gym.evaluate``: policies x stores x protocol -> a tidy table with confidence intervals.

::

    import tts_gym
    res = tts_gym.evaluate("cmc", grid={"beta": [0.0, 0.5, 1.0]})          # synthetic store
    res = tts_gym.evaluate([tts_gym.Sweep("sc", n=[1, 4, 16, 64]),
                            tts_gym.Sweep("cmc", beta=[0.5, 1.0])],
                           stores=[store_a, store_b], protocol="reference")
    print(res.to_markdown())
    res.compare("CMC β=1", "SC@64")            # paired difference on identical episodes
    res.frontier("cmc"), res.oracle()           # Pareto front of a sweep, oracle bound

What is evaluated. A *configuration* is a policy family with one parameter set (``SC@64``,
``CMC β=0.5``). The built-in families (``sc``, ``asc``, ``esc``, ``parallel_probe``, ``cmc``; parameter
names of :func:`tts_gym.policies.common.normalize_params`) run on the compiled path
(:func:`tts_gym.policies.compiled.run_compiled`, all episodes of a configuration in one numba call).
Any other policy -- a :class:`~tts_gym.policies.base.Policy` instance, or a factory
``params -> Policy`` with a ``grid`` -- runs through the Python episode loop.

Episodes come from a protocol (:mod:`tts_gym.evaluation.protocols`): ``"reference"`` (the AutoTTS
protocol, 100 seeded shuffles; parity), ``"subsample"``, ``"bootstrap"`` (over questions) or
``"branch-bootstrap"``. Every configuration runs on the same episodes.

What comes back (:class:`EvalResult`). One row per (store, configuration): accuracy in percent (exact
``100 * sum_correct / episodes``, with a CI over replicates), average tokens per question (with a
CI), the exact integer totals ``sum_correct`` / ``sum_tokens`` (the parity targets), plus per-episode
outcomes (answer id, cost, correct, steps as ``[replicates, episodes]`` arrays) from which
per-question tables, paired comparisons, frontiers and oracle bounds are derived. With
``traces=True``, per-step execution traces (:mod:`tts_gym.evaluation.traces`) of the episodes of the
first replicate(s) are recorded by the compiled path.

Backends. ``backend="local"`` runs in-process; ``backend="ray"`` shards the sweep (stores x
configurations x replicate blocks) into Ray tasks (:mod:`tts_gym.evaluation.ray_backend`). Both call
the same task function and assemble results in the same order, so the tables are identical.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from tts_gym.evaluation import stats as S
from tts_gym.evaluation.frontier import Frontier, pareto_frontier
from tts_gym.evaluation.progress import progress_bar
from tts_gym.evaluation.protocols import EpisodeSet, make_episodes
from tts_gym.policies.registry import (DEFAULT_SWEEPS, FAMILY_NAMES,  # noqa: F401 (re-export)
                                      MAIN_TABLE_CONFIGS, POLICY_NAMES, EXTERNAL_POLICIES)
from tts_gym.policies import registry as _registry

BUILTIN_FAMILIES = POLICY_NAMES + tuple(EXTERNAL_POLICIES)


# ---------------------------------------------------------------------------------------------
# configurations
# ---------------------------------------------------------------------------------------------

def canonical_family(name: str) -> str:
    """A built-in family's canonical name (aliases folded); other names folded to lower case."""
    return _registry.canonical(name, strict=False)


def config_label(family: str, params: Mapping[str, Any]) -> str:
    """Display label of a configuration (:func:`tts_gym.policies.registry.label`), e.g. ``SC@64``,
    ``CMC β=0.5``."""
    return _registry.label(family, params)


@dataclass(frozen=True, eq=False)
class Config:
    """One evaluated configuration.

    ``family``: built-in family name or a custom policy name; ``params``: its parameters;
    ``policy``: for non-built-in families, a :class:`~tts_gym.policies.base.Policy` instance or a
    factory ``(**params) -> Policy``."""
    family: str
    params: dict
    label: str
    policy: Any = None

    @property
    def builtin(self) -> bool:
        return self.policy is None and self.family in BUILTIN_FAMILIES

    def kernel_and_row(self) -> tuple[str, list[float]]:
        """Compiled kernel name and its ``policy_params`` row (see ``run_compiled``)."""
        hit = self.__dict__.get("_kernel_row")
        if hit is None:
            hit = self.__dict__["_kernel_row"] = _kernel_row(
                self.family, tuple(sorted((k, repr(v)) for k, v in self.params.items())), self.params)
        return hit

    def __repr__(self) -> str:
        return f"Config({self.label!r})"


_KERNEL_ROWS: dict = {}


def _kernel_row(family: str, key: tuple, params: Mapping[str, Any]) -> tuple[str, list[float]]:
    """:meth:`Config.kernel_and_row`, computed once per (family, parameters)."""
    hit = _KERNEL_ROWS.get((family, key))
    if hit is None:
        from tts_gym.policies.compiled import policy_param_rows
        kernel, rows = policy_param_rows(family, [params])
        hit = (kernel, rows[0].tolist())
        if len(_KERNEL_ROWS) > 4096:
            _KERNEL_ROWS.clear()
        _KERNEL_ROWS[(family, key)] = hit
    return hit


def _builtin_params(family: str, params: Mapping[str, Any]) -> dict:
    """Validated parameters of a built-in family in canonical types (as given; defaults implied).
    ``sc`` takes ``n`` or ``max_samples`` and is stored as ``{"max_samples": n}``."""
    _, full = _registry.validate_params(family, params)   # raises on unknown / out-of-range values
    if family == "sc":
        return {"max_samples": full["max_samples"]}
    if _registry.external_policy(family) is not None:
        return {k: full[k] for k in params if k in full}
    spec = _registry.spec(family)
    return {spec.param_aliases.get(k, k): full[spec.param_aliases.get(k, k)] for k in params}


def _expand_grid(grid) -> list[dict]:
    if grid is None:
        return [{}]
    if isinstance(grid, Mapping):
        keys = list(grid)
        vals = [v if isinstance(v, (list, tuple, np.ndarray, range)) else [v] for v in grid.values()]
        return [dict(zip(keys, combo)) for combo in itertools.product(*vals)]
    return [dict(g) for g in grid]


class Sweep:
    """A family with a parameter grid: ``Sweep("cmc", beta=[0, .5, 1])``,
    ``Sweep("asc", grid={"max_samples": [4, 64], "threshold": [0.9, 0.95]})``, or a custom policy
    factory ``Sweep(MyPolicy, name="mine", grid={...})``. ``Sweep("sc")`` with no grid is the
    default sweep of :data:`DEFAULT_SWEEPS`."""

    def __init__(self, policy, grid=None, *, name: str | None = None, labels=None, **axes):
        if axes:
            grid = {**(dict(grid) if isinstance(grid, Mapping) else {}), **axes}
        self.policy = policy
        self.grid = grid
        self.name = name
        self.labels = labels

    def configs(self) -> list[Config]:
        pol = self.policy
        if isinstance(pol, str):
            fam = canonical_family(pol)
            grid = self.grid
            if grid is None and fam in DEFAULT_SWEEPS:
                grid = DEFAULT_SWEEPS[fam]
            if grid is None and fam in BUILTIN_FAMILIES:   # a policy module's own default sweep
                from tts_gym.policies.common import external_policy
                grid = getattr(external_policy(fam), "DEFAULT_SWEEP", None)
            if fam in BUILTIN_FAMILIES:
                out = []
                for i, p in enumerate(_expand_grid(grid)):
                    bp = _builtin_params(fam, p)
                    lab = self.labels[i] if self.labels else config_label(fam, bp)
                    out.append(Config(fam, bp, lab))
                return out
            raise ValueError(f"unknown policy family {pol!r}; built-in: {BUILTIN_FAMILIES} "
                             f"(or pass a Policy instance / factory)")
        # a Policy instance or a factory
        name = self.name or getattr(pol, "name", None) or getattr(pol, "__name__", None) or "policy"
        if not callable(pol) or hasattr(pol, "act"):
            if self.grid is not None:
                raise ValueError("a grid needs a policy factory, not a Policy instance")
            params = dict(getattr(pol, "params", {}) or {})
            return [Config(str(name), params, self.labels[0] if self.labels else
                           config_label(str(name), params), pol)]
        out = []
        for i, p in enumerate(_expand_grid(self.grid)):
            out.append(Config(str(name), p, self.labels[i] if self.labels else
                              config_label(str(name), p), pol))
        return out


def _as_configs(policies, params=None, grid=None) -> list[Config]:
    pair = (isinstance(policies, tuple) and len(policies) == 2 and isinstance(policies[0], str)
            and isinstance(policies[1], Mapping))
    if pair or isinstance(policies, (Sweep, Config, str)) or not isinstance(policies, (list, tuple)):
        policies = [policies]
    if (params is not None or grid is not None) and len(policies) != 1:
        raise ValueError("params/grid apply to a single policy; use Sweep objects for several")
    out: list[Config] = []
    for p in policies:
        if isinstance(p, Config):
            out.append(p)
        elif isinstance(p, Sweep):
            out.extend(p.configs())
        elif isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):
            out.extend(Sweep(p[0], grid=[p[1]]).configs())
        elif isinstance(p, Mapping):
            raise TypeError("a parameter dict must come with its policy: (name, params) or Sweep(name, ...)")
        else:
            g = grid if grid is not None else ([params] if params is not None else None)
            if g is None and isinstance(p, str) and canonical_family(p) in BUILTIN_FAMILIES:
                g = [{}] if params is None else [params]
            out.extend(Sweep(p, grid=g).configs())
    seen = set()
    for c in out:
        if c.label in seen:
            raise ValueError(f"two configurations share the label {c.label!r}")
        seen.add(c.label)
    return out


# ---------------------------------------------------------------------------------------------
# the unit of work shared by the backends
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """Run configurations ``configs`` (indices) of store ``store`` on replicates ``replicates``."""
    store: int
    configs: tuple
    replicates: tuple

    @property
    def size(self) -> int:
        return len(self.configs) * len(self.replicates)


_PACK_CACHE: dict[int, tuple] = {}


def _packed(store):
    from tts_gym.core.kernels import pack_stores
    hit = _PACK_CACHE.get(id(store))
    if hit is None or hit[0] is not store:
        if len(_PACK_CACHE) > 16:
            _PACK_CACHE.clear()
        hit = (store, pack_stores([store]))
        _PACK_CACHE[id(store)] = hit
    return hit[1]


def _positions(store, episodes: EpisodeSet) -> int:
    M = int(store.max_branches)
    return M if episodes.max_positions is None else min(M, int(episodes.max_positions))


_BLOCK_BYTES = 64 << 20   # branch orders materialised per compiled call, at most


def run_task(store, episodes: EpisodeSet, configs: Sequence[Config], task: Task,
             workers: int | None = None) -> dict[str, np.ndarray]:
    """Execute one task: arrays ``[len(task.configs), len(task.replicates), J]`` per outcome."""
    ep = episodes.take(task.replicates)
    M = _positions(store, ep)
    cfgs = [configs[i] for i in task.configs]
    R, J = ep.shape
    C, E = len(cfgs), R * J
    builtin = [i for i, c in enumerate(cfgs) if c.builtin]
    groups: dict[str, list[int]] = {}
    for i in builtin:
        groups.setdefault(cfgs[i].kernel_and_row()[0], []).append(i)
    block = max(1, _BLOCK_BYTES // (4 * M))
    if E <= block and len(groups) == 1 and len(builtin) == C:   # one compiled run gives every output as it is
        kernel, idx = next(iter(groups.items()))
        qs, orders = ep.flat()
        res = _run_builtin(store, kernel, [cfgs[i] for i in idx], qs, orders, ep.play_order(), M, workers)
        return {k: v.reshape(C, R, J) for k, v in res.items()}
    out = {k: np.empty((C, R, J), dt) for k, dt in
           (("answer", np.int32), ("cost", np.int64), ("correct", np.bool_), ("steps", np.int32))}
    flat = {k: v.reshape(C, E) for k, v in out.items()}
    for kernel, idx in groups.items():
        sub = [cfgs[i] for i in idx]
        if E <= block:
            qs, orders = ep.flat()
            res = _run_builtin(store, kernel, sub, qs, orders, ep.play_order(), M, workers)
            for k in out:
                out[k][idx] = res[k].reshape(len(idx), R, J)
            continue
        from tts_gym.policies.compiled import episode_order
        # blocks of episodes: the branch orders of a large evaluation never exist all at once
        for e0, e1, qs, orders in ep.blocks(block, M):
            res = _run_builtin(store, kernel, sub, qs, orders, episode_order(qs), M, workers)
            for k in out:
                flat[k][idx, e0:e1] = res[k]
    for i, c in enumerate(cfgs):
        if not c.builtin:
            qs, orders = ep.flat()
            res = _run_python(store, c, qs, orders[:, :M], M)
            for k in out:
                out[k][i] = res[k].reshape(R, J)
    return out


def _run_builtin(store, kernel: str, cfgs: Sequence[Config], qs, orders, tasks, M: int,
                 workers) -> dict[str, np.ndarray]:
    """The built-in configurations ``cfgs`` of one compiled kernel on the episodes ``(qs, orders)``,
    played in the order ``tasks`` (:func:`tts_gym.policies.compiled.episode_order` of ``qs``)."""
    from tts_gym.policies.compiled import execute, plan_run
    data = _packed(store)
    rows = np.asarray([c.kernel_and_row()[1] for c in cfgs], np.float64)
    plan = plan_run(data, kernel, [], qs, orders, max_branches=M, workers=workers, policy_params=rows)
    return execute(plan, data, qs, orders, tasks)


def _make_python_policy(config: Config):
    pol = config.policy
    if hasattr(pol, "act") and hasattr(pol, "reset"):
        return pol
    if callable(pol):
        return pol(**config.params)
    from tts_gym.policies.coerce import as_policy
    return as_policy(pol)


def _run_python(store, config: Config, questions, orders, M) -> dict[str, np.ndarray]:
    """Play a Python policy over the episodes through the env (:func:`tts_gym.evaluation.rollout.run_episode`,
    one Python call per step). The episodes' explicit branch orders are passed as the env's
    ``permutation`` reset option (so they must be permutations: no branch bootstrap here)."""
    from tts_gym.policies.coerce import as_policy
    from tts_gym.evaluation.rollout import make_reference_env, run_episode

    policy = as_policy(_make_python_policy(config), keep_controllers=True)
    # a policy trained on a given number of positions (an SB3 model) plays with exactly that many
    M = int(getattr(policy, "max_branches", None) or M)
    env = make_reference_env(store, max_branches=M)
    E = len(questions)
    out = {"answer": np.full(E, -1, np.int32), "cost": np.zeros(E, np.int64),
           "correct": np.zeros(E, np.bool_), "steps": np.zeros(E, np.int32)}
    for j in range(E):
        q = int(questions[j])
        n = min(M, int(store.num_branches[q]))
        a, cost, ok, steps, _ = run_episode(env, policy, q, 0,
                                            reset_options={"permutation": orders[j, :n]})
        out["answer"][j], out["cost"][j], out["correct"][j], out["steps"][j] = a, cost, ok, steps
    return out


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """Per-episode outcomes of one (store, configuration): ``[R, J]`` arrays."""
    answer: np.ndarray
    cost: np.ndarray
    correct: np.ndarray
    steps: np.ndarray
    episodes: EpisodeSet

    @property
    def sum_correct(self) -> int:
        return int(self.correct.sum())

    @property
    def sum_tokens(self) -> int:
        return S.exact_int_sum(self.cost)

    @property
    def accuracy(self) -> float:
        return 100.0 * self.sum_correct / self.correct.size

    @property
    def avg_tokens(self) -> float:
        return self.sum_tokens / self.cost.size

    def replicate_accuracy(self) -> np.ndarray:
        """Per-group accuracy in percent (groups = replicates except for the branch bootstrap)."""
        return _group_means(self.correct.mean(axis=1) * 100.0, self.episodes.groups)

    def replicate_tokens(self) -> np.ndarray:
        return _group_means(self.cost.mean(axis=1), self.episodes.groups)


def _group_means(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    if groups.size == values.size and (groups.size < 2 or (np.diff(groups) > 0).all()):
        return values                       # one replicate per group (every protocol but one)
    u, inv = np.unique(groups, return_inverse=True)
    if u.size == values.size:
        return values
    return np.bincount(inv, weights=values) / np.bincount(inv)


@dataclass
class EvalResult:
    """Everything :func:`evaluate` produced. ``rows`` is the tidy table (one dict per store x
    configuration); ``outcomes[(store_name, label)]`` the per-episode arrays."""
    rows: list[dict]
    outcomes: dict
    configs: list[Config]
    stores: list
    episodes: dict                    # store name -> EpisodeSet
    level: float = 0.95
    ci: str = "t"
    traces: dict = field(default_factory=dict)   # (store name, family) -> Traces
    backend: str = "local"
    wall_time: float = 0.0

    # -- access ------------------------------------------------------------------------------------
    @property
    def store_names(self) -> list[str]:
        return [s.name for s in self.stores]

    def _store_name(self, store) -> str:
        if store is None:
            if len(self.stores) != 1:
                raise ValueError(f"several stores evaluated; name one of {self.store_names}")
            return self.stores[0].name
        name = getattr(store, "name", store)
        if name not in self.store_names:
            raise KeyError(f"store {name!r} not in this result ({self.store_names})")
        return name

    def _label(self, config) -> str:
        if isinstance(config, Config):
            return config.label
        labels = [c.label for c in self.configs]
        if config in labels:
            return config
        # tolerant match: "CMC β=1" == "CMC β=1.0", case-insensitive
        norm = lambda s: str(s).lower().replace(" ", "").replace("beta", "β").replace(".0", "")  # noqa: E731
        hits = [lab for lab in labels if norm(lab) == norm(config)]
        if len(hits) == 1:
            return hits[0]
        raise KeyError(f"no configuration {config!r}; have {labels}")

    def outcome(self, config, store=None) -> Outcome:
        return self.outcomes[(self._store_name(store), self._label(config))]

    def row(self, config, store=None) -> dict:
        s, lab = self._store_name(store), self._label(config)
        for r in self.rows:
            if r["store"] == s and r["label"] == lab:
                return r
        raise KeyError((s, lab))

    def select(self, family: str | None = None, store=None) -> list[dict]:
        s = None if store is None else self._store_name(store)
        fam = None if family is None else canonical_family(family)
        return [r for r in self.rows if (s is None or r["store"] == s)
                and (fam is None or r["family"] == fam)]

    # -- derived analyses ---------------------------------------------------------------------------
    def per_question(self, config, store=None) -> dict[str, np.ndarray]:
        """Per question of the store: episodes, accuracy (percent) and mean tokens."""
        o = self.outcome(config, store)
        q = o.episodes.questions.ravel()
        Q = int(q.max()) + 1 if q.size else 0
        n = np.bincount(q, minlength=Q)
        acc = np.bincount(q, weights=o.correct.ravel().astype(np.float64), minlength=Q)
        tok = np.bincount(q, weights=o.cost.ravel().astype(np.float64), minlength=Q)
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"question": np.arange(Q), "episodes": n, "accuracy": 100.0 * acc / n,
                    "avg_tokens": tok / n}

    def compare(self, a, b, store=None, *, over: str = "replicates", method: str | None = None,
                level: float | None = None, n_boot: int = 10_000, seed: int = 0) -> S.PairedComparison:
        """Paired comparison ``a - b`` on the identical episodes (see :func:`stats.paired_difference`)."""
        oa, ob = self.outcome(a, store), self.outcome(b, store)
        ga = oa.episodes.groups
        ca, cb, ta, tb = oa.correct, ob.correct, oa.cost, ob.cost
        if over == "replicates" and np.unique(ga).size != ga.size:  # branch bootstrap: group means
            ca = _group_rows(ca, ga)
            cb = _group_rows(cb, ga)
            ta = _group_rows(ta, ga)
            tb = _group_rows(tb, ga)
        return S.paired_difference(ca, cb, ta, tb, level=level or self.level, method=method or self.ci,
                                   over=over, n_boot=n_boot, seed=seed,
                                   label_a=self._label(a), label_b=self._label(b))

    def frontier(self, family: str | None = None, store=None) -> Frontier:
        """Pareto frontier of a family's sweep (all configurations when ``family`` is None)."""
        rows = self.select(family, self._store_name(store))
        label = FAMILY_NAMES.get(canonical_family(family), family) if family else "all"
        return pareto_frontier([r["avg_tokens"] for r in rows], [r["accuracy"] for r in rows], label)

    def oracle(self, store=None):
        """The adaptive oracle-selection curve on this result's episodes (:mod:`.oracle`)."""
        from tts_gym.evaluation.oracle import oracle_curve
        s = self._store_name(store)
        st = next(x for x in self.stores if x.name == s)
        return oracle_curve(st, self.episodes[s])

    # -- output -------------------------------------------------------------------------------------
    def to_dicts(self) -> list[dict]:
        return [dict(r) for r in self.rows]

    def to_csv(self, path=None) -> str:
        cols = list(self.rows[0]) if self.rows else []
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (json.dumps(v, sort_keys=True) if isinstance(v, dict) else v)
                        for k, v in r.items()})
        if path is not None:
            from tts_gym.files import atomic_write
            atomic_write(path, buf.getvalue())
        return buf.getvalue()

    def to_json(self, path=None) -> str:
        s = json.dumps(self.rows, indent=1, default=str)
        if path is not None:
            from tts_gym.files import atomic_write
            atomic_write(path, s)
        return s

    def to_markdown(self, ci: bool = True) -> str:
        """Markdown table: store, configuration, accuracy (with CI), tokens per question."""
        lv = int(round(self.level * 100))
        head = ["store", "configuration", "accuracy %", f"{lv}% CI" if ci else None,
                "tokens / question", "episodes"]
        head = [h for h in head if h]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
        for r in self.rows:
            cells = [r["store"], r["label"], f"{r['accuracy']:.2f}"]
            if ci:
                cells.append(f"[{r['acc_low']:.2f}, {r['acc_high']:.2f}]")
            cells += [f"{r['avg_tokens']:,.0f}", str(r["episodes"])]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def rich_table(self, title: str | None = None, store_column: bool | None = None):
        """A rich table (accuracy with its CI, tokens per question in thousands)."""
        from rich.table import Table
        lv = int(round(self.level * 100))
        show_store = len(self.stores) > 1 if store_column is None else store_column
        t = Table(title=title, show_lines=False, pad_edge=False)
        cols = ([("store", "left")] if show_store else []) + [
            ("configuration", "left"), ("acc %", "right"), (f"{lv}% CI", "right"),
            ("tokens/q", "right")]
        for col, just in cols:
            t.add_column(col, justify=just, no_wrap=True)
        last = None
        for r in self.rows:
            cells = [r["label"], f"{r['accuracy']:.2f}", f"{r['acc_low']:.1f}–{r['acc_high']:.1f}",
                     f"{r['avg_tokens'] / 1000:,.1f}k"]
            if show_store:
                cells.insert(0, r["store"] if r["store"] != last else "")
            t.add_row(*cells)
            last = r["store"]
        return t

    def __repr__(self) -> str:
        return (f"EvalResult({len(self.stores)} store(s) x {len(self.configs)} configuration(s), "
                f"protocol={next(iter(self.episodes.values())).describe() if self.episodes else '-'})")


def _group_rows(a: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Average rows of ``a`` ([R, J]) within groups -> [G, J]."""
    u, inv = np.unique(groups, return_inverse=True)
    out = np.zeros((u.size, a.shape[1]))
    np.add.at(out, inv, a.astype(np.float64))
    return out / np.bincount(inv)[:, None]


def summarize(store_name: str, config: Config, o: Outcome, level: float, ci: str,
              n_boot: int = 10_000) -> dict:
    """The tidy-table row of one (store, configuration)."""
    acc_r = o.replicate_accuracy()
    tok_r = o.replicate_tokens()
    acc_iv = S.mean_ci(acc_r, level, ci, n_boot)
    tok_iv = S.mean_ci(tok_r, level, ci, n_boot)
    model, _, bench = store_name.partition("/")
    return {
        "store": store_name, "model": model, "benchmark": bench, "family": config.family,
        "label": config.label, "params": dict(config.params), "protocol": o.episodes.describe(),
        "replicates": int(acc_r.size), "episodes": int(o.correct.size),
        "accuracy": o.accuracy, "acc_low": acc_iv.low, "acc_high": acc_iv.high,
        "avg_tokens": o.avg_tokens, "tok_low": tok_iv.low, "tok_high": tok_iv.high,
        "sum_correct": o.sum_correct, "sum_tokens": o.sum_tokens,
        "ci": ci, "level": level,
    }


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------

def _as_stores(stores) -> list:
    from tts_gym.data.resolve import resolve_stores
    out = resolve_stores(stores)
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate store names {names}")
    return out


def plan_tasks(stores, configs, episodes: Mapping[str, EpisodeSet], replicate_block: int | None = None,
               configs_per_task: int | None = 1) -> list[Task]:
    """Split a sweep into tasks: per store, chunks of configurations x blocks of replicates."""
    tasks = []
    for si, st in enumerate(stores):
        R = episodes[st.name].num_replicates
        blk = R if not replicate_block else max(1, int(replicate_block))
        cpt = len(configs) if not configs_per_task else max(1, int(configs_per_task))
        for c0 in range(0, len(configs), cpt):
            for r0 in range(0, R, blk):
                tasks.append(Task(si, tuple(range(c0, min(len(configs), c0 + cpt))),
                                  tuple(range(r0, min(R, r0 + blk)))))
    return tasks


def assemble(stores, configs, episodes, tasks, task_results, level, ci) -> tuple[list[dict], dict]:
    """Put task results back into per-(store, configuration) outcomes and table rows."""
    buf: dict[tuple, dict] = {}
    for task, res in zip(tasks, task_results):
        st = stores[task.store]
        ep = episodes[st.name]
        whole = tuple(task.replicates) == tuple(range(ep.num_replicates))
        for ci_, c in enumerate(task.configs):
            key = (st.name, configs[c].label)
            if whole and key not in buf:   # the task holds every replicate: keep its arrays, no copy
                buf[key] = {k: v[ci_] for k, v in res.items()}
                continue
            if key not in buf:
                R, J = ep.shape
                buf[key] = {k: np.empty((R, J), v.dtype) for k, v in res.items()}
            for k, v in res.items():
                buf[key][k][list(task.replicates)] = v[ci_]
    outcomes, rows = {}, []
    for st in stores:
        for c in configs:
            key = (st.name, c.label)
            b = buf[key]
            o = Outcome(b["answer"], b["cost"], b["correct"], b["steps"], episodes[st.name])
            outcomes[key] = o
            rows.append(summarize(st.name, c, o, level, ci))
    return rows, outcomes


def run_local(stores, configs, episodes, tasks, *, workers=None, progress=None) -> list[dict]:
    """Execute tasks in-process, in order, with a progress bar (episodes x configurations)."""
    total = sum(t.size * episodes[stores[t.store].name].episodes_per_replicate for t in tasks)
    results = []
    with progress_bar(total, "evaluating", progress) as bar:
        for t in tasks:
            st = stores[t.store]
            bar.set_postfix_str(f"{st.name} {configs[t.configs[0]].label}"
                                + (f" +{len(t.configs) - 1}" if len(t.configs) > 1 else ""))
            results.append(run_task(st, episodes[st.name], configs, t, workers))
            bar.update(t.size * episodes[st.name].episodes_per_replicate)
    return results


def evaluate(policies, stores=None, *, params: Mapping | None = None, grid=None,
             protocol: str | EpisodeSet = "reference", seeds=None, level: float = 0.95, ci: str = "t",
             backend: str = "local", address: str | None = None, num_cpus: int | None = None,
             replicate_block: int | None = None, traces: bool = False, trace_replicates=(0,),
             max_trace_steps: int | None = None, workers: int | None = None, progress=None,
             **protocol_kwargs) -> EvalResult:
    """Evaluate policies on stores under a protocol; see the module docstring.

    Parameters
    ----------
    policies: a built-in family name (``"sc" "asc" "esc" "parallel_probe" "cmc"``), a :class:`Sweep`,
        a :class:`Config`, a ``(family, params)`` pair, a Policy instance or factory, or a list of
        these. A bare family name with neither ``params`` nor ``grid`` runs its protocol defaults.
    stores: anything :func:`tts_gym.data.resolve.resolve_stores` accepts -- a
        :class:`~tts_gym.data.store.ReplayStore`, a path (every store of an HDF5 file or directory),
        a ``"model/benchmark"`` name, a list of them, or ``None`` (the embedded synthetic store).
    params / grid: parameters of a single policy; ``grid`` is a dict of lists (Cartesian product) or
        a list of dicts.
    protocol: ``"reference"`` (default), ``"subsample"``, ``"bootstrap"``, ``"branch-bootstrap"``, or
        an :class:`EpisodeSet`; ``seeds`` and ``protocol_kwargs`` (``n``, ``replicates``, ``seed``,
        ``iterations``) go to the protocol.
    level / ci: confidence level and interval method over replicates (``"t"`` or ``"bootstrap"``).
    backend / address / num_cpus / replicate_block: ``"local"`` or ``"ray"`` (``address`` joins a
        cluster; otherwise a local Ray instance with ``num_cpus``), sharding replicates in blocks.
    traces / trace_replicates / max_trace_steps: record per-step traces of the built-in
        configurations on the given replicates (see :mod:`tts_gym.evaluation.traces`).
    workers: numba threads per compiled call (default: numba's thread count).
    progress: show progress bars (``None``: when stderr is a terminal).
    """
    import math
    import time
    t0 = time.perf_counter()
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not math.isfinite(level) \
            or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    if ci not in ("t", "bootstrap"):
        raise ValueError(f"ci must be 't' or 'bootstrap', got {ci!r}")
    configs = _as_configs(policies, params, grid)
    store_list = _as_stores(stores)
    if seeds is not None:
        protocol_kwargs["seeds"] = seeds
    episodes = {s.name: make_episodes(s, protocol, **protocol_kwargs) for s in store_list}
    if backend == "local":
        # one task per store: the configurations of one compiled kernel share one run
        tasks = plan_tasks(store_list, configs, episodes, replicate_block, configs_per_task=None)
        results = run_local(store_list, configs, episodes, tasks, workers=workers, progress=progress)
    elif backend == "ray":
        from tts_gym.evaluation.ray_backend import run_ray
        tasks = plan_tasks(store_list, configs, episodes, replicate_block or 25, configs_per_task=1)
        results = run_ray(run_task, store_list, configs, episodes, tasks, address=address,
                          num_cpus=num_cpus, workers=workers, progress=progress)
    else:
        raise ValueError(f"unknown backend {backend!r}; choose 'local' or 'ray'")
    rows, outcomes = assemble(store_list, configs, episodes, tasks, results, level, ci)
    res = EvalResult(rows, outcomes, configs, store_list, episodes, level, ci, backend=backend)
    if traces:
        res.traces = record_result_traces(res, trace_replicates, max_trace_steps)
    res.wall_time = time.perf_counter() - t0
    return res


def record_result_traces(res: EvalResult, replicates=(0,), max_steps: int | None = None) -> dict:
    """Traces of every built-in configuration on ``replicates`` of each store, keyed
    ``(store name, family)``; ``Traces.labels`` names the configurations (rows ``g``)."""
    from tts_gym.evaluation.traces import record_traces
    out = {}
    for st in res.stores:
        ep = res.episodes[st.name].take(list(replicates))
        qs, orders = ep.flat()
        M = _positions(st, ep)
        by_kernel: dict[str, list[Config]] = {}
        from tts_gym.policies.common import external_policy
        for c in res.configs:
            if c.builtin and external_policy(c.family) is None:   # traces hook compiled.py only
                by_kernel.setdefault(c.kernel_and_row()[0], []).append(c)
        for kernel, cfgs in by_kernel.items():
            steps = max(int(res.outcome(c, st).steps[list(replicates)].max()) for c in cfgs)
            S_ = int(max_steps) if max_steps else steps + 64
            rows = np.asarray([c.kernel_and_row()[1] for c in cfgs], np.float64)
            tr, _ = record_traces(_packed(st), kernel, rows, qs, orders, max_branches=M,
                                  max_steps=S_, labels=[c.label for c in cfgs], shape=ep.shape)
            out[(st.name, kernel)] = tr
    return out


# ---------------------------------------------------------------------------------------------
# the paper's main table
# ---------------------------------------------------------------------------------------------

def main_table(rows: Sequence[Mapping], search: str = "aime24", benchmarks: Sequence[str] | None = None,
               tokens_unit: str = "k") -> str:
    """Markdown table like the AutoTTS main table: per model, one row per configuration; per
    benchmark accuracy (%) and average tokens per question (thousands); the search benchmark first,
    then the held-out ones and their average (mean of the held-out accuracies / tokens)."""
    rows = list(rows)
    from tts_gym.data.catalog import model_sort_key
    models = sorted(dict.fromkeys(r["model"] for r in rows), key=model_sort_key)
    benches = list(dict.fromkeys(r["benchmark"] for r in rows)) if benchmarks is None else list(benchmarks)
    benches = ([search] if search in benches else []) + sorted(b for b in benches if b != search)
    held = [b for b in benches if b != search]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    idx = {(r["model"], r["benchmark"], r["label"]): r for r in rows}
    div = 1000.0 if tokens_unit == "k" else 1.0
    head = ["Model", "Method"]
    for b in benches:
        name = b.upper() + (" (search)" if b == search else "")
        head += [f"{name} Acc", "Tok"]
    if held:
        head += ["Held-out avg Acc", "Tok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for m in models:
        for i, lab in enumerate(labels):
            if not any((m, b, lab) in idx for b in benches):
                continue
            cells = [m if i == 0 else "", lab]
            for b in benches:
                r = idx.get((m, b, lab))
                cells += ([f"{r['accuracy']:.2f}", f"{r['avg_tokens'] / div:,.1f}{tokens_unit}"]
                          if r else ["–", "–"])
            if held:
                hr = [idx.get((m, b, lab)) for b in held]
                if all(hr):
                    cells += [f"{np.mean([r['accuracy'] for r in hr]):.2f}",
                              f"{np.mean([r['avg_tokens'] for r in hr]) / div:,.1f}{tokens_unit}"]
                else:
                    cells += ["–", "–"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
