"""Evaluate controller files: in-process under the reference protocol, and beta-sweeps sharded over
sandboxed worker processes (all cores of this machine) or Ray.

A controller file is either this project's format (``class Controller`` built as
``Controller(beta)``) or the AutoTTS reference's ``method.py`` format (``class OptimalController``
built as ``OptimalController(config={"beta": beta})``, see :mod:`tts_gym.discovery.reference_api`);
both expose ``solve(question)``.

* :class:`ControllerCode` -- a file checked against the sandbox's static rules and compiled once;
* :func:`evaluate_in_process` -- ``tts-gym eval --controller FILE``: every episode runs the file in
  fresh restricted module globals (as in the sandbox, without its process isolation: for reviewed
  code) on a :class:`~tts_gym.policies.autotts_adapter.ReferenceQuestion`; the action logs are then
  re-played with the compiled kernels, which give the scores (and must agree with the question
  object's costs and answers);
* :func:`sweep_controller` -- a beta-sweep in the sandbox (:func:`~tts_gym.discovery.sandbox.
  evaluate_controller`, the sandbox's public entry point), sharded into one job per
  (store, beta) on ``workers`` processes at a time, locally or as Ray tasks; every job is its own
  sandboxed child process.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["ControllerCode", "evaluate_in_process", "InProcessResult", "sweep_controller",
           "RayExecutor", "betas_per_job", "jobs_of_sweep"]


class ControllerCode:
    """A controller source checked by the sandbox's static rules and compiled once.

    ``format`` is ``"controller"`` or ``"reference"``; :meth:`instance` executes the module in
    fresh restricted globals and returns the controller object for ``beta``. Raises
    :class:`~tts_gym.discovery.sandbox.interface.ControllerRejected` (a ``ValueError``) with a
    one-line-per-problem message for a file that breaks the rules or does not parse.
    """

    def __init__(self, source: str, filename: str = "controller.py") -> None:
        import linecache

        from tts_gym.discovery.sandbox.interface import ControllerRejected, controller_format
        from tts_gym.discovery.sandbox.namespace import check_source, compile_tree
        self.source = source
        self.filename = str(filename)
        try:
            tree = check_source(source, self.filename)
        except SyntaxError as exc:
            raise ControllerRejected(f"{self.filename}: SyntaxError: {exc.msg} (line {exc.lineno})"
                                     ) from None
        except ControllerRejected as exc:
            raise ControllerRejected(f"{self.filename}: {exc}") from None
        self.format = controller_format(tree)
        self.code = compile_tree(tree, self.filename)
        linecache.cache[self.filename] = (len(source), None, source.splitlines(True), self.filename)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ControllerCode":
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"controller file not found: {p}")
        return cls(p.read_text(), str(p))

    @property
    def name(self) -> str:
        return Path(self.filename).stem

    def instance(self, beta: float, print_fn=None):
        from tts_gym.discovery.sandbox.namespace import instantiate
        return instantiate(self.code, float(beta), print_fn)


@dataclass
class InProcessResult:
    """Results of :func:`evaluate_in_process`: per beta, one
    :class:`~tts_gym.evaluation.protocol.ProtocolResult` per store; plus the CPU and wall
    seconds of the controller runs and of the scoring re-play."""
    results: dict           # beta -> [ProtocolResult per store]
    cpu_s: float
    wall_s: float
    replay_s: float
    episodes: int


def evaluate_in_process(code: ControllerCode | str | os.PathLike, stores, betas: Sequence[float],
                        seeds: Sequence[int] = range(100), *, strict: bool = True,
                        progress=None) -> InProcessResult:
    """The reference protocol (seeds x questions, store by store) for every beta, in this process.

    ``strict`` (default, as in the sandbox): ``probe_more`` on an unopened or finished branch and a
    returned string that no opened branch shows raise :class:`~tts_gym.policies.base.PolicyError`
    naming the episode. ``progress(done, total)`` is called after each store and beta.
    """
    from tts_gym.data.store import ReplayStore
    from tts_gym.discovery.sandbox import SearchSet, replay_logs
    from tts_gym.discovery.sandbox.interface import (InadmissibleAction, inadmissible_handler,
                                                     make_question)
    from tts_gym.evaluation.protocol import ProtocolResult
    from tts_gym.core.reference_question import BranchTable
    from tts_gym.policies.base import PolicyError

    if not isinstance(code, ControllerCode):
        code = ControllerCode.from_file(code)
    stores = [stores] if isinstance(stores, ReplayStore) else list(stores)
    seeds = tuple(int(s) for s in seeds)
    search = SearchSet(stores, seeds)
    batch = search.batch
    table = BranchTable(batch.data, tuple(t for s in stores for t in s.answer_tables))
    M = batch.max_branches
    reference = code.format == "reference"
    questions = batch.questions.tolist()
    E = batch.num_episodes

    refused: list = []                       # sticky, as in the sandbox
    refuse = inadmissible_handler(refused.append)

    def where(si: int, e: int, beta: float) -> str:
        Q = stores[si].num_questions
        local = e - batch.slices[si].start
        return (f"beta={beta:g}, {stores[si].name} question {local % Q}, "
                f"seed {seeds[local // Q]}")

    out: dict = {}
    cpu = wall = replay_s = 0.0
    done, total = 0, len(betas) * len(stores)
    for beta in betas:
        beta = float(beta)
        actions: list = []
        offsets = np.zeros(E + 1, np.int64)
        answers = np.full(E, -1, np.int32)
        costs = np.zeros(E, np.int64)
        c0, w0 = time.process_time(), time.perf_counter()
        for si, sl in enumerate(batch.slices):
            for e in range(sl.start, sl.stop):
                q = questions[e]
                rq = table.question(q, batch.perms[e], M, strict=strict,
                                    raise_on_exhaustion=reference,
                                    inadmissible=refuse if strict else None)
                try:
                    ctrl = code.instance(beta)
                    answer = ctrl.solve(make_question(rq, None))
                except InadmissibleAction as exc:
                    raise PolicyError(f"{code.name}: {exc} ({where(si, e, beta)})") from None
                except Exception as exc:  # noqa: BLE001 - reported with the controller's line
                    raise PolicyError(f"{code.name} raised {type(exc).__name__}: {exc} "
                                      f"({where(si, e, beta)}{_controller_line(exc, code)})"
                                      ) from exc
                if refused:
                    raise PolicyError(f"{code.name}: {refused[0]}; the controller caught the "
                                      f"error and went on ({where(si, e, beta)})")
                _, aid, unmapped = rq.commit(answer)
                if unmapped and strict:
                    raise PolicyError(
                        f"{code.name} returned {answer!r:.60}, not the latest answer of any "
                        f"opened branch ({where(si, e, beta)})")
                actions.extend(rq.actions)
                offsets[e + 1] = len(actions)
                answers[e] = aid
                costs[e] = rq.cost
            done += 1
            if progress is not None:
                progress(done, total)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        t = time.perf_counter()
        rep = replay_logs(search, np.asarray(actions, np.int16), offsets)
        replay_s += time.perf_counter() - t
        bad = np.flatnonzero((rep["code"] != 0) | (rep["cost"] != costs) | (rep["answer"] != answers))
        if bad.size:
            raise RuntimeError(f"{code.name} (beta={beta:g}): the kernels' re-play of episode "
                               f"{int(bad[0])} disagrees with the question object (code "
                               f"{int(rep['code'][bad[0]])}, cost {int(rep['cost'][bad[0]])} vs "
                               f"{int(costs[bad[0]])})")
        per_store = []
        S = len(seeds)
        steps = np.diff(offsets).astype(np.int32)
        for store, sl in zip(stores, batch.slices):
            Q = store.num_questions
            cut = lambda a: np.ascontiguousarray(a[sl].reshape(S, Q))  # noqa: E731
            correct, c = cut(rep["correct"]), cut(rep["cost"])
            per_store.append(ProtocolResult(
                store=store.name, policy=f"controller:{code.name}", params={"beta": beta},
                seeds=seeds, sumC=int(correct.sum()), sumTT=int(c.sum(dtype=np.int64)),
                answers=cut(rep["answer"]), costs=c, correct=correct, steps=cut(steps),
                backend="python"))
        out[beta] = per_store
    return InProcessResult(results=out, cpu_s=cpu, wall_s=wall, replay_s=replay_s,
                           episodes=E * len(betas))


def _controller_line(exc: BaseException, code: ControllerCode) -> str:
    """``", line N: <source>"`` of the deepest frame of the controller file in ``exc``'s
    traceback, or ``""``."""
    import traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == code.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f", {Path(code.filename).name} line {f.lineno}: {(f.line or '').strip()}"


# ------------------------------------------------------------------------------------------------
# sharded sandbox sweeps
# ------------------------------------------------------------------------------------------------

class RayExecutor(Executor):
    """A :class:`concurrent.futures.Executor` whose tasks run as Ray tasks (one CPU each).

    Used to shard sandbox jobs over a Ray cluster: each job starts its sandboxed child process on
    the Ray worker that runs it. Arguments must be picklable; a ``cancel`` keyword (a
    ``threading.Event`` of the local caller) is dropped and honoured only for jobs that have not
    started yet."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        from tts_gym.evaluation.ray_backend import ensure_ray
        self._ray = ensure_ray(address, num_cpus)
        self._remote = self._ray.remote(num_cpus=1, max_retries=0)(_call)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        cancel = kwargs.pop("cancel", None)
        fut: Future = Future()
        if cancel is not None and cancel.is_set():
            fut.cancel()
            return fut
        ref = self._remote.remote(fn, args, kwargs)
        fut.set_running_or_notify_cancel()

        def resolve():
            try:
                fut.set_result(self._ray.get(ref))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                fut.set_exception(exc)

        import threading
        threading.Thread(target=resolve, daemon=True).start()
        return fut

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass


def _call(fn, args, kwargs):
    return fn(*args, **kwargs)


def betas_per_job(n_betas: int, n_parts: int, workers: int) -> int:
    """Betas one sandbox child evaluates so that ``n_parts x n_betas`` units make about two jobs
    per worker (each child costs about a second to start; fewer, longer jobs waste less)."""
    want = max(1, 2 * int(workers))
    per = -(-int(n_betas) * int(n_parts) // want)
    return max(1, min(int(n_betas), per))


def sweep_controller(code: str, search, betas: Sequence[float], limits=None, *, workers: int = 0,
                     backend: str = "local", address: str | None = None, on_job=None,
                     executor: Executor | None = None):
    """A beta-sweep of controller source ``code`` on the search stores of ``search`` (a
    :class:`~tts_gym.discovery.sandbox.SearchSet`), in the sandbox
    (:func:`~tts_gym.discovery.sandbox.evaluate_controller`): one sandboxed child per store and
    group of betas (:func:`betas_per_job`), ``workers`` at a time (default: every CPU) on this
    machine (``backend="local"``) or as Ray tasks (``backend="ray"``; ``address``: a cluster to
    join, default a local instance), or on ``executor``. ``limits``: a
    :class:`~tts_gym.discovery.sandbox.SandboxLimits` or a function ``episodes per job ->
    SandboxLimits``. Returns the :class:`~tts_gym.discovery.sandbox.ControllerEvaluation`."""
    from concurrent.futures import ThreadPoolExecutor

    from tts_gym.discovery.sandbox import SandboxLimits, SearchSet, evaluate_controller
    n = workers or os.cpu_count() or 1
    parts = [SearchSet([s], search.seeds) for s in search.stores] if len(search.stores) > 1 else None
    nparts = len(search.stores) if parts else 1
    per = betas_per_job(len(betas), nparts, n)
    if limits is None:
        limits = SandboxLimits()
    elif callable(limits):
        q = max(s.num_questions for s in search.stores)
        limits = limits(per * len(search.seeds) * (q if parts else q * len(search.stores)))
    own = executor is None
    if executor is not None:
        pool = executor
    elif backend == "ray":
        pool = RayExecutor(address, None if not workers else workers)
    elif backend == "local":
        pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="sweep")
    else:
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    try:
        return evaluate_controller(code, search, betas, limits, pool, parts=parts, on_job=on_job,
                                   betas_per_job=per)
    finally:
        if own:
            pool.shutdown(wait=True)


def jobs_of_sweep(n_betas: int, n_stores: int, workers: int) -> int:
    """Number of sandbox jobs :func:`sweep_controller` starts (for progress bars)."""
    per = betas_per_job(n_betas, n_stores, workers or os.cpu_count() or 1)
    return n_stores * -(-int(n_betas) // per)
