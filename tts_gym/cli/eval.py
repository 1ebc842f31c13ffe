"""``tts-gym eval``: one policy configuration under the reference evaluation protocol.

    tts-gym eval --policy asc --param max_samples=64 --param threshold=0.95 \\
                 [--data FILE_OR_DIR] [--model M --benchmark B] [--protocol reference] [--json]
    tts-gym eval --controller agents/controllers/cmc.py --param beta=0.5 ...   (sandboxed)
    tts-gym eval --controller my_controller.py --trusted ...                  (your own code)
    tts-gym eval --agent maskable_ppo_aime24 --param cost_weight=0.01 ...   (a trained RL agent, tts_gym.rl)

The reference protocol is the AutoTTS evaluation (``docs/replay-semantics.md``, "Reference protocol"): seeds
``0..N-1`` (``--seeds N``, default 100), every question once per seed with its branches in the order
of CPython's ``random.Random(seed).shuffle``, exact-string scoring. Printed: accuracy (percent,
2 decimals, exact), avg_tokens (mean tokens per question) and ``tokens_int`` (its truncation, as
the reference CSV prints it), the integer totals ``sumC`` / ``sumTT``, seeds and questions.

Policies: ``sc`` (``n`` or ``max_samples``), ``asc`` (``max_samples``, ``threshold``), ``esc``
(``max_samples``, ``window_size``), ``parallel_probe`` / ``pp`` (``num_chains``, ``T``,
``prune_patience``, ``warm_up``, ``probe_burst``, ``max_steps``; ``K``, ``eps_inter``,
``eps_intra`` accepted and unused), ``cmc`` (``beta``). Unset parameters take the reference
driver's values (:data:`tts_gym.policies.common.POLICY_DEFAULTS`).

Controller files (``--controller FILE``, e.g. a ``best_controller.py`` written by
``tts-gym discover``) are untrusted by default: they run in the operating-system sandbox of
:mod:`tts_gym.discovery.sandbox` (bubblewrap; episode processes audited for cross-episode state; every action log
re-played by the compiled kernels here), and are refused where no sandbox can be set up.
``--trusted`` is for your own code: the file runs in this process under the same Python-level
rules but without the operating-system boundary (action logs re-played by the compiled kernels).
Both the project's format (``class Controller`` built as ``Controller(beta)``) and the AutoTTS
reference's ``method.py`` format (``class OptimalController(LLMDesignedMethod)`` built as
``OptimalController(config={"beta": b})``, :mod:`tts_gym.discovery.reference_api`) are accepted.

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

from tts_gym.cli import output
from tts_gym.cli.output import progress_flag

EXIT_USAGE = 2

DESCRIPTION = """\
Evaluate one policy configuration under the reference protocol, the AutoTTS evaluation: seeds
0..N-1 (--seeds, default 100), every question once per seed with its trajectories in that seed's
shuffled order, answers scored by exact string match. Prints the accuracy (%), the average tokens
per question (and truncated to an integer, as the AutoTTS results file writes it) and the totals
of correct answers and tokens.

What to evaluate, one of:
  --policy NAME       a built-in policy, its parameters given with --param KEY=VALUE:
                        sc               n (or max_samples)
                        asc              max_samples, threshold
                        esc              max_samples, window_size
                        parallel_probe   num_chains, T, prune_patience, warm_up, probe_burst,
                                         max_steps (pp for short)
                        cmc              beta
                      parameters left out take the AutoTTS reference values
  --controller FILE   a controller file (a class Controller(beta) with solve(question), as
                      `tts-gym discover` writes them); --param beta=B
  --agent NAME        a trained RL agent: the shipped maskable_ppo_aime24 or the path of an
                      agent's .zip; --param cost_weight=W, greedy=true|false, seed=S;
                      needs `pip install 'tts_gym[rl]'`

Bad input prints one line and exits with status 2.
"""

EPILOG = """\
examples:
  tts-gym eval --policy asc --param max_samples=64 --param threshold=0.95
  tts-gym eval --policy cmc --param beta=0.5 --model Qwen3-1.7B --benchmark aime24 --json
  tts-gym eval --controller agents/controllers/cmc.py --param beta=0.5 --seeds 20
  tts-gym eval --agent maskable_ppo_aime24 --param cost_weight=0.01 --seeds 10
"""


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
        from tts_gym.data.store import json_object
        out.update(json_object(params_json, "--params"))
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
                                     name=policy, params=dict(params), progress=progress_flag(args))


IMPLS: dict[str, Callable] = {"compiled": _eval_compiled, "python": _eval_python}
"""Evaluation implementations selectable with ``--impl`` (name -> function)."""


def _eval_controller_trusted(store, policy: str, params: dict, seeds, args: argparse.Namespace):
    """``--controller FILE --trusted``: the file (``class Controller(beta)``, e.g. written by
    ``tts-gym discover``, or the AutoTTS reference's ``OptimalController(config={"beta": b})``)
    in this process under the sandbox's Python-level rules, with the action logs scored by the
    compiled kernels (:func:`tts_gym.discovery.controller_eval.evaluate_in_process`)."""
    from tts_gym.discovery.controller_eval import ControllerCode, evaluate_in_process
    from tts_gym.policies.base import PolicyError
    code = ControllerCode.from_file(args.controller)
    try:
        run = evaluate_in_process(code, [store], [params["beta"]], seeds)
    except PolicyError as exc:
        raise ValueError(str(exc)) from None
    return run.results[float(params["beta"])][0]


def _eval_controller_sandboxed(store, policy: str, params: dict, seeds, args: argparse.Namespace):
    """``--controller FILE``: the file in the sandbox, scored by re-playing its action logs
    (:func:`tts_gym.discovery.sandbox.evaluation.evaluate_controller`)."""
    from pathlib import Path

    from tts_gym.discovery.sandbox.confinement import SandboxUnavailable
    from tts_gym.discovery.sandbox.evaluation import SearchSet, evaluate_controller
    from tts_gym.discovery.sandbox.runner import SandboxLimits
    from tts_gym.evaluation.protocol import ProtocolResult
    code = Path(args.controller).read_text()
    seeds = list(seeds)
    search = SearchSet([store], seeds)
    beta = float(params["beta"])
    limits = SandboxLimits(timeout_s=args.job_timeout or 60.0 + 0.5 * search.num_episodes,
                           episode_timeout_s=args.episode_timeout, memory_mb=args.memory_mb,
                           episodes_per_process=1 if args.isolate_episodes else 256)
    from tts_gym.evaluation.progress import progress_bar
    try:
        with progress_bar(search.num_episodes, "evaluating (sandbox)", progress_flag(args)) as bar:
            ev = evaluate_controller(code, search, [beta], limits,
                                     on_job=lambda *a, **k: bar.update(search.num_episodes - bar.n))
    except SandboxUnavailable as exc:
        raise ValueError(f"{exc} (pass --trusted to run a file you trust in this process)") from None
    if not ev.ok:
        where = ""
        if ev.failed_episode:
            fe = ev.failed_episode
            where = f" at question {fe.get('question')} (shuffle {fe.get('replicate')})"
        first = (ev.error or "").strip().splitlines()
        raise ValueError(f"{args.controller}: the controller failed in the sandbox "
                         f"({ev.error_kind}){where}: {first[-1] if first else ''}")
    ep = ev.episodes[beta]
    S, Q = len(seeds), store.num_questions
    res = ProtocolResult(store=store.name, policy=policy, params=dict(params), seeds=tuple(seeds),
                         sumC=int(ep["correct"].sum()), sumTT=int(ep["cost"].sum()),
                         answers=ep["answer"].reshape(S, Q), costs=ep["cost"].reshape(S, Q),
                         correct=ep["correct"].reshape(S, Q), steps=ep["steps"].reshape(S, Q),
                         backend="sandbox")
    args.sandbox_layers = ev.layers            # shown with the result (how the file was confined)
    return res


def _eval_agent(store, policy: str, params: dict, seeds, args: argparse.Namespace):
    """``--agent NAME``: a trained RL agent (a shipped one by name, or a path; ``--param cost_weight=W``,
    ``greedy=true|false``, ``seed=S``) through the Python env loop
    (:func:`tts_gym.rl.agent.evaluate_agent_reference`; needs the ``rl`` extra)."""
    try:
        from tts_gym.rl import evaluate_agent_reference
    except ImportError as exc:
        raise ValueError(f"--agent needs the rl extra (pip install tts_gym[rl]): {exc}") from None
    return evaluate_agent_reference(store, args.agent, params, seeds, progress=progress_flag(args))


def _controller_params(params: dict) -> dict:
    unknown = sorted(set(params) - {"beta"})
    if unknown:
        raise ValueError(f"a controller file takes only --param beta=B, got {unknown}")
    from tts_gym.policies.registry import PolicyParamError, validate_params
    try:   # the same declared range as CMC's beta
        return {"beta": validate_params("cmc", {"beta": params.get("beta", 0.5)})[1]["beta"]}
    except PolicyParamError as exc:
        raise ValueError(f"controller: {str(exc).split(': ', 1)[1]}") from None


def _display_params(policy: str, params: dict) -> dict:
    from tts_gym.policies.registry import validate_params
    name, full = validate_params(policy, params)   # names, values and ranges of the registry
    return full


def _print_table(summary: dict) -> None:
    from rich.table import Table
    console = output.console()
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


def _check_flags(args: argparse.Namespace, builtin: bool) -> None:
    """Refuse options that would be ignored by the chosen implementation or backend."""
    from tts_gym.cli.evaluate_cmds import check_backend_args
    if args.impl == "python" or not builtin:
        what = "--impl python" if builtin else ("--controller" if getattr(args, "controller", None) else "--agent")
        if args.workers is not None:
            raise ValueError(f"--workers sets the compiled kernels' threads; it has no effect with {what}")
        if args.conf_variant != "exact":
            raise ValueError(f"--conf-variant applies to the compiled kernels; it has no effect with {what}")
    check_backend_args(args)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate one policy configuration under the reference protocol."""
    from tts_gym.data.resolve import resolve_store
    from tts_gym.data.autotts import StoreFormatError
    from tts_gym.data.catalog import StoreNotFoundError
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
        elif getattr(args, "trusted", False):
            raise ValueError("--trusted applies to --controller FILE only")
        elif not args.policy:
            raise ValueError("give --policy (a built-in policy) or --controller FILE")
        else:
            from tts_gym.policies.registry import canonical
            policy = canonical(args.policy)
            display = _display_params(policy, params)      # validates names, types and ranges
        _check_flags(args, builtin=not (agent or getattr(args, "controller", None)))
        store = resolve_store(args.data, args.model, args.benchmark)
        seeds = range(args.seeds)
        t0 = time.perf_counter()
        controller = getattr(args, "controller", None)
        impl = (_eval_agent if agent else
                (_eval_controller_trusted if getattr(args, "trusted", False)
                 else _eval_controller_sandboxed)
                if controller else IMPLS[args.impl])
        if getattr(args, "backend", "local") != "local":   # --backend ray: sharded through tts_gym.evaluate
            from tts_gym.cli.evaluate_cmds import eval_with_backend
            impl = eval_with_backend
        result = impl(store, policy, params, seeds, args)
        seconds = time.perf_counter() - t0
    except (StoreFormatError, StoreNotFoundError, OSError, ValueError, KeyError) as exc:
        from tts_gym.cli.errors import report
        code = report("tts-gym eval", exc)
        if code is None:
            raise
        return code
    summary = result.summary()
    controller = getattr(args, "controller", None)
    summary.update(policy="parallel_probe" if policy == "pp" else policy, params=display,
                   protocol=args.protocol, seconds=round(seconds, 4),
                   impl=("sandbox" if controller and not getattr(args, "trusted", False) else
                         "python" if (controller or agent) else args.impl))
    if getattr(args, "sandbox_layers", None):
        summary["sandbox"] = args.sandbox_layers
    if agent:
        summary["params"] = dict(result.params)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(summary)
    return 0


def register(sub) -> None:
    from tts_gym.cli.args import seeds_type, workers_type
    from tts_gym.core.voting import CONF_VARIANTS
    p = sub.add_parser("eval", help="evaluate one policy, controller file or RL agent (reference protocol)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", default=None, metavar="NAME",
                   help="a built-in policy: sc, asc, esc, parallel_probe (pp) or cmc")
    p.add_argument("--controller", default=None, metavar="FILE",
                   help="instead of --policy: a controller file (class Controller(beta) with "
                        "solve(question), as written by tts-gym discover, or the reference's "
                        "OptimalController(config)), run in the operating-system sandbox "
                        "(bubblewrap); --param beta=B (default 0.5)")
    p.add_argument("--trusted", action="store_true",
                   help="with --controller: the file is your own code; run it in this process, "
                        "without the sandbox")
    p.add_argument("--agent", default=None, metavar="NAME",
                   help="instead of --policy: a trained RL agent, the shipped maskable_ppo_aime24 or "
                        "the path of an agent's .zip; --param cost_weight=W, "
                        "greedy=true|false, seed=S")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter of the policy (repeatable), e.g. --param max_samples=64")
    p.add_argument("--params", default=None, metavar="JSON",
                   help='parameters as a JSON object, e.g. \'{"beta": 0.5}\' (--param entries win)')
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, metavar="PATH",
                   help="an HDF5 store file, an AutoTTS JSON file, a directory of them "
                        "(<model>/<benchmark>.json), or 'synthetic'; default: $TTS_GYM_DATA or the "
                        "fetched stores with --model/--benchmark, else the built-in synthetic store")
    g.add_argument("--model", default=None, metavar="NAME",
                   help="the model whose store to use, e.g. Qwen3-1.7B (with --data or the default data)")
    g.add_argument("--benchmark", default=None, metavar="NAME",
                   help="the benchmark whose store to use, e.g. aime24")
    g = p.add_argument_group("protocol")
    g.add_argument("--protocol", choices=("reference",), default="reference",
                   help="reference = the AutoTTS evaluation (seeded shuffles, exact scoring)")
    g.add_argument("--seeds", type=seeds_type, default=100, metavar="N",
                   help="shuffle seeds 0..N-1 (default 100, as in AutoTTS)")
    g = p.add_argument_group("execution")
    g.add_argument("--impl", choices=sorted(IMPLS), default="compiled",
                   help="compiled (default): the whole protocol in compiled code; python: the same "
                        "policy played step by step through the Gymnasium env (slower, same results)")
    g.add_argument("--workers", type=workers_type, default=None, metavar="N",
                   help="threads of the compiled replay (default: all cores); results do not depend on it")
    g.add_argument("--conf-variant", choices=CONF_VARIANTS, default="exact",
                   help="how the majority-confidence table of ASC and CMC is rounded (both reproduce "
                        "the AutoTTS results; default exact)")
    g.add_argument("--episode-timeout", type=float, default=20.0, metavar="SECONDS",
                   help="sandboxed --controller: seconds per question (default 20)")
    g.add_argument("--job-timeout", type=float, default=None, metavar="SECONDS",
                   help="sandboxed --controller: seconds in all (default 60 + 0.5 per episode)")
    g.add_argument("--memory-mb", type=int, default=2048, metavar="MB",
                   help="sandboxed --controller: memory per episode process (MB, default 2048)")
    g.add_argument("--isolate-episodes", action="store_true",
                   help="sandboxed --controller: a fresh process for every episode (strict, 5-10x "
                        "slower; by default 256 episodes share a process and a sample is re-run "
                        "alone and compared)")
    from tts_gym.cli.evaluate_cmds import add_backend_args
    add_backend_args(p, group=g)
    output.add_progress_arg(g)
    p.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    p.set_defaults(func=cmd_eval)
