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

from tts_gym.cli import output

EXIT_USAGE = 2
DEFAULT_FAMILIES = ("sc", "asc", "esc", "parallel_probe", "cmc")

COMPARE_DESCRIPTION = """\
Evaluate the built-in policies on one store, each over its range of settings (SC@1..64,
ASC@1..64, ESC@16..64, Parallel-Probe@1..64, CMC beta 0..1), and print the accuracy / tokens
table with confidence intervals and each policy's frontier score next to the oracle bound.
Writes OUT/scaling.png (accuracy vs tokens per question), OUT/results.json and OUT/table.md.
Without data it runs on the built-in synthetic store.
"""

COMPARE_EPILOG = """\
examples:
  tts-gym compare --out out
  tts-gym compare --data autotts.h5 --model Qwen3-1.7B --benchmark aime24 --out out
  tts-gym compare --policies sc,cmc --seeds 20 --out out
"""

PLOT_DESCRIPTION = """\
Scaling curves: accuracy vs average tokens per question (log axis), one curve per policy and its
settings, one panel per store, with the oracle bounds. Evaluates the stores of the data options,
or draws the rows of a results file written by compare / plot --save / table --save.
"""

TABLE_DESCRIPTION = """\
The AutoTTS main table: SC@64, ASC@64, ESC@64, Parallel-Probe@64 and CMC beta 0.5 / 1 on every
store, the search benchmark next to the held-out ones and their average, as markdown.
"""


# ---------------------------------------------------------------------------------------------
# shared options
# ---------------------------------------------------------------------------------------------

def add_backend_args(parser: argparse.ArgumentParser, group=None) -> None:
    """``--backend local|ray``, ``--address``, ``--num-cpus`` (reusable by other commands; pass an
    existing argument ``group`` to add them there)."""
    g = group if group is not None else parser.add_argument_group("execution")
    g.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: in this process (default); ray: split the work into Ray tasks "
                        "(same results; needs pip install 'tts_gym[distributed]')")
    g.add_argument("--address", default=None,
                   help="with --backend ray: the Ray cluster to join (e.g. 'auto' or "
                        "'ray://host:10001'); default: start a local Ray instance")
    g.add_argument("--num-cpus", type=int, default=None, metavar="N",
                   help="with --backend ray: CPUs of the local Ray instance (default: all)")


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
    g.add_argument("--data", default=None, metavar="PATH",
                   help="an HDF5 store file, an AutoTTS JSON file, a directory of them "
                        "(<model>/<benchmark>.json), a Model/benchmark name, or 'synthetic'; default: the built-in synthetic "
                        "store, or $TTS_GYM_DATA / the fetched stores with --model/--benchmark")
    if multi:
        g.add_argument("--model", nargs="*", default=None, metavar="NAME",
                       help="model(s) to include, e.g. Qwen3-1.7B Qwen3-8B (default: all)")
        g.add_argument("--benchmark", nargs="*", default=None, metavar="NAME",
                       help="benchmark(s) to include, e.g. aime24 aime25 (default: all)")
    else:
        g.add_argument("--model", default=None, metavar="NAME",
                       help="the model whose store to use, e.g. Qwen3-1.7B")
        g.add_argument("--benchmark", default=None, metavar="NAME",
                       help="the benchmark whose store to use, e.g. aime24")


def add_protocol_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("protocol")
    g.add_argument("--protocol", default="reference",
                   choices=("reference", "subsample", "bootstrap", "branch-bootstrap"),
                   help="which episodes: reference = 100 seeded shuffles of every question, as AutoTTS "
                        "(default); subsample = N of the trajectories drawn per question and replicate; "
                        "bootstrap = questions resampled; branch-bootstrap = trajectories resampled")
    g.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="reference: seeds 0..N-1 (default 100); other protocols: number of replicates")
    g.add_argument("--subsample-n", type=int, default=64, metavar="N",
                   help="subsample: trajectories drawn per question (default 64)")
    g.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    g.add_argument("--ci", choices=("t", "bootstrap"), default="t",
                   help="confidence intervals over replicates: Student t (default) or bootstrap")


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


def _sweeps(families):
    from tts_gym.evaluation.evaluate import Sweep
    return [Sweep(f) for f in families]


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------

@_errors("compare")
def cmd_compare(args: argparse.Namespace) -> int:
    """Evaluate the built-in policies' sweeps on one store; table, frontier scores, scaling PNG."""
    from tts_gym.evaluation.evaluate import FAMILY_NAMES, evaluate
    from tts_gym.evaluation.frontier import DEFAULT_TOKEN_RANGE, frontier_score
    from tts_gym.evaluation.oracle import schedule_oracle
    from tts_gym.reports.plots import scaling_plot
    from tts_gym.data.resolve import resolve_store

    console = output.console()
    t0 = time.perf_counter()
    store = resolve_store(args.data, args.model, args.benchmark)
    families = _families(args.policies)
    _compile_note(families)
    res = evaluate(_sweeps(families), store, progress=output.progress_flag(args), **protocol_kwargs(args),
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
    scaling_plot(res, path=png)
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
    res = evaluate(configs, stores, progress=output.progress_flag(args), **protocol_kwargs(args),
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
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("compare", help="evaluate the built-in policies on a store: table + scaling plot "
                                       "(the main command)",
                       description=COMPARE_DESCRIPTION, epilog=COMPARE_EPILOG, formatter_class=raw)
    add_data_args(p)
    p.add_argument("--policies", default=None, metavar="LIST",
                   help=f"comma-separated policies (default: {','.join(DEFAULT_FAMILIES)}); "
                        f"pp = parallel_probe")
    p.add_argument("--out", default="runs/compare", metavar="DIR",
                   help="output directory (default: runs/compare)")
    output.add_progress_arg(p)
    add_protocol_args(p)
    add_backend_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("plot", help="scaling curves (accuracy vs tokens, log axis) as a PNG",
                       description=PLOT_DESCRIPTION, formatter_class=raw)
    p.add_argument("--results", default=None, metavar="FILE",
                   help="a results JSON/CSV written by compare, plot --save or table --save: draw it "
                        "instead of evaluating")
    add_data_args(p, multi=True)
    p.add_argument("--policies", default=None, metavar="LIST",
                   help="comma-separated policies to sweep (default: all); pp = parallel_probe")
    p.add_argument("-o", "--output", default="scaling.png", metavar="PNG",
                   help="PNG path (default: scaling.png)")
    p.add_argument("--ncols", type=int, default=3, metavar="N",
                   help="panels per row when there are several stores (default 3)")
    p.add_argument("--no-errorbars", action="store_true",
                   help="no 95%% confidence intervals on the points")
    p.add_argument("--no-oracle", action="store_true", help="leave out the oracle curves")
    p.add_argument("--save", default=None, metavar="JSON", help="also write the evaluated rows as JSON")
    output.add_progress_arg(p)
    add_protocol_args(p)
    add_backend_args(p)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("table", help="the AutoTTS main table (methods x benchmarks) as markdown",
                       description=TABLE_DESCRIPTION, formatter_class=raw)
    p.add_argument("--results", default=None, metavar="FILE",
                   help="a results JSON/CSV (from --save): tabulate it instead of evaluating")
    add_data_args(p, multi=True)
    p.add_argument("--search", default=SEARCH_BENCHMARKS[0], metavar="BENCHMARK",
                   help="the benchmark controllers were searched on (default: %s)" % SEARCH_BENCHMARKS[0] + "; the others "
                        "are held out")
    p.add_argument("-o", "--output", default=None, metavar="FILE.md",
                   help="also write the markdown to this file")
    p.add_argument("--save", default=None, metavar="JSON", help="also write the evaluated rows as JSON")
    output.add_progress_arg(p)
    add_protocol_args(p)
    add_backend_args(p)
    p.set_defaults(func=cmd_table)
