"""Evaluate untrusted (LLM-written) controllers in the sandbox and score them in the parent.

* :class:`SearchSet` -- the stores and episodes a controller is evaluated on, and what a sandbox
  may see of them: the stores **redacted** by :func:`redact_store` (replay tensors and answer
  strings; gold ids set to ``GOLD_ABSENT``, gold strings and question text blanked) and the
  episodes' branch orders. Held-out stores are never sent during the search;
* :func:`evaluate_controller` -- one sandbox job per beta and part
  (:func:`~tts_gym.discovery.sandbox.runner.run_job`, in parallel on a thread pool), then **every
  episode's action log re-played with the compiled kernels** (:func:`replay_logs`): costs,
  committed answers and correctness are computed here, with gold ids that never left the parent.
  A log the kernels refuse, or costs that disagree with the sandbox's, fail the candidate. Returns
  a :class:`ControllerEvaluation`: per-beta, per-store accuracy and mean tokens, the
  token-monotonicity verdict, the per-episode outcomes, and
  :meth:`ControllerEvaluation.trace_summaries` (compact descriptions of representative wrong or
  expensive episodes, for the proposer).

Whatever a sandbox sends, :func:`evaluate_controller` returns a failed evaluation with a message
rather than raising; it raises only
:class:`~tts_gym.discovery.sandbox.confinement.SandboxUnavailable` (no OS sandbox and no
``allow_unsandboxed``), before anything runs.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numba as nb
import numpy as np

from tts_gym.core import actions as A
from tts_gym.core import kernels as K
from tts_gym.data.store import GOLD_ABSENT, ReplayStore
from tts_gym.discovery.sandbox.namespace import ControllerRejected, check_source
from tts_gym.discovery.sandbox.runner import JobResult, SandboxLimits, run_job

__all__ = ["SearchSet", "ControllerEvaluation", "redact_store", "evaluate_controller",
           "replay_logs", "run_unrestricted_probe", "DEFAULT_BETAS"]

DEFAULT_BETAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def redact_store(store: ReplayStore) -> ReplayStore:
    """The store as a controller may see it: no gold ids, no gold strings, no question text."""
    Q = store.num_questions
    return dataclasses.replace(
        store, gold_ids=np.full(Q, GOLD_ABSENT, np.int32), gold_answers=("",) * Q,
        questions=("",) * Q, attrs={})


class SearchSet:
    """Stores and episodes a controller is evaluated on: the reference protocol with the given
    seeds, as packed by :class:`tts_gym.evaluation.protocol.ProtocolBatch` (episode order: store by store,
    seed-major, then questions in store order).

    Holds the full stores (parent only: scoring), their redacted copies (sent to the child) and
    the packed kernel data used to re-play the children's action logs.
    """

    def __init__(self, stores: Sequence[ReplayStore], seeds: Sequence[int]) -> None:
        from tts_gym.evaluation.protocol import ProtocolBatch
        self.stores = list(stores)
        if not self.stores:
            raise ValueError("SearchSet needs at least one store")
        self.batch = ProtocolBatch(self.stores, seeds)
        self.seeds = self.batch.seeds
        self.redacted = [redact_store(s) for s in self.stores]
        self.data = self.batch.data
        self.max_branches = self.batch.max_branches
        self.ep_question = self.batch.questions
        self.ep_order = self.batch.perms
        S = len(self.seeds)
        store_of, rep, ques = [], [], []
        for si, s in enumerate(self.stores):
            Q = s.num_questions
            store_of.append(np.full(S * Q, si, np.int32))
            rep.append(np.repeat(np.arange(S, dtype=np.int32), Q))
            ques.append(np.tile(np.arange(Q, dtype=np.int32), S))
        self.ep_store = np.concatenate(store_of)
        self.ep_replicate = np.concatenate(rep)
        self.ep_local_question = np.concatenate(ques)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stores]

    @property
    def num_episodes(self) -> int:
        """Episodes per beta."""
        return int(self.ep_question.shape[0])

    def payload(self, code: str, betas: Sequence[float], python_layer: str = "full") -> dict:
        """What the worker receives (only redacted data; pickled by the runner)."""
        S = len(self.seeds)
        orders, questions = [], []
        for s, sl in zip(self.stores, self.batch.slices):
            Q = s.num_questions
            orders.append(np.ascontiguousarray(self.ep_order[sl].reshape(S, Q, -1)))
            questions.append(np.tile(np.arange(Q, dtype=np.int32), (S, 1)))
        return {"code": code, "betas": [float(b) for b in betas], "stores": self.redacted,
                "orders": orders, "questions": questions, "python_layer": python_layer}

    def describe_episode(self, betas: Sequence[float], k: int) -> dict:
        """Where episode ``k`` of a job over ``betas`` (beta-major, then this set's order) is."""
        E = self.num_episodes
        b, e = divmod(int(k), E)
        return {"beta": float(betas[b]) if b < len(betas) else None,
                "store": self.names[int(self.ep_store[e])],
                "replicate": int(self.ep_replicate[e]),
                "question": int(self.ep_local_question[e])}


# ------------------------------------------------------------------------------------------------
# re-play of the action logs (parent side, compiled)
# ------------------------------------------------------------------------------------------------

REPLAY_AFTER_TERMINAL = 100
REPLAY_NO_TERMINAL = 101


@nb.njit(cache=True, nogil=True)
def _replay_logs(state, data, params, qidx, orders, actions, offsets, out_cost, out_answer,
                 out_code, out_gold_seen, out_steps):
    M = params.max_branches
    for e in range(qidx.shape[0]):
        K.reset_episode(state, 0, qidx[e], orders[e])
        g = data.gold_ids[qidx[e]]
        seen = False
        code = 0
        n = 0
        for t in range(offsets[e], offsets[e + 1]):
            a = np.int64(actions[t])
            if state.done[0]:
                code = REPLAY_AFTER_TERMINAL
                break
            c, _ = K.step_episode(state, data, params, 0, a)
            if c != 0:
                code = c
                break
            n += 1
            p = -1
            if a == A.BRANCH or a == A.SAMPLE:
                p = state.cursor[0] - 1
            elif a >= A.NUM_GLOBAL_ACTIONS and a < A.NUM_GLOBAL_ACTIONS + 2 * M:
                p = (a - A.NUM_GLOBAL_ACTIONS) % M
            if p >= 0 and g >= 0 and state.latest[0, p] == g:
                seen = True
        if code == 0 and not state.done[0]:
            code = REPLAY_NO_TERMINAL
        out_code[e] = code
        out_cost[e] = state.cost[0]
        out_answer[e] = state.answer[0]
        out_gold_seen[e] = seen
        out_steps[e] = n


def replay_logs(search: SearchSet, actions: np.ndarray, offsets: np.ndarray) -> dict:
    """Re-play one beta's action logs (episode order of :class:`SearchSet`) with the kernels.

    Returns per-episode ``cost``, ``answer`` (committed id), ``correct``, ``gold_seen`` (the gold
    answer was revealed at some point), ``code`` (0, a kernel error code, or
    ``REPLAY_AFTER_TERMINAL`` / ``REPLAY_NO_TERMINAL``) and ``steps``.
    """
    E = search.num_episodes
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    actions = np.ascontiguousarray(actions, dtype=np.int16)
    if offsets.shape != (E + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 0) \
            or offsets[-1] != actions.shape[0]:
        raise ValueError("inconsistent action-log offsets")
    params = K.EnvParams(max_branches=search.max_branches, fused=True, probe_cost=0, token_budget=0)
    state = K.make_state(1, search.max_branches)
    cost = np.zeros(E, np.int64)
    answer = np.zeros(E, np.int32)
    code = np.zeros(E, np.int32)
    seen = np.zeros(E, np.bool_)
    steps = np.zeros(E, np.int32)
    _replay_logs(state, search.data, params, search.ep_question, search.ep_order, actions, offsets,
                 cost, answer, code, seen, steps)
    gold = search.data.gold_ids[search.ep_question]
    correct = (answer >= 0) & (answer == gold) & (gold >= 0)
    return {"cost": cost, "answer": answer, "correct": correct, "gold_seen": seen, "code": code,
            "steps": steps}


# ------------------------------------------------------------------------------------------------
# evaluation of a controller over a beta sweep
# ------------------------------------------------------------------------------------------------

@dataclass
class ControllerEvaluation:
    """Scores of one controller on a :class:`SearchSet` over a beta sweep."""
    ok: bool
    betas: list
    store_names: list
    error_kind: str | None = None
    error: str | None = None
    failed_episode: dict | None = None
    per_beta: list = field(default_factory=list)      # dicts, see to_json
    monotone: dict = field(default_factory=dict)
    seconds: float = 0.0
    stdout: str = ""
    layers: dict = field(default_factory=dict)
    episodes: dict = field(default_factory=dict)      # beta -> replay dict (+ "actions", "offsets")

    def point(self, beta: float) -> dict | None:
        for p in self.per_beta:
            if abs(p["beta"] - float(beta)) < 1e-12:
                return p
        return None

    def to_json(self) -> dict:
        return {"ok": self.ok, "error_kind": self.error_kind, "error": self.error,
                "failed_episode": self.failed_episode, "betas": self.betas,
                "stores": self.store_names, "per_beta": self.per_beta, "monotone": self.monotone,
                "seconds": round(self.seconds, 3), "stdout": self.stdout, "sandbox": self.layers}

    @classmethod
    def from_json(cls, d: dict) -> "ControllerEvaluation":
        return cls(ok=bool(d["ok"]), betas=list(d.get("betas", [])),
                   store_names=list(d.get("stores", [])), error_kind=d.get("error_kind"),
                   error=d.get("error"), failed_episode=d.get("failed_episode"),
                   per_beta=list(d.get("per_beta", [])), monotone=dict(d.get("monotone", {})),
                   seconds=float(d.get("seconds", 0.0)), stdout=d.get("stdout", ""),
                   layers=dict(d.get("sandbox", {})))

    # -- traces for the proposer -------------------------------------------------------------------
    def trace_summaries(self, search: SearchSet, beta: float | None = None, n: int = 3,
                        max_chars: int = 1800) -> str:
        """Compact descriptions of up to ``n`` representative episodes at ``beta`` (default: the
        middle of the sweep): wrong answers although the correct one had been revealed, wrong
        answers that never saw it, and the most expensive correct episodes."""
        if not self.ok or not self.episodes:
            return ""
        if beta is None:
            beta = self.betas[len(self.betas) // 2]
        ep = self.episodes.get(float(beta))
        if ep is None:
            return ""
        picks = select_trace_episodes(search, ep, n)
        parts = [summarize_episode(search, ep, e, float(beta), why, max_chars) for e, why in picks]
        return "\n\n".join(parts)


def select_trace_episodes(search: SearchSet, ep: dict, n: int) -> list[tuple[int, str]]:
    """Up to ``n`` episodes, distinct questions, in order of usefulness."""
    correct, seen, cost = ep["correct"], ep["gold_seen"], ep["cost"]
    key = search.ep_store.astype(np.int64) * 100000 + search.ep_local_question
    groups = [
        (np.flatnonzero(~correct & seen), "wrong, although the correct answer had been revealed"),
        (np.flatnonzero(~correct & ~seen), "wrong; the correct answer was never revealed"),
        (np.flatnonzero(correct), "correct but among the most expensive episodes"),
    ]
    out, used = [], set()
    for idx, why in groups:
        if len(out) >= n:
            break
        if idx.size == 0:
            continue
        idx = idx[np.argsort(-cost[idx], kind="stable")]
        for e in idx:
            if key[e] in used:
                continue
            used.add(key[e])
            out.append((int(e), why))
            break
    # fill up with the most expensive remaining episodes
    if len(out) < n:
        for e in np.argsort(-cost, kind="stable"):
            if len(out) >= n:
                break
            if key[e] not in used:
                used.add(key[e])
                out.append((int(e), "among the most expensive episodes"))
    return out


def _labels():
    import string
    letters = string.ascii_uppercase
    i = 0
    while True:
        q, r = divmod(i, 26)
        yield letters[r] + (str(q) if q else "")
        i += 1


def summarize_episode(search: SearchSet, ep: dict, e: int, beta: float, why: str,
                      max_chars: int = 1800) -> str:
    """Re-play episode ``e`` step by step and describe it compactly: answers are anonymised labels
    (A, B, ... in order of first reveal; the correct one marked), one line per opened branch with
    its run-length-compressed sequence of revealed answers, when branches were opened, and the
    committed answer."""
    si = int(search.ep_store[e])
    store = search.stores[si]
    q = int(search.ep_local_question[e])
    r = int(search.ep_replicate[e])
    acts = ep["actions"][ep["offsets"][e]:ep["offsets"][e + 1]]
    M = search.max_branches
    params = K.EnvParams(max_branches=M, fused=True, probe_cost=0, token_budget=0)
    state = K.make_state(1, M)
    K.reset_episode(state, 0, int(search.ep_question[e]), search.ep_order[e])
    gold = int(search.data.gold_ids[search.ep_question[e]])
    labels, gen = {}, _labels()

    def lab(a):
        if a not in labels:
            labels[a] = next(gen)
        return labels[a]

    seqs: dict[int, list] = {}
    opened_at, kinds = {}, {}
    opens = advances = samples = 0
    committed = None
    for t, a in enumerate(acts):
        a = int(a)
        K.step_episode(state, search.data, params, 0, a)
        if a in (A.BRANCH, A.SAMPLE):
            p = int(state.cursor[0]) - 1
            opened_at[p] = t
            kinds[p] = "full read" if a == A.SAMPLE else "probed"
            seqs[p] = [lab(int(state.latest[0, p]))]
            opens += a == A.BRANCH
            samples += a == A.SAMPLE
        elif A.NUM_GLOBAL_ACTIONS <= a < A.NUM_GLOBAL_ACTIONS + M:
            p = a - A.NUM_GLOBAL_ACTIONS
            seqs[p].append(lab(int(state.latest[0, p])))
            advances += 1
        elif state.done[0]:
            committed = int(state.answer[0])
    gold_label = labels.get(gold)
    ok = bool(ep["correct"][e])
    head = (f"### {store.name}, question {q}, shuffle seed {search.seeds[r]}, beta={beta:g}: "
            f"{'CORRECT' if ok else 'WRONG'} ({why})\n"
            f"tokens {int(ep['cost'][e]):,}; {len(seqs)} branches opened ({opens} probed, {samples} "
            f"full reads), {advances} probe_more calls, {len(acts) - 1} calls in total. Answers are "
            f"labelled A, B, ... in order of first appearance; ")
    if gold_label is None:
        head += "the correct answer never appeared.\n"
    else:
        head += f"the correct answer is {gold_label}.\n"
    shown = labels.get(committed, "-") if committed is not None and committed >= 0 else "None"
    head += f"committed: {shown}{' (correct)' if ok else ''}\n"
    tally: dict = {}
    for p in sorted(seqs):
        tally[seqs[p][-1]] = tally.get(seqs[p][-1], 0) + 1
    top = sorted(tally.items(), key=lambda kv: -kv[1])[:8]
    head += ("latest answer per opened branch at the end: "
             + ", ".join(f"{k}x{v}" for k, v in top) + (" ..." if len(tally) > 8 else "") + "\n")
    lines = []
    for p in sorted(seqs):
        s = seqs[p]
        runs, prev, cnt = [], None, 0
        for x in s + [None]:
            if x == prev:
                cnt += 1
                continue
            if prev is not None:
                runs.append(prev if cnt == 1 else f"{prev}x{cnt}")
            prev, cnt = x, 1
        fin = bool(state.flags[0, p] & K.FINISHED) if kinds[p] == "probed" else True
        status = "finished" if fin else "stopped"
        seq = " ".join(runs)
        if len(seq) > 160:
            seq = seq[:160].rsplit(" ", 1)[0] + " ..."
        lines.append(f"  branch {p} (opened at call {opened_at[p]}, {kinds[p]}, {len(s)} answers, "
                     f"{status}, {int(state.ledger[0, p]):,} tokens): {seq}")
    body = "\n".join(lines)
    text = head + body
    if len(text) > max_chars:
        text = text[:max_chars - 40].rsplit("\n", 1)[0] + "\n  [... more branches omitted]"
    return text


def _monotone_verdict(names: list, per_beta: list) -> dict:
    """Is mean token use non-decreasing in beta, per store and on average?"""
    pts = sorted(per_beta, key=lambda p: p["beta"])
    violations = []
    for name in names + ["mean"]:
        for a, b in zip(pts, pts[1:]):
            ta = a["tokens"] if name == "mean" else a["stores"][name]["tokens"]
            tb = b["tokens"] if name == "mean" else b["stores"][name]["tokens"]
            if tb < ta:
                violations.append(f"{name}: tokens fall from {ta:,.0f} at beta={a['beta']:g} to "
                                  f"{tb:,.0f} at beta={b['beta']:g}")
    return {"ok": not violations, "violations": violations}


def evaluate_controller(code: str, search: SearchSet, betas: Sequence[float] = DEFAULT_BETAS,
                        limits: SandboxLimits | None = None, executor: Executor | None = None,
                        keep_episodes: bool = True, parts: Sequence[SearchSet] | None = None,
                        on_job=None, python_layer: str = "full",
                        betas_per_job: int = 1) -> ControllerEvaluation:
    """Evaluate controller source ``code`` in the sandbox on ``search`` at every beta.

    One child per group of ``betas_per_job`` consecutive betas and part (``parts``:
    :class:`SearchSet` objects over consecutive groups of ``search``'s stores, with the same seeds
    -- e.g. one per store; default: ``[search]``), run on ``executor`` when given, else on a
    private thread pool. The first failure (in beta, then part order) fails the candidate and
    cancels the other jobs. ``on_job()`` is called as each job ends.
    ``python_layer`` other than ``"full"`` (tests of the lower layers, see
    :func:`~tts_gym.discovery.sandbox.runner.run_job`) skips the static rules.
    """
    limits = limits or SandboxLimits()
    betas = [float(b) for b in betas]
    names = search.names
    parts = list(parts) if parts is not None else [search]
    if [n for p in parts for n in p.names] != names or any(p.seeds != search.seeds for p in parts):
        raise ValueError("parts must split the search stores in order, with the same seeds")
    limits.confinement()                     # refuse before anything runs
    t0 = time.monotonic()
    try:
        if python_layer == "full":
            check_source(code)
    except SyntaxError as exc:
        return ControllerEvaluation(False, betas, names, "syntax",
                                    f"SyntaxError: {exc.msg} (line {exc.lineno})"
                                    + (f"\n    {exc.text.rstrip()}" if exc.text else ""))
    except ControllerRejected as exc:
        return ControllerEvaluation(False, betas, names, "rejected", str(exc))
    except (RecursionError, MemoryError, ValueError) as exc:
        return ControllerEvaluation(False, betas, names, "rejected",
                                    f"the source cannot be parsed: {type(exc).__name__}: {exc}")
    cancel = threading.Event()
    own = executor is None
    pool = executor or ThreadPoolExecutor(max_workers=min(len(betas) * len(parts), os.cpu_count() or 1))
    size = max(1, int(betas_per_job))
    groups = [tuple(betas[i:i + size]) for i in range(0, len(betas), size)]
    keys = [(g, pi) for g in groups for pi in range(len(parts))]
    results: dict = {}
    failed: JobResult | None = None
    failed_key = None                        # (betas of the failed job, part)
    try:
        futs = []
        for g, pi in keys:
            f = pool.submit(run_job, parts[pi], code, list(g), limits, cancel=cancel,
                            python_layer=python_layer)
            if on_job is not None:
                f.add_done_callback(lambda _f: on_job())
            futs.append(f)
        for (g, pi), f in zip(keys, futs):
            if failed is not None:
                f.cancel()
                continue
            res = f.result()
            if not res.ok:
                results[(g[0], pi)] = res
                failed, failed_key = res, (g, pi)
                cancel.set()
                continue
            try:
                for b, one in zip(g, _split_betas(res, parts[pi].num_episodes, len(g))):
                    results[(b, pi)] = one
            except ValueError as exc:
                failed = JobResult(False, "integrity", str(exc), layers=res.layers)
                failed_key = (g, pi)
                results[(g[0], pi)] = failed
                cancel.set()
    finally:
        if own:
            pool.shutdown(wait=True)
    ev = ControllerEvaluation(True, betas, names)
    ev.seconds = time.monotonic() - t0
    for res in results.values():
        ev.layers = res.layers or ev.layers
        if res.stdout and not ev.stdout:
            ev.stdout = res.stdout
    if failed is not None:
        ev.ok, ev.error_kind, ev.error = False, failed.error_kind, failed.error
        group, pi = failed_key
        if failed.failed_episode is not None:
            ev.failed_episode = parts[pi].describe_episode(list(group), failed.failed_episode)
        if failed.stdout:
            ev.stdout = failed.stdout
        return ev
    for b in betas:
        try:
            combined = _combine([results[(b, pi)] for pi in range(len(parts))],
                                [p.num_episodes for p in parts])
            point, episodes = _score(search, b, combined)
        except Exception as exc:  # noqa: BLE001 - the arrays came from the sandbox
            ev.ok, ev.error_kind, ev.error = False, "integrity", (
                str(exc) if isinstance(exc, ValueError) else
                f"integrity check failed: {type(exc).__name__}: {exc}")
            return ev
        ev.per_beta.append(point)
        if keep_episodes:
            ev.episodes[b] = episodes
    ev.monotone = _monotone_verdict(names, ev.per_beta)
    return ev


def _split_betas(res: JobResult, n: int, count: int) -> list[JobResult]:
    """The results of a job over ``count`` betas (``n`` episodes each, beta-major) as one
    :class:`JobResult` per beta (offsets re-based)."""
    if count == 1:
        return [res]
    a = res.arrays
    for k in ("actions", "offsets", "answers", "costs"):
        if k not in a:
            raise ValueError(f"result misses the {k!r} array")
    o = a["offsets"]
    if (a["answers"].shape != (n * count,) or a["costs"].shape != (n * count,)
            or o.shape != (n * count + 1,) or o[0] != 0 or o[-1] != a["actions"].shape[0]
            or np.any(np.diff(o) < 0)):
        raise ValueError("integrity check failed: inconsistent result arrays")
    out = []
    for k in range(count):
        lo, hi = k * n, (k + 1) * n
        ob = o[lo:hi + 1]
        out.append(dataclasses.replace(res, arrays={
            "actions": a["actions"][ob[0]:ob[-1]], "offsets": ob - ob[0],
            "answers": a["answers"][lo:hi], "costs": a["costs"][lo:hi]}))
    return out


def _combine(results: Sequence[JobResult], sizes: Sequence[int]) -> JobResult:
    """Concatenate the result arrays of consecutive parts (offsets re-based), checking each part."""
    acts, offs, answers, costs = [], [np.zeros(1, np.int64)], [], []
    base = 0
    for res, n in zip(results, sizes):
        a = res.arrays
        for k in ("actions", "offsets", "answers", "costs"):
            if k not in a:
                raise ValueError(f"result misses the {k!r} array")
        o = a["offsets"]
        if (a["answers"].shape != (n,) or a["costs"].shape != (n,) or o.shape != (n + 1,)
                or o[0] != 0 or o[-1] != a["actions"].shape[0]):
            raise ValueError("integrity check failed: inconsistent result arrays")
        acts.append(a["actions"])
        offs.append(a["offsets"][1:].astype(np.int64) + base)
        base += int(a["actions"].shape[0])
        answers.append(a["answers"])
        costs.append(a["costs"])
    return JobResult(True, arrays={
        "actions": np.concatenate(acts), "offsets": np.concatenate(offs),
        "answers": np.concatenate(answers), "costs": np.concatenate(costs)})


def _score(search: SearchSet, beta: float, res: JobResult) -> tuple[dict, dict]:
    arr = res.arrays
    for k in ("actions", "offsets", "answers", "costs"):
        if k not in arr:
            raise ValueError(f"result misses the {k!r} array")
    E = search.num_episodes
    if arr["answers"].shape != (E,) or arr["costs"].shape != (E,):
        raise ValueError(f"the child reported {arr['answers'].shape[0]} episodes, expected {E}")
    rep = replay_logs(search, arr["actions"], arr["offsets"])
    bad = np.flatnonzero(rep["code"] != 0)
    if bad.size:
        e = int(bad[0])
        c = int(rep["code"][e])
        why = {REPLAY_AFTER_TERMINAL: "actions after the answer",
               REPLAY_NO_TERMINAL: "no answering action"}.get(c) or K.ERROR_MESSAGES.get(c, str(c))
        raise ValueError(f"integrity check failed: the action log of episode {e} does not re-play "
                         f"({why})")
    if not np.array_equal(rep["cost"], arr["costs"]) or not np.array_equal(rep["answer"], arr["answers"]):
        raise ValueError("integrity check failed: the child's costs or answers differ from the re-play")
    stores = {}
    for si, name in enumerate(search.names):
        m = search.ep_store == si
        n = int(m.sum())
        c = int(rep["correct"][m].sum())
        tt = int(rep["cost"][m].sum())
        stores[name] = {"accuracy": round(100.0 * c / n, 4), "tokens": tt / n, "correct": c,
                        "total_tokens": tt, "episodes": n}
    point = {"beta": beta,
             "accuracy": float(np.mean([v["accuracy"] for v in stores.values()])),
             "tokens": float(np.mean([v["tokens"] for v in stores.values()])),
             "stores": stores}
    rep["actions"], rep["offsets"] = arr["actions"], arr["offsets"]
    return point, rep


def run_unrestricted_probe(search: SearchSet, source: str, limits: SandboxLimits,
                           betas: Sequence[float] = (0.0,), audit_hook: bool = False) -> JobResult:
    """Run ``source`` as raw Python (full builtins, no static rules; the audit hook only with
    ``audit_hook``) inside the confined per-episode processes: the tests check the lower layers on
    their own with it. The source defines a controller as usual; what it prints comes back in
    ``stdout``."""
    return run_job(search, source, list(betas), limits,
                   python_layer="hook" if audit_hook else "none")


# cache entries also keyed on the compiled layer's sources (see tts_gym.core.numba_cache)
from tts_gym.core.numba_cache import bind_module_cache  # noqa: E402

bind_module_cache(globals())
