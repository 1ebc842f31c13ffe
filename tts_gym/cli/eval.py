"""``tts-gym eval``: one policy configuration under the reference evaluation protocol.

    tts-gym eval --policy asc --param max_samples=64 --param threshold=0.95 \\
                 [--data FILE_OR_DIR] [--model M --benchmark B] [--protocol reference] [--json]
    tts-gym eval --controller agents/controllers/cmc.py --param beta=0.5 ...
    tts-gym eval --agent maskable_ppo_aime24 --param gamma=0.01 ...   (a trained RL agent, tts_gym.rl)

The reference protocol is the AutoTTS evaluation (``specs/replay-semantics.md`` section 3): seeds
``0..N-1`` (``--seeds N``, default 100), every question once per seed with its branches in the order
of CPython's ``random.Random(seed).shuffle``, exact-string scoring. Printed: accuracy (percent,
2 decimals, exact), avg_tokens (mean tokens per question) and ``tokens_int`` (its truncation, as
the reference CSV prints it), the integer totals ``sumC`` / ``sumTT``, seeds and questions.

Policies: ``sc`` (``n`` or ``max_samples``), ``asc`` (``max_samples``, ``threshold``), ``esc``
(``max_samples``, ``window_size``), ``parallel_probe`` / ``pp`` (``num_chains``, ``T``,
``prune_patience``, ``warm_up``, ``probe_burst``, ``max_steps``; ``K``, ``eps_inter``,
``eps_intra`` accepted and unused), ``cmc`` (``beta``). Unset parameters take the reference
driver's values (:data:`tts_gym.policies.common.POLICY_DEFAULTS`).

Data: ``--data`` (HDF5 file, AutoTTS JSON file or directory ``<model>/<benchmark>.json``, or
``synthetic``), else ``$TTS_GYM_DATA`` with ``--model/--benchmark``, else the embedded synthetic
store (:func:`tts_gym.data.resolve.resolve_store`).

Implementations (``--impl``): ``compiled`` (default; the numba kernels of
:mod:`tts_gym.policies.compiled`, the whole protocol in one call) or ``python`` (the Python policies
of :mod:`tts_gym.policies.baselines` played through the env). New implementations register in
:data:`IMPLS`. Input errors print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

EXIT_USAGE = 2


def parse_value(text: str) -> Any:
    """A ``--param`` value: JSON when it parses (numbers, booleans, null), else the raw string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_params(pairs: list[str], params_json: str | None = None) -> dict:
    """``--params JSON`` then each ``--param KEY=VALUE`` (later ones win)."""
    out: dict = {}
    if params_json:
        obj = json.loads(params_json)
        if not isinstance(obj, dict):
            raise ValueError("--params must be a JSON object")
        out.update(obj)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


# ---- implementations: (store, policy, params, seeds, args) -> ProtocolResult ----------------------

def _eval_compiled(store, policy: str, params: dict, seeds, args: argparse.Namespace):
    from tts_gym.evaluation.protocol import evaluate_compiled
    return evaluate_compiled(store, policy, params, seeds=seeds, workers=args.workers,
                             conf_variant=args.conf_variant)


def _eval_python(store, policy: str, params: dict, seeds, args: argparse.Namespace):
    from tts_gym.policies import make_policy
    from tts_gym.policies.common import normalize_params
    from tts_gym.evaluation.rollout import evaluate_reference_python
    normalize_params(policy, params)           # same validation as the compiled path
    return evaluate_reference_python(store, make_policy(policy, **params), seeds,
                                     name=policy, params=dict(params))


IMPLS: dict[str, Callable] = {"compiled": _eval_compiled, "python": _eval_python}
"""Evaluation implementations selectable with ``--impl`` (name -> function)."""


def _eval_controller_file(store, policy: str, params: dict, seeds, args: argparse.Namespace):
    """``--controller FILE``: a controller file (``class Controller(beta)``, e.g. written by
    ``tts-gym discover``, or the AutoTTS reference's ``OptimalController(config={"beta": b})``)
    in-process under the sandbox's static rules, with the action logs scored by the compiled
    kernels (:func:`tts_gym.discovery.controller_eval.evaluate_in_process`)."""
    from tts_gym.discovery.controller_eval import ControllerCode, evaluate_in_process
    from tts_gym.policies.base import PolicyError
    code = ControllerCode.from_file(args.controller)
    try:
        run = evaluate_in_process(code, [store], [params["beta"]], seeds)
    except PolicyError as exc:
        raise ValueError(str(exc)) from None
    return run.results[float(params["beta"])][0]


def _eval_agent(store, policy: str, params: dict, seeds, args: argparse.Namespace):
    """``--agent NAME``: a trained RL agent (``agents/trained/NAME`` or a path; ``--param gamma=G``,
    ``greedy=true|false``, ``seed=S``) through the Python env loop
    (:func:`tts_gym.rl.agent.evaluate_agent_reference`; needs the ``rl`` extra)."""
    try:
        from tts_gym.rl import evaluate_agent_reference
    except ImportError as exc:
        raise ValueError(f"--agent needs the rl extra (pip install tts_gym[rl]): {exc}") from None
    return evaluate_agent_reference(store, args.agent, params, seeds)


def _controller_params(params: dict) -> dict:
    unknown = sorted(set(params) - {"beta"})
    if unknown:
        raise ValueError(f"a controller file takes only --param beta=B, got {unknown}")
    return {"beta": float(params.get("beta", 0.5))}


def _display_params(policy: str, params: dict) -> dict:
    from tts_gym.policies.common import normalize_params
    name, full = normalize_params(policy, params)
    if policy.strip().lower() == "sc":
        return {"max_samples": full["max_samples"]}
    return full


def _print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console(width=None if sys.stdout.isatty() else 200)
    params = ", ".join(f"{k}={v}" for k, v in summary["params"].items())
    table = Table(title=f"{summary['store']} - {summary['policy']}({params}) - protocol "
                        f"{summary['protocol']} ({summary['impl']})")
    for col in ("accuracy %", "avg_tokens", "tokens (CSV)", "sumC", "sumTT", "seeds", "questions",
                "time s"):
        table.add_column(col, justify="right")
    table.add_row(f"{summary['accuracy']:.2f}", f"{summary['avg_tokens']:.3f}",
                  str(summary["tokens_int"]), str(summary["sumC"]), str(summary["sumTT"]),
                  str(summary["seeds"]), str(summary["questions"]), f"{summary['seconds']:.2f}")
    console.print(table)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate one policy configuration under the reference protocol."""
    from tts_gym.data.resolve import resolve_store
    from tts_gym.data.autotts import StoreFormatError
    from tts_gym.data.hdf5 import StoreNotFoundError
    try:
        params = parse_params(args.param, args.params)
        agent = getattr(args, "agent", None)
        if agent:                                           # --agent NAME (tts_gym.rl)
            if args.policy or getattr(args, "controller", None):
                raise ValueError("give one of --policy, --controller or --agent")
            if getattr(args, "backend", "local") != "local":
                raise ValueError("--agent runs locally only (no --backend)")
            policy = f"agent:{agent}"
            display = params
        elif getattr(args, "controller", None):              # --controller FILE (tts-gym discover)
            if args.policy:
                raise ValueError("give --policy or --controller, not both")
            if getattr(args, "backend", "local") != "local":
                raise ValueError("--controller runs locally only (no --backend)")
            policy = f"controller:{args.controller}"
            params = display = _controller_params(params)
        elif not args.policy:
            raise ValueError("give --policy (a built-in policy) or --controller FILE")
        else:
            policy = args.policy.strip().lower().replace("-", "_")
            display = _display_params(policy, params)      # validates names and types
        if args.seeds < 1:
            raise ValueError("--seeds must be >= 1")
        store = resolve_store(args.data, args.model, args.benchmark)
        seeds = range(args.seeds)
        t0 = time.perf_counter()
        impl = (_eval_agent if agent else
                _eval_controller_file if getattr(args, "controller", None) else IMPLS[args.impl])
        if getattr(args, "backend", "local") != "local":   # --backend ray: sharded through tts_gym.evaluate
            from tts_gym.cli.evaluate_cmds import eval_with_backend
            impl = eval_with_backend
        result = impl(store, policy, params, seeds, args)
        seconds = time.perf_counter() - t0
    except (StoreFormatError, StoreNotFoundError, OSError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"tts-gym eval: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    summary = result.summary()
    summary.update(policy="parallel_probe" if policy == "pp" else policy, params=display,
                   protocol=args.protocol, seconds=round(seconds, 4),
                   impl="python" if (getattr(args, "controller", None) or agent) else args.impl)
    if agent:
        summary["params"] = dict(result.params)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(summary)
    return 0


def register(sub) -> None:
    from tts_gym.core.voting import CONF_VARIANTS
    p = sub.add_parser("eval", help="evaluate one policy configuration (reference protocol)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default=None,
                   help="sc, asc, esc, parallel_probe (pp) or cmc")
    p.add_argument("--controller", default=None, metavar="FILE",
                   help="instead of --policy: a controller file (class Controller(beta) with "
                        "solve(question), as written by tts-gym discover), run in-process through "
                        "the Python env loop; --param beta=B (default 0.5)")
    p.add_argument("--agent", default=None, metavar="NAME",
                   help="instead of --policy: a trained RL agent (agents/trained/NAME.zip or a path, "
                        "see tts_gym.rl.load_agent_policy), through the Python env loop; "
                        "--param gamma=G (its cost weight), greedy=true|false, seed=S")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a policy parameter (repeatable), e.g. --param max_samples=64")
    p.add_argument("--params", default=None, metavar="JSON",
                   help='parameters as a JSON object, e.g. \'{"beta": 0.5}\' (--param entries win)')
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None,
                   help="HDF5 file, AutoTTS JSON file or directory (<model>/<benchmark>.json), or "
                        "'synthetic'; default: $TTS_GYM_DATA with --model/--benchmark, else the "
                        "embedded synthetic store")
    g.add_argument("--model", default=None)
    g.add_argument("--benchmark", default=None)
    g = p.add_argument_group("protocol")
    g.add_argument("--protocol", choices=("reference",), default="reference",
                   help="reference = the AutoTTS evaluation (seeded shuffles, exact scoring)")
    g.add_argument("--seeds", type=int, default=100, help="seeds 0..N-1 (default 100)")
    g = p.add_argument_group("execution")
    g.add_argument("--impl", choices=sorted(IMPLS), default="compiled",
                   help="compiled numba kernels (default) or the Python policies through the env")
    g.add_argument("--workers", type=int, default=None,
                   help="compiled: worker threads (default: NUMBA_NUM_THREADS); results do not "
                        "depend on it")
    g.add_argument("--conf-variant", choices=CONF_VARIANTS, default="exact",
                   help="rounding of the Beta-majority confidence table (both reproduce the "
                        "reference)")
    from tts_gym.cli.evaluate_cmds import add_backend_args
    add_backend_args(p, group=g)
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.set_defaults(func=cmd_eval)
