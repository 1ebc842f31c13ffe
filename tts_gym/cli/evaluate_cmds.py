"""``tts-gym compare``, ``tts-gym plot`` and ``tts-gym table``: evaluation front ends.

    tts-gym compare [--data D] [--model M --benchmark B] [--out DIR]     built-in policies on one store
    tts-gym plot  [--results R.json | --data D ...] [-o PNG]               scaling curves
    tts-gym table [--results R.json | --data D ...] [-o FILE.md]           the paper's main table

``compare`` is the main command: with no data it runs on the embedded synthetic store. All commands
accept ``--backend local|ray [--address ADDR]`` (:func:`add_backend_args`, also used by
``tts-gym eval``) and the protocol options (``--protocol``, ``--seeds``).

Outputs are checked before any evaluation starts and written atomically (:mod:`tts_gym.files`).
``plot`` and ``table`` evaluate store by store and keep each finished store's rows in a parts
directory (``--parts``, default ``<output>.parts`` next to the output); a rerun after an
interruption reuses the stores already done (same stores, protocol and configurations) and the
directory is removed once the output is written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from tts_gym.cli import output
from tts_gym.cli.args import int_in, level_type, positive_int, seeds_type

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
    g.add_argument("--num-cpus", type=int_in(1, 4096), default=None, metavar="N",
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
    g.add_argument("--seeds", type=seeds_type, default=None, metavar="N",
                   help="reference: seeds 0..N-1 (default 100); other protocols: number of replicates")
    g.add_argument("--subsample-n", type=positive_int, default=None, metavar="N",
                   help="subsample: trajectories drawn per question (default 64)")
    g.add_argument("--level", type=level_type, default=0.95,
                   help="confidence level of the intervals, in (0, 1) (default 0.95)")
    g.add_argument("--ci", choices=("t", "bootstrap"), default="t",
                   help="confidence intervals over replicates: Student t (default) or bootstrap")


def check_backend_args(args: argparse.Namespace) -> None:
    """Refuse Ray options given without ``--backend ray`` (they would be ignored)."""
    if getattr(args, "backend", "local") == "local":
        for flag, value in (("--address", getattr(args, "address", None)),
                            ("--num-cpus", getattr(args, "num_cpus", None))):
            if value is not None:
                raise ValueError(f"{flag} applies to --backend ray only")
    elif getattr(args, "address", None) is not None and getattr(args, "num_cpus", None) is not None:
        raise ValueError("--num-cpus sizes a new local Ray instance; it cannot be used with --address")


def protocol_kwargs(args: argparse.Namespace) -> dict:
    if getattr(args, "subsample_n", None) is not None and args.protocol != "subsample":
        raise ValueError(f"--subsample-n applies to --protocol subsample only, not {args.protocol}")
    check_backend_args(args)
    kw: dict = {"protocol": args.protocol, "level": args.level, "ci": args.ci}
    if args.protocol in ("reference", "branch-bootstrap"):
        if args.seeds is not None:
            kw["seeds"] = range(args.seeds)
    else:
        if args.seeds is not None:
            kw["replicates"] = args.seeds
        if args.protocol == "subsample":
            kw["n"] = 64 if args.subsample_n is None else args.subsample_n
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


_ROW_FIELDS = {"store": str, "model": str, "benchmark": str, "family": str, "label": str,
               "accuracy": float, "avg_tokens": float}


def load_rows(path) -> list[dict]:
    """Tidy rows from a results JSON (``EvalResult.to_json``) or CSV file; a malformed file is a
    ``ValueError`` naming the file (and the row and field at fault)."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{p}: is a directory, not a results file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p}: not a results file (not UTF-8 text: {exc.reason})") from None
    if p.suffix.lower() == ".csv":
        import csv
        import io
        try:
            rows = list(csv.DictReader(io.StringIO(text)))
        except csv.Error as exc:
            raise ValueError(f"{p}: malformed CSV ({exc})") from None
        for i, r in enumerate(rows):
            for k in ("accuracy", "acc_low", "acc_high", "avg_tokens", "tok_low", "tok_high", "level"):
                if r.get(k) not in (None, ""):
                    try:
                        r[k] = float(r[k])
                    except ValueError:
                        raise ValueError(f"{p}: row {i}: field {k!r} is not a number: {r[k]!r}") from None
            for k in ("replicates", "episodes", "sum_correct", "sum_tokens"):
                if r.get(k) not in (None, ""):
                    try:
                        r[k] = int(r[k])
                    except ValueError:
                        raise ValueError(f"{p}: row {i}: field {k!r} is not an integer: {r[k]!r}") from None
    else:
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{p}: not a results JSON file ({exc})") from None
        if isinstance(rows, dict) and "rows" in rows:
            rows = rows["rows"]
    if not isinstance(rows, list):
        raise ValueError(f"{p}: a results file holds a list of rows, got {type(rows).__name__}")
    import math
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise ValueError(f"{p}: row {i} must be an object, got {type(r).__name__}")
        for k, typ in _ROW_FIELDS.items():
            v = r.get(k)
            ok = (isinstance(v, str) if typ is str else
                  isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
            if not ok:
                raise ValueError(f"{p}: row {i}: field {k!r} " + ("is missing" if k not in r else
                                 f"must be {'a string' if typ is str else 'a finite number'}, got {v!r}"))
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
    """One line and a non-zero status for every expected failure (see :mod:`tts_gym.cli.errors`)."""
    def deco(func):
        def wrapper(args):
            try:
                return func(args)
            except Exception as exc:  # noqa: BLE001 - classified below; bugs are re-raised
                from tts_gym.cli.errors import report
                code = report(f"tts-gym {name}", exc)
                if code is None:
                    raise
                return code
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

    from tts_gym.files import atomic_write, check_output_dir, check_output_path

    console = output.console()
    t0 = time.perf_counter()
    out = check_output_dir(args.out, what="--out")      # before any evaluation
    png, js, md = out / "scaling.png", out / "results.json", out / "table.md"
    for p in (png, js, md):
        check_output_path(p)
    families = _families(args.policies)
    kwargs = protocol_kwargs(args)
    store = resolve_store(args.data, args.model, args.benchmark)
    _compile_note(families)
    res = evaluate(_sweeps(families), store, progress=output.progress_flag(args), **kwargs,
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
    scaling_plot(res, path=png)
    res.to_json(js)
    atomic_write(md, res.to_markdown() + "\n")
    console.print(f"wrote {png}, {js}, {md} ({time.perf_counter() - t0:.1f}s)")
    return 0


# ---------------------------------------------------------------------------------------------
# plot and table
# ---------------------------------------------------------------------------------------------

_PARTS_VERSION = 1


def _store_digest(store) -> str:
    """A content digest of a store (tensors and strings): finished parts are reused only for the
    same data."""
    import hashlib
    h = hashlib.blake2b(digest_size=16)
    h.update(store.name.encode())
    for name in ("probe_ids", "num_probes", "branch_tokens", "final_ids", "num_branches",
                 "probe_interval", "gold_ids"):
        a = getattr(store, name)
        h.update(f"{name}{a.dtype}{a.shape}".encode())
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    h.update(store.answer_tables._blob)
    h.update(np.ascontiguousarray(store.answer_tables._ends).tobytes())
    h.update("\x00".join(store.gold_answers).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _parts_dir(args) -> Path | None:
    if getattr(args, "parts", None):
        return Path(args.parts).expanduser()
    target = getattr(args, "save", None) or getattr(args, "output", None)
    return None if not target else Path(str(target) + ".parts")


def _part_file(parts: Path, name: str) -> Path:
    import hashlib
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in name)
    return parts / f"{safe}.{hashlib.sha1(name.encode()).hexdigest()[:8]}.json"


def _oracle_json(res, name: str) -> dict:
    from tts_gym.evaluation.oracle import schedule_oracle
    o = res.oracle(name)
    so = schedule_oracle(next(x for x in res.stores if x.name == name), res.episodes[name])
    return {"oracle": {"label": o.label, "tokens": o.tokens.tolist(), "accuracy": o.accuracy.tolist(),
                       "sum_tokens": [int(v) for v in o.sum_tokens], "correct": [int(v) for v in o.correct],
                       "num_episodes": int(o.num_episodes)},
            "pass_at_n": [np.asarray(so.sc_tokens, float).tolist(), np.asarray(so.sc_accuracy, float).tolist()]}


def _oracle_from_json(d: dict):
    from tts_gym.evaluation.oracle import OracleCurve
    o = d["oracle"]
    return (OracleCurve(o["label"], np.asarray(o["tokens"], float), np.asarray(o["accuracy"], float),
                        np.asarray(o["sum_tokens"], np.int64), np.asarray(o["correct"], np.int64),
                        int(o["num_episodes"])),
            tuple(np.asarray(v, float) for v in d["pass_at_n"]))


def _rows_from_args(args, configs, *, oracles: bool = False):
    """``(rows, oracle curves, pass@n curves)`` from --results, else by evaluating ``configs`` on
    the stores of the data options one store at a time, each finished store kept in the parts
    directory (reused by a rerun: see the module docstring)."""
    if args.results:
        given = [f for f, v in (("--data", args.data), ("--model", args.model), ("--benchmark", args.benchmark),
                                ("--save", getattr(args, "save", None)), ("--parts", getattr(args, "parts", None)),
                                ("--policies", getattr(args, "policies", None)),
                                ("--seeds", args.seeds), ("--subsample-n", args.subsample_n))
                 if v is not None]
        if args.protocol != "reference":
            given.append("--protocol")
        if getattr(args, "backend", "local") != "local":
            given.append("--backend")
        if given:
            raise ValueError(f"--results reads finished rows; {', '.join(given)} would be ignored")
        return load_rows(args.results), None, None
    from tts_gym.evaluation.evaluate import evaluate
    from tts_gym.files import atomic_write, check_output_dir
    kwargs = protocol_kwargs(args)
    from tts_gym.data.resolve import store_sources
    sources = store_sources(args.data, args.model or None, args.benchmark or None)
    parts = _parts_dir(args)
    if parts is not None:
        check_output_dir(parts, what="--parts")
    cfg_key = [[c.family, c.params, c.label] for c in _configs_of(configs)]
    proto_key = {k: (list(v) if isinstance(v, range) else v) for k, v in kwargs.items()}
    _compile_note({c[0] for c in cfg_key})
    rows, curves, passes, reused = [], {}, {}, 0
    for name, load in sources:
        store = load()
        key = {"version": _PARTS_VERSION, "store": name, "digest": _store_digest(store),
               "protocol": proto_key, "configs": cfg_key, "oracles": bool(oracles)}
        pf = _part_file(parts, name) if parts is not None else None
        part = None
        if pf is not None and pf.is_file() and not getattr(args, "restart", False):
            try:
                part = json.loads(pf.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                part = None
            if not isinstance(part, dict) or part.get("key") != json.loads(json.dumps(key, default=str)):
                part = None
        if part is None:
            res = evaluate(configs, store, progress=output.progress_flag(args), **kwargs, **backend_kwargs(args))
            part = {"key": key, "rows": res.rows}
            if oracles:
                part.update(_oracle_json(res, name))
            if pf is not None:
                atomic_write(pf, json.dumps(part, default=str))
        else:
            reused += 1
        rows.extend(part["rows"])
        if oracles:
            curves[name], passes[name] = _oracle_from_json(part)
        del store
    if reused:
        print(f"reused {reused} finished store(s) from {parts}", file=sys.stderr)
    return rows, (curves if oracles else None), (passes if oracles else None)


def _configs_of(configs):
    from tts_gym.evaluation.evaluate import _as_configs
    return _as_configs(configs)


def _finish_parts(args) -> None:
    """Remove the parts directory once the output is written."""
    import shutil
    parts = _parts_dir(args)
    if parts is not None and parts.is_dir() and not getattr(args, "keep_parts", False):
        shutil.rmtree(parts, ignore_errors=True)


def _check_outputs(args) -> None:
    from tts_gym.files import check_output_path
    for flag in ("output", "save"):
        target = getattr(args, flag, None)
        if target:
            check_output_path(target, what=f"--{flag}")


@_errors("plot")
def cmd_plot(args: argparse.Namespace) -> int:
    """Scaling curves (accuracy vs tokens per question, log x), one panel per store, PNG."""
    from tts_gym.reports.plots import scaling_plot
    _check_outputs(args)
    rows, oracles, passes = _rows_from_args(args, _sweeps(_families(args.policies)),
                                            oracles=not args.no_oracle)
    if not rows:
        raise ValueError("no rows to plot")
    if args.results or args.no_oracle:
        scaling_plot(rows, path=args.output, ncols=args.ncols, errorbars=not args.no_errorbars)
    else:
        scaling_plot(rows, path=args.output, ncols=args.ncols, errorbars=not args.no_errorbars,
                     oracles=oracles, pass_at_n=passes)
    if getattr(args, "save", None):
        from tts_gym.files import atomic_write
        atomic_write(args.save, json.dumps(rows, indent=1, default=str))
    _finish_parts(args)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


@_errors("table")
def cmd_table(args: argparse.Namespace) -> int:
    """The AutoTTS main table (methods x benchmarks, search vs held-out) as markdown."""
    from tts_gym.evaluation.evaluate import MAIN_TABLE_CONFIGS, main_table
    from tts_gym.files import atomic_write
    _check_outputs(args)
    rows, _, _ = _rows_from_args(args, list(MAIN_TABLE_CONFIGS))
    if not rows:
        raise ValueError("no rows to tabulate")
    md = main_table(rows, search=args.search)
    if getattr(args, "save", None):
        atomic_write(args.save, json.dumps(rows, indent=1, default=str))
    if args.output:
        atomic_write(args.output, md + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    _finish_parts(args)
    print(md)
    return 0


# ---------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------

def _add_results_args(p, results_help: str) -> None:
    """``--results`` (draw or tabulate a saved file instead of evaluating) and the stores otherwise."""
    p.add_argument("--results", default=None, metavar="FILE", help=results_help)
    add_data_args(p, multi=True)


def _add_run_args(p, func, saves: bool = True) -> None:
    """The options of how a command evaluates (``--save`` and ``--parts`` with ``saves``), and the
    command's function."""
    if saves:
        p.add_argument("--save", default=None, metavar="JSON", help="also write the evaluated rows as JSON")
        p.add_argument("--parts", default=None, metavar="DIR",
                       help="where finished stores are kept while the command runs, reused by a rerun "
                            "(default: <output>.parts, or <save>.parts)")
        p.add_argument("--restart", action="store_true", help="ignore finished stores in --parts")
        p.add_argument("--keep-parts", action="store_true", help="keep --parts after success")
    output.add_progress_arg(p)
    add_protocol_args(p)
    add_backend_args(p)
    p.set_defaults(func=func)


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
    _add_run_args(p, cmd_compare, saves=False)

    p = sub.add_parser("plot", help="scaling curves (accuracy vs tokens, log axis) as a PNG",
                       description=PLOT_DESCRIPTION, formatter_class=raw)
    _add_results_args(p, "a results JSON/CSV written by compare, plot --save or table --save: draw it "
                         "instead of evaluating")
    p.add_argument("--policies", default=None, metavar="LIST",
                   help="comma-separated policies to sweep (default: all); pp = parallel_probe")
    p.add_argument("-o", "--output", default="scaling.png", metavar="PNG",
                   help="PNG path (default: scaling.png)")
    p.add_argument("--ncols", type=int_in(1, 64), default=3, metavar="N",
                   help="panels per row when there are several stores (default 3)")
    p.add_argument("--no-errorbars", action="store_true",
                   help="no 95%% confidence intervals on the points")
    p.add_argument("--no-oracle", action="store_true", help="leave out the oracle curves")
    _add_run_args(p, cmd_plot)

    p = sub.add_parser("table", help="the AutoTTS main table (methods x benchmarks) as markdown",
                       description=TABLE_DESCRIPTION, formatter_class=raw)
    _add_results_args(p, "a results JSON/CSV (from --save): tabulate it instead of evaluating")
    p.add_argument("--search", default=SEARCH_BENCHMARKS[0], metavar="BENCHMARK",
                   help="the benchmark controllers were searched on (default: %s)" % SEARCH_BENCHMARKS[0] + "; the others "
                        "are held out")
    p.add_argument("-o", "--output", default=None, metavar="FILE.md",
                   help="also write the markdown to this file")
    _add_run_args(p, cmd_table)
