"""``tts-gym compare``, ``tts-gym plot`` and ``tts-gym table``: evaluation front ends.

    tts-gym compare [--data D] [--model M --benchmark B] [--out DIR]     built-in policies on one store
    tts-gym plot  [--results R.json | --data D ...] [-o PNG]               scaling curves
    tts-gym table [--results R.json | --data D ...] [-o FILE.md]           the paper's main table

``compare`` is the main command: with no data it runs on the embedded synthetic store. All commands
accept ``--backend local|ray [--address ADDR]`` (:func:`add_backend_args`, also used by
``tts-gym eval``) and the protocol options (``--protocol``, ``--seeds``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

EXIT_USAGE = 2
DEFAULT_FAMILIES = ("sc", "asc", "esc", "parallel_probe", "cmc")


# ---------------------------------------------------------------------------------------------
# shared options
# ---------------------------------------------------------------------------------------------

def add_backend_args(parser: argparse.ArgumentParser, group=None) -> None:
    """``--backend local|ray``, ``--address``, ``--num-cpus`` (reusable by other commands; pass an
    existing argument ``group`` to add them there)."""
    g = group if group is not None else parser.add_argument_group("execution")
    g.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="run in-process (default) or shard the sweep as Ray tasks")
    g.add_argument("--address", default=None,
                   help="Ray cluster to join (e.g. 'auto' or 'ray://host:10001'); default: a local Ray instance")
    g.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")


def backend_kwargs(args: argparse.Namespace) -> dict:
    """The :func:`tts_gym.evaluate` keyword arguments of :func:`add_backend_args`' options."""
    return {"backend": getattr(args, "backend", "local"), "address": getattr(args, "address", None),
            "num_cpus": getattr(args, "num_cpus", None)}


def eval_with_backend(store, policy: str, params: dict, seeds, args: argparse.Namespace):
    """``tts-gym eval``'s evaluation through :func:`tts_gym.evaluate` with ``args.backend`` (e.g.
    Ray): the reference protocol on ``seeds``, returned as the same
    :class:`tts_gym.evaluation.protocol.ProtocolResult` as the local compiled path (identical totals and
    per-episode arrays)."""
    from tts_gym.evaluation.evaluate import evaluate
    from tts_gym.evaluation.protocol import ProtocolResult
    if getattr(args, "impl", "compiled") != "compiled":
        raise ValueError(f"--backend {args.backend} runs the compiled kernels; use --impl compiled")
    res = evaluate((policy, dict(params)), store, seeds=seeds, progress=False, **backend_kwargs(args))
    o = res.outcome(res.configs[0])
    return ProtocolResult(store=store.name, policy=policy, params=dict(params),
                          seeds=tuple(int(s) for s in seeds), sumC=o.sum_correct, sumTT=o.sum_tokens,
                          answers=o.answer, costs=o.cost, correct=o.correct, steps=o.steps,
                          backend=str(args.backend))


def add_data_args(parser: argparse.ArgumentParser, multi: bool = False) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--data", default=None,
                   help="HDF5 file, AutoTTS JSON file or directory (<model>/<benchmark>.json), a "
                        "Model/benchmark name, or 'synthetic'; default: the embedded synthetic store "
                        "(or $TTS_GYM_DATA with --model/--benchmark)")
    if multi:
        g.add_argument("--model", nargs="*", default=None, help="model(s) to include (default: all)")
        g.add_argument("--benchmark", nargs="*", default=None, help="benchmark(s) to include (default: all)")
    else:
        g.add_argument("--model", default=None)
        g.add_argument("--benchmark", default=None)


def add_protocol_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("protocol")
    g.add_argument("--protocol", default="reference",
                   choices=("reference", "subsample", "bootstrap", "branch-bootstrap"),
                   help="episodes: reference = 100 seeded shuffles (AutoTTS parity, default)")
    g.add_argument("--seeds", type=int, default=None,
                   help="reference: seeds 0..N-1 (default 100); subsample/bootstrap: replicates")
    g.add_argument("--subsample-n", type=int, default=64, help="subsample: branches drawn per question")
    g.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")
    g.add_argument("--ci", choices=("t", "bootstrap"), default="t", help="interval method over replicates")


def protocol_kwargs(args: argparse.Namespace) -> dict:
    kw: dict = {"protocol": args.protocol, "level": args.level, "ci": args.ci}
    if args.protocol in ("reference", "branch-bootstrap"):
        if args.seeds is not None:
            kw["seeds"] = range(args.seeds)
    else:
        if args.seeds is not None:
            kw["replicates"] = args.seeds
        if args.protocol == "subsample":
            kw["n"] = args.subsample_n
    return kw


def _families(spec: str | None) -> list[str]:
    from tts_gym.evaluation.evaluate import BUILTIN_FAMILIES, canonical_family
    if not spec:
        return list(DEFAULT_FAMILIES)
    out = [canonical_family(s) for s in spec.split(",") if s.strip()]
    bad = [f for f in out if f not in BUILTIN_FAMILIES]
    if bad:
        raise ValueError(f"unknown policies {bad}; choose from {', '.join(BUILTIN_FAMILIES)} (pp = parallel_probe)")
    return out


def load_rows(path) -> list[dict]:
    """Tidy rows from a results JSON (``EvalResult.to_json``) or CSV file."""
    p = Path(path)
    text = p.read_text()
    if p.suffix.lower() == ".csv":
        import csv
        import io
        rows = list(csv.DictReader(io.StringIO(text)))
        for r in rows:
            for k in ("accuracy", "acc_low", "acc_high", "avg_tokens", "tok_low", "tok_high", "level"):
                if k in r and r[k] != "":
                    r[k] = float(r[k])
            for k in ("replicates", "episodes", "sum_correct", "sum_tokens"):
                if k in r and r[k] != "":
                    r[k] = int(r[k])
        return rows
    rows = json.loads(text)
    if isinstance(rows, dict) and "rows" in rows:
        rows = rows["rows"]
    return rows


def _compile_note(families) -> None:
    """Tell the user when the compiled kernels are about to be built (first run only)."""
    try:
        from tts_gym.policies import compiled as C
        from tts_gym.policies.compiled import policy_param_rows
        from tts_gym.evaluation import oracle as O
        missing = []
        for f in families:
            kernel = policy_param_rows(f, [{}])[0]
            disp = getattr(C, f"rollout_{kernel}")
            if not os.path.exists(disp._cache._cache_file._index_path):
                missing.append(kernel)
        if not os.path.exists(O._reveal_costs._cache._cache_file._index_path):
            missing.append("oracle")
        if missing:
            print(f"note: compiling numba kernels ({', '.join(sorted(set(missing)))}) -- first run only, "
                  f"cached afterwards; this can take a minute or two", file=sys.stderr)
    except Exception:  # noqa: BLE001 - a hint only
        pass


def _errors(name: str):
    def deco(func):
        def wrapper(args):
            try:
                return func(args)
            except (ValueError, FileNotFoundError, KeyError) as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                print(f"tts-gym {name}: error: {msg}", file=sys.stderr)
                return EXIT_USAGE
        wrapper.__name__ = func.__name__
        wrapper.__doc__ = func.__doc__
        return wrapper
    return deco


def _progress_flag(args) -> bool | None:
    return False if getattr(args, "no_progress", False) else None


def _sweeps(families):
    from tts_gym.evaluation.evaluate import Sweep
    return [Sweep(f) for f in families]


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------

@_errors("compare")
def cmd_compare(args: argparse.Namespace) -> int:
    """Evaluate the built-in policies' sweeps on one store; table, frontier scores, scaling PNG."""
    from rich.console import Console

    from tts_gym.evaluation.evaluate import FAMILY_NAMES, evaluate
    from tts_gym.evaluation.frontier import DEFAULT_TOKEN_RANGE, frontier_score
    from tts_gym.evaluation.oracle import schedule_oracle
    from tts_gym.reports.plots import scaling_plot
    from tts_gym.data.resolve import resolve_store

    console = Console(stderr=False)
    t0 = time.perf_counter()
    store = resolve_store(args.data, args.model, args.benchmark)
    families = _families(args.policies)
    _compile_note(families)
    res = evaluate(_sweeps(families), store, progress=_progress_flag(args), **protocol_kwargs(args),
                   **backend_kwargs(args))
    ep = res.episodes[store.name]
    console.print(res.rich_table(title=f"{store.name}: {ep.describe()}, {ep.num_episodes} episodes "
                                        f"per configuration"))
    oracle = res.oracle()
    so = schedule_oracle(store, ep)
    fronts = {f: res.frontier(f) for f in families}
    rng = DEFAULT_TOKEN_RANGE
    lines = [f"frontier score (mean accuracy of the Pareto front, log-tokens uniform on "
             f"[{rng[0]:,.0f}, {rng[1]:,.0f}] per question):"]
    for f, fr in fronts.items():
        lines.append(f"  {FAMILY_NAMES.get(f, f):<15} {frontier_score(fr, rng):6.2f}")
    lines.append(f"  {'oracle':<15} {frontier_score(oracle.frontier(), rng):6.2f}  (adaptive: "
                 f"{oracle.accuracy[-1]:.2f}% at {oracle.tokens[-1]:,.0f} tokens/q)")
    lines.append(f"  {'oracle pass@n':<15} {frontier_score(so.sc_frontier(), rng):6.2f}")
    console.print("\n".join(lines))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "scaling.png"
    scaling_plot(res, path=png, suptitle=f"accuracy vs tokens -- {store.name}", ncols=1,
                 panel_size=(7.5, 5.0))
    res.to_json(out / "results.json")
    (out / "table.md").write_text(res.to_markdown() + "\n")
    console.print(f"wrote {png}, {out / 'results.json'}, {out / 'table.md'} "
                  f"({time.perf_counter() - t0:.1f}s)")
    return 0


# ---------------------------------------------------------------------------------------------
# plot and table
# ---------------------------------------------------------------------------------------------

def _rows_from_args(args, configs) -> tuple[list[dict], object]:
    """Rows from --results, else evaluate ``configs`` on the stores of the data options."""
    if args.results:
        return load_rows(args.results), None
    from tts_gym.data.resolve import resolve_stores
    from tts_gym.evaluation.evaluate import evaluate
    stores = resolve_stores(args.data, args.model or None, args.benchmark or None)
    _compile_note({c[0] if isinstance(c, tuple) else getattr(c, "policy", "sc") for c in configs})
    res = evaluate(configs, stores, progress=_progress_flag(args), **protocol_kwargs(args),
                   **backend_kwargs(args))
    if getattr(args, "save", None):
        res.to_json(args.save)
    return res.rows, res


@_errors("plot")
def cmd_plot(args: argparse.Namespace) -> int:
    """Scaling curves (accuracy vs tokens per question, log x), one panel per store, PNG."""
    from tts_gym.reports.plots import scaling_plot
    rows, res = _rows_from_args(args, _sweeps(_families(args.policies)))
    if not rows:
        raise ValueError("no rows to plot")
    target = res if (res is not None and not args.no_oracle) else rows
    kw = {"oracles": False} if (res is not None and args.no_oracle) else {}
    scaling_plot(target, path=args.output, ncols=args.ncols, errorbars=not args.no_errorbars, **kw)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


@_errors("table")
def cmd_table(args: argparse.Namespace) -> int:
    """The AutoTTS main table (methods x benchmarks, search vs held-out) as markdown."""
    from tts_gym.evaluation.evaluate import MAIN_TABLE_CONFIGS, main_table
    rows, _ = _rows_from_args(args, list(MAIN_TABLE_CONFIGS))
    md = main_table(rows, search=args.search)
    if args.output:
        Path(args.output).write_text(md + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    print(md)
    return 0


# ---------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------

def register(sub) -> None:
    from tts_gym.data.catalog import SEARCH_BENCHMARKS
    p = sub.add_parser("compare", help="evaluate the built-in policies on a store: table + scaling plot",
                       description=cmd_compare.__doc__)
    add_data_args(p)
    p.add_argument("--policies", default=None,
                   help=f"comma-separated families (default: {','.join(DEFAULT_FAMILIES)}); pp = parallel_probe")
    p.add_argument("--out", default="runs/compare", help="output directory (default: runs/compare)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_protocol_args(p)
    add_backend_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("plot", help="scaling curves (accuracy vs tokens, log axis) as a PNG",
                       description=cmd_plot.__doc__)
    p.add_argument("--results", default=None, help="results JSON/CSV written by compare/eval (skip evaluation)")
    add_data_args(p, multi=True)
    p.add_argument("--policies", default=None, help="comma-separated families to sweep (default: all)")
    p.add_argument("-o", "--output", default="scaling.png", help="PNG path (default: scaling.png)")
    p.add_argument("--ncols", type=int, default=3)
    p.add_argument("--no-errorbars", action="store_true")
    p.add_argument("--no-oracle", action="store_true", help="omit the oracle curves")
    p.add_argument("--save", default=None, help="also write the evaluated rows as JSON")
    p.add_argument("--no-progress", action="store_true")
    add_protocol_args(p)
    add_backend_args(p)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("table", help="the paper's main table (methods x benchmarks) as markdown",
                       description=cmd_table.__doc__)
    p.add_argument("--results", default=None, help="results JSON/CSV (skip evaluation)")
    add_data_args(p, multi=True)
    p.add_argument("--search", default=SEARCH_BENCHMARKS[0],
                   help=f"the search benchmark (default: {SEARCH_BENCHMARKS[0]}); others are held out")
    p.add_argument("-o", "--output", default=None, help="also write the markdown to this file")
    p.add_argument("--save", default=None, help="also write the evaluated rows as JSON")
    p.add_argument("--no-progress", action="store_true")
    add_protocol_args(p)
    add_backend_args(p)
    p.set_defaults(func=cmd_table)
