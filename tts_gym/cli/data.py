"""``tts-gym data``: import, fetch, synthesise and describe replay stores.

    tts-gym data import SRC [SRC ...] -o OUT.h5 [--append]   AutoTTS JSON (file or <model>/<benchmark>.json dir)
    tts-gym data fetch [-o OUT.h5]                           download the public AutoTTS stores
    tts-gym data synth -o OUT.h5 --questions N --branches N --seed S
    tts-gym data info FILE [--json]                          summary table per store

Input errors (malformed stores, missing files, no network) print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time

from tts_gym.cli import output
from tts_gym.cli.output import show_progress

EXIT_USAGE = 2

DESCRIPTION = """\
Replay stores: the pre-sampled trajectories every evaluation replays.

  tts-gym data fetch                        download the 12 public AutoTTS stores (4 Qwen3 models x
                                            AIME24, AIME25, HMMT25) into the cache, as one HDF5 file
  tts-gym data import SRC ... -o OUT.h5     convert AutoTTS JSON (a <benchmark>.json file, or a
                                            directory laid out <model>/<benchmark>.json) to HDF5
  tts-gym data synth -o OUT.h5              write a seeded synthetic store
  tts-gym data info FILE                    one summary row per store

Bad input (a malformed store, a missing file, no network) prints one line and exits with status 2.
"""


def _errors_exit_2(func):
    """Turn expected input errors into one line on stderr and exit status 2 (no traceback)."""
    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        from tts_gym.data.autotts import StoreFormatError
        from tts_gym.data.catalog import StoreNotFoundError
        try:
            return func(args)
        except (StoreFormatError, StoreNotFoundError, OSError, ValueError) as exc:
            from tts_gym.cli.errors import report
            code = report(f"tts-gym data {args.data_command}", exc)
            if code is None:
                raise
            return code
    return wrapper


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)


def _check_output(args: argparse.Namespace) -> None:
    """The output location, checked before any long work."""
    from tts_gym.files import check_output_path
    check_output_path(args.output, what="output", create_parent=False)


@_errors_exit_2
def cmd_import(args: argparse.Namespace) -> int:
    from tts_gym.data.autotts import import_autotts_to_hdf5
    _check_output(args)
    t0 = time.perf_counter()
    keys = import_autotts_to_hdf5(args.src, args.output, model=args.model, benchmark=args.benchmark,
                                  append=args.append, compression=args.compression)
    _say(args, f"imported {len(keys)} store(s) into {args.output} in {time.perf_counter() - t0:.2f}s: "
               + ", ".join(f"{m}/{b}" for m, b in keys))
    return 0


@_errors_exit_2
def cmd_fetch(args: argparse.Namespace) -> int:
    from tts_gym.data.fetch import fetch_autotts
    from tts_gym.files import check_output_dir, check_output_path
    if args.output:
        check_output_path(args.output, what="output")     # before any download
    if args.cache_dir:
        check_output_dir(args.cache_dir, what="--cache-dir")
    out = fetch_autotts(args.output, cache_dir=args.cache_dir, base_url=args.base_url, timeout=args.timeout,
                        progress=show_progress(args), verify_checksums=not args.no_verify,
                        force=args.force)
    _say(args, f"wrote {out}")
    return 0


@_errors_exit_2
def cmd_synth(args: argparse.Namespace) -> int:
    from tts_gym.data.hdf5 import write_store_blocks
    from tts_gym.data.synthetic import synthesize_blocks
    _check_output(args)
    t0 = time.perf_counter()
    blocks = synthesize_blocks(args.questions, args.branches, args.seed, model=args.model,
                               benchmark=args.benchmark, probe_interval=args.probe_interval)
    first = next(blocks)   # large stores are generated and written block by block

    def all_blocks():
        yield first
        yield from blocks

    write_store_blocks(args.output, [(first.model, first.benchmark, first.attrs, all_blocks())],
                       append=args.append, compression=args.compression)
    _say(args, f"wrote {first.name} ({args.questions} questions x {args.branches} branches) to {args.output} "
               f"in {time.perf_counter() - t0:.2f}s")
    return 0


@_errors_exit_2
def cmd_info(args: argparse.Namespace) -> int:
    from tts_gym.data.resolve import resolve_stores
    from tts_gym.data.summary import summarize_store
    stores = {(s.model, s.benchmark): s for s in resolve_stores(args.file, args.model, args.benchmark)}
    from tts_gym.data.answers import answer_merging_summary, format_answer_merging
    rows = [summarize_store(s) for s in stores.values()]
    # answer merging (math equivalence, recorded by `tts-gym collect --answer-merging`): its effect
    # on majority accuracy; --merging-effect estimates it for an unmerged store (needs math-verify)
    merging = [answer_merging_summary(s, compute=args.merging_effect) for s in stores.values()]
    for r, m in zip(rows, merging):
        r["answer_merging"] = m
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    from rich.table import Table
    console = output.console()
    table = Table(title=f"{args.file}: {len(rows)} store(s)")
    for col, justify in (("store", "left"), ("questions", "right"), ("branches", "right"),
                         ("K min/mean/max", "right"), ("tokens min/mean/max", "right"),
                         ("majority@N", "right"), ("pass@N", "right"), ("distinct finals", "right"),
                         ("distinct answers", "right")):
        table.add_column(col, justify=justify)
    for r in rows:
        per_q = r["branches"] / r["questions"]
        branches = f"{r['max_branches']}" if per_q == r["max_branches"] else f"{per_q:.1f} (max {r['max_branches']})"
        table.add_row(f"{r['model']}/{r['benchmark']}", f"{r['questions']:,}", branches,
                      f"{r['k_min']} / {r['k_mean']:.1f} / {r['k_max']}",
                      f"{r['tokens_min']:,} / {r['tokens_mean']:,.0f} / {r['tokens_max']:,}",
                      f"{100 * r['majority_acc']:.1f} %", f"{100 * r['pass_acc']:.1f} %",
                      f"{r['distinct_finals']:.1f}", f"{r['distinct_answers']:.1f}")
    console.print(table)
    for (key, _), m in zip(stores.items(), merging):
        if m["answer_merging"] != "none" or "would_merge" in m:
            console.print(f"{key[0]}/{key[1]}: " + "; ".join(format_answer_merging(m)))
    return 0


def register(subparsers) -> None:
    from tts_gym.cli.args import float_in, int_in
    from tts_gym.data.store import MAX_BRANCHES, MAX_PROBE_INTERVAL
    p = subparsers.add_parser("data", help="fetch, import, synthesise and describe replay stores",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="data_command", required=True, title="commands", metavar="COMMAND")

    def add_output(sp, required=True):
        sp.add_argument("-o", "--output", required=required, metavar="OUT.h5", help="HDF5 file to write")
        sp.add_argument("--append", action="store_true",
                        help="keep the stores already in OUT.h5 (one with the same model/benchmark is replaced)")
        sp.add_argument("--compression", choices=("gzip", "lzf", "none"), default="gzip",
                        help="HDF5 compression of the tensors (default gzip: smallest; lzf: faster)")
        sp.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")

    sp = sub.add_parser("import", help="convert AutoTTS JSON stores to HDF5",
                        description="Convert AutoTTS JSON stores to one HDF5 file, validating them.")
    sp.add_argument("src", nargs="+", help="a <benchmark>.json file or a directory laid out <model>/<benchmark>.json")
    sp.add_argument("--model", metavar="NAME", help="model name (default: the JSON file's directory name)")
    sp.add_argument("--benchmark", metavar="NAME", help="benchmark name (default: the JSON file's name)")
    add_output(sp)
    sp.set_defaults(func=cmd_import)

    sp = sub.add_parser("fetch", help="download the public AutoTTS stores and convert them to HDF5",
                        description="Download the public AutoTTS stores (checksummed, validated) and "
                                    "write them as one HDF5 file; later commands find it by default.")
    sp.add_argument("-o", "--output", metavar="OUT.h5", help="HDF5 file to write (default: <cache>/autotts.h5)")
    sp.add_argument("--cache-dir", metavar="DIR",
                    help="download cache (default: $TTS_GYM_CACHE, else ~/.cache/tts_gym)")
    sp.add_argument("--base-url", metavar="URL",
                    help="where the <model>/<benchmark>.json files are (default: the AutoTTS release on GitHub)")
    sp.add_argument("--timeout", type=float_in(0, 3600, low_open=True), default=5.0, metavar="SECONDS",
                    help="connection/read timeout in seconds (default 5)")
    sp.add_argument("--force", action="store_true", help="download even when the cache is valid")
    sp.add_argument("--no-verify", action="store_true",
                    help="skip the SHA-256 check of the downloads (the stores are still validated)")
    output.add_progress_arg(sp)
    sp.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    sp.set_defaults(func=cmd_fetch)

    sp = sub.add_parser("synth", help="write a seeded synthetic store",
                        description="Write a synthetic store: seeded, with AutoTTS-like trajectory "
                                    "lengths, answer changes and accuracy.")
    sp.add_argument("--questions", type=int_in(1, 2**31 - 1), default=30, metavar="N", help="questions (default 30)")
    sp.add_argument("--branches", type=int_in(1, MAX_BRANCHES), default=128, metavar="N",
                    help="trajectories per question (default 128)")
    sp.add_argument("--seed", type=int_in(0, 2**63 - 1), default=0, help="random seed (default 0)")
    sp.add_argument("--model", default="synthetic", metavar="NAME", help="model name of the store (default synthetic)")
    sp.add_argument("--benchmark", metavar="NAME", help="benchmark name of the store (default: seed<SEED>)")
    sp.add_argument("--probe-interval", type=int_in(1, MAX_PROBE_INTERVAL), default=500, metavar="TOKENS",
                    help="tokens between two intermediate answers (default 500)")
    add_output(sp)
    sp.set_defaults(func=cmd_synth)

    sp = sub.add_parser("info", help="summary table per store",
                        description="One summary row per store: questions, trajectories, probes, tokens, "
                                    "majority and pass@N accuracy, distinct answers.")
    sp.add_argument("file", help="an HDF5 store file, an AutoTTS JSON file or a directory of them")
    sp.add_argument("--model", metavar="NAME", help="only the stores of this model")
    sp.add_argument("--benchmark", metavar="NAME", help="only the stores of this benchmark")
    sp.add_argument("--json", action="store_true", help="print the statistics as JSON")
    sp.add_argument("--merging-effect", action="store_true",
                    help="estimate what merging math-equivalent answers would do to majority accuracy "
                         "(needs pip install 'tts_gym[answers]')")
    sp.set_defaults(func=cmd_info)
