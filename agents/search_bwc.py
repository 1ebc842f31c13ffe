"""Search the brevity-weighted consensus controller (``bwc``) on the AIME24 search stores.

    python agents/search_bwc.py --ship tts_gym/policies/brevity_consensus.json

A non-LLM proposer (MAP-Elites over token cost: an archive keeps, per log-spaced token bin, the most
accurate configuration found; children are Gaussian mutations and uniform crossovers of archive
elites in the unit cube of :data:`SPACE`) over the 17 parameters of
:mod:`tts_gym.policies.brevity_consensus`. Every generation is ONE compiled call
(:func:`tts_gym.policies.compiled.run_compiled`) over all children x search episodes.

* Episodes: the reference protocol (CPython shuffle seeds) on the search stores only (``--benchmark``,
  AIME24 of the four Qwen3 models); during the search a subsample of the seeds (``--seeds``), all
  100 for the final re-evaluation. The held-out benchmarks are never loaded here.
* Cost of a configuration: its tokens per question on the worst search store relative to CMC
  beta=0.5's on that store (``max_s tokens_s / cmc05_s``; 1 = CMC beta=0.5's budget on every store).
  The held-out stores are harder; a per-store budget keeps a policy that spends more on hard
  questions from looking cheap on average.
* Objective (``frontier_gain``, higher is better): the mean, over ``--budgets`` cost budgets
  log-spaced across CMC's range (its beta = 0 .. 1 costs), of the best accuracy (mean over the
  search stores) found within the budget minus CMC's best accuracy within the same budget, on the
  same episodes (percentage points).
* Selection (after the search): the best ``--final-candidates`` of each bin (and the best within each
  target's cap) are re-evaluated on all 100 seeds; for each target (CMC beta=0.5, CMC beta=1, 15 % of
  SC@64) among the candidates whose tokens on EVERY search store stay within ``--margin`` x the
  target's tokens on that store, the one with the best lower bound (``--lcb-z`` standard errors
  over the questions) of its per-question accuracy gain on the target's reference,
  plus the Pareto front (mean tokens, mean accuracy) of the re-evaluated candidates as presets.
* Output: ``--out`` (history.jsonl of every evaluated configuration, state.json checkpoint; rerun with
  ``--resume`` after a stop), and with ``--ship PATH`` the shipped configuration file read by the
  policy module (default configuration = the CMC beta=0.5 target).
"""
from __future__ import annotations

import ast
import inspect
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

MODELS = ("Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B")
HELD_OUT = ("aime25", "hmmt25")


@dataclass
class Args:
    data: str | None = None
    """replay data: directory of AutoTTS JSON or HDF5 file (default $TTS_GYM_DATA, else
    ../shared/autotts-replay); 'synthetic' for the embedded synthetic store"""
    models: tuple[str, ...] = MODELS
    """models whose search-benchmark stores are searched on"""
    benchmark: str = "aime24"
    """search benchmark (AIME25/HMMT25 are held out and refused)"""
    questions: str = "all"
    """search on 'all' questions, or on the 'even' / 'odd' question indices only; the selected
    targets are then also scored on the other half (a check of the selection on unseen questions)"""
    seeds: int = 20
    """reference shuffle seeds used during the search: 0, s, 2s, ... with stride 100 // seeds"""
    final_seeds: int = 100
    """seeds 0..N-1 for the final re-evaluation of the candidates"""
    init: int = 512
    """random configurations evaluated before the first generation"""
    generations: int = 80
    """MAP-Elites generations"""
    population: int = 96
    """children per generation (one compiled call)"""
    sigma: float = 0.12
    """mutation step in the unit cube"""
    crossover: float = 0.3
    """share of children made by uniform crossover of two elites before mutation"""
    bins: int = 40
    """log-spaced cost bins of the archive"""
    cost_range: tuple[float, float] = (0.03, 5.0)
    """relative costs spanned by the archive bins (cost = max over the search stores of tokens per
    question / CMC beta=0.5's tokens per question on that store)"""
    budgets: int = 16
    """cost budgets of the objective, log-spaced over CMC's beta = 0 .. 1 costs"""
    final_candidates: int = 3
    """best configurations per bin re-evaluated on all final seeds"""
    target_candidates: int = 16
    """also re-evaluated: the best configurations within each selection target's cap"""
    margin: float = 0.9
    """selection: tokens on every search store <= margin x the target's tokens on that store"""
    lcb_z: float = 1.0
    """selection score: mean per-question accuracy difference to the target's reference minus
    lcb_z standard errors over the questions (0: the plain mean); favours gains spread over many
    questions rather than a few"""
    seed: int = 0
    """proposer RNG seed"""
    workers: int | None = None
    """compiled worker threads (default: numba's thread count)"""
    out: str = "runs/search_bwc"
    """output folder: history.jsonl, state.json (checkpoint), result.json"""
    resume: bool = False
    """continue from the checkpoint in --out"""
    ship: str | None = None
    """write the shipped configuration file here (e.g. tts_gym/policies/brevity_consensus.json)"""
    progress: bool = True
    """progress bar on a terminal"""


# ---------------------------------------------------------------------------------------------
# the search space: unit cube -> parameters
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dim:
    name: str
    lo: float
    hi: float
    integer: bool = False
    log: bool = False
    off: float = 0.0     # share of the unit interval at the bottom that maps to the value 0 (off)

    def decode(self, u: float):
        u = min(1.0, max(0.0, float(u)))
        if self.off > 0:
            if u < self.off:
                return 0 if self.integer else 0.0
            u = (u - self.off) / (1.0 - self.off)
        if self.log:
            x = math.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))
        else:
            x = self.lo + u * (self.hi - self.lo)
        return int(round(x)) if self.integer else round(x, 4)


SPACE = (
    Dim("n_init", 1, 16, integer=True, log=True),
    Dim("max_width", 2, 64, integer=True, log=True),
    Dim("widen_burst", 0, 16, integer=True),
    Dim("widen_after", 0, 40, integer=True),
    Dim("widen_conf", 0.5, 1.01),
    Dim("alpha", 0.0, 4.0),
    Dim("live_weight", 0.02, 1.0, log=True, off=0.4),
    Dim("lead_slack", 0.0, 3.0),
    Dim("conf_thresh", 0.5, 1.01),
    Dim("min_pool", 1, 16, integer=True),
    Dim("patience", 1, 32, integer=True, off=0.3),
    Dim("keep_alive", 0, 6, integer=True),
    Dim("length_cap", 1.0, 6.0, off=0.4),
    Dim("burst_aligned", 1, 4, integer=True),
    Dim("max_rounds", 8, 200, integer=True, log=True),
    Dim("score_count", 0.02, 5.0, log=True, off=0.3),
    Dim("score_ever", 0.05, 5.0, log=True, off=0.3),
)


def decode(u: np.ndarray) -> dict:
    p = {d.name: d.decode(x) for d, x in zip(SPACE, u)}
    p["max_width"] = max(p["max_width"], p["n_init"])
    return p


# ---------------------------------------------------------------------------------------------
# evaluation on the search episodes
# ---------------------------------------------------------------------------------------------

class SearchEpisodes:
    """The search stores' reference episodes for a set of seeds, packed once."""

    def __init__(self, stores, seeds, workers=None):
        from tts_gym.evaluation.protocol import ProtocolBatch
        self.batch = ProtocolBatch(stores, seeds)
        self.names = [s.name for s in stores]
        self.workers = workers

    def run(self, policy: str, rows: np.ndarray, per_question: bool = False):
        """Per-store accuracy (%) and tokens per question, ``[G, stores]`` each; with
        ``per_question`` also the accuracy (%) of every question of every store, ``[G, questions]``."""
        from tts_gym.policies.compiled import run_compiled
        b = self.batch
        out = run_compiled(b.data, policy, [], b.questions, b.perms, tasks=b.episode_order,
                           policy_params=np.asarray(rows, np.float64), workers=self.workers)
        acc = np.stack([out["correct"][:, sl].mean(axis=1) * 100.0 for sl in b.slices], axis=1)
        tok = np.stack([out["cost"][:, sl].mean(axis=1) for sl in b.slices], axis=1)
        if not per_question:
            return acc, tok
        S, G = len(b.seeds), acc.shape[0]
        pq = np.concatenate([out["correct"][:, sl].reshape(G, S, -1).mean(axis=1) * 100.0
                             for sl in b.slices], axis=1)
        return acc, tok, pq

    def run_params(self, policy: str, params_list, per_question: bool = False):
        from tts_gym.policies.compiled import policy_param_rows
        kernel, rows = policy_param_rows(policy, params_list)
        return self.run(kernel, rows, per_question)


def bwc_rows(params_list) -> np.ndarray:
    from tts_gym.policies.brevity_consensus import PARAM_NAMES, normalize
    return np.asarray([[float(normalize(p)[k]) for k in PARAM_NAMES] for p in params_list],
                      np.float64).reshape(len(params_list), len(PARAM_NAMES))


def best_within(tokens: np.ndarray, acc: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """For each budget, the best accuracy among points with tokens <= budget (nan if none)."""
    out = np.full(len(budgets), np.nan)
    order = np.argsort(tokens)
    t, a = tokens[order], np.maximum.accumulate(acc[order]) if len(acc) else acc
    for i, b in enumerate(budgets):
        k = np.searchsorted(t, b, side="right")
        if k > 0:
            out[i] = a[k - 1]
    return out


def frontier_gain(tokens, acc, ref_tokens, ref_acc, budgets) -> float:
    """Mean over budgets of (best accuracy within budget) - (reference's best within budget); a
    budget with no point of ours counts as the reference's cheapest accuracy deficit (0 - ref)."""
    mine = best_within(np.asarray(tokens, float), np.asarray(acc, float), budgets)
    ref = best_within(np.asarray(ref_tokens, float), np.asarray(ref_acc, float), budgets)
    mine = np.where(np.isnan(mine), 0.0, mine)
    ref = np.where(np.isnan(ref), 0.0, ref)
    return float(np.mean(mine - ref))


# ---------------------------------------------------------------------------------------------
# the archive (MAP-Elites over log tokens)
# ---------------------------------------------------------------------------------------------

class Archive:
    def __init__(self, bins: int, lo: float, hi: float):
        self.edges = np.exp(np.linspace(math.log(lo), math.log(hi), bins + 1))
        self.acc = np.full(bins, -np.inf)
        self.tok = np.full(bins, np.inf)
        self.u = [None] * bins

    def bin_of(self, tokens: float) -> int:
        return int(np.clip(np.searchsorted(self.edges, tokens, side="right") - 1, 0, len(self.acc) - 1))

    def insert(self, u, acc: float, tok: float) -> bool:
        k = self.bin_of(tok)
        if acc > self.acc[k] or (acc == self.acc[k] and tok < self.tok[k]):
            self.acc[k], self.tok[k], self.u[k] = acc, tok, np.asarray(u, float).tolist()
            return True
        return False

    def filled(self) -> list[int]:
        return [k for k, u in enumerate(self.u) if u is not None]

    def state(self) -> dict:
        return {"edges": self.edges.tolist(), "acc": self.acc.tolist(), "tok": self.tok.tolist(),
                "u": self.u}

    @classmethod
    def from_state(cls, s: dict) -> "Archive":
        a = cls(len(s["acc"]), 1.0, 2.0)
        a.edges = np.asarray(s["edges"])
        a.acc = np.asarray(s["acc"], float)
        a.tok = np.asarray(s["tok"], float)
        a.u = [None if u is None else list(u) for u in s["u"]]
        return a


def propose(archive: Archive, rng: np.random.Generator, n: int, sigma: float, crossover: float
            ) -> np.ndarray:
    """``n`` children in the unit cube: a parent drawn uniformly from the filled bins, with
    probability ``crossover`` crossed uniformly with a second one, then Gaussian-mutated on each
    coordinate with probability 3/d (at least one), occasionally resampled (1/d)."""
    d = len(SPACE)
    filled = archive.filled()
    kids = np.empty((n, d))
    for i in range(n):
        x = np.asarray(archive.u[filled[rng.integers(len(filled))]], float)
        if rng.random() < crossover and len(filled) > 1:
            y = np.asarray(archive.u[filled[rng.integers(len(filled))]], float)
            x = np.where(rng.random(d) < 0.5, x, y)
        m = rng.random(d) < 3.0 / d
        if not m.any():
            m[rng.integers(d)] = True
        x = np.where(m, x + rng.normal(0.0, sigma, d), x)
        r = rng.random(d) < 1.0 / d
        x = np.where(r, rng.random(d), x)
        kids[i] = np.clip(x, 0.0, 1.0)
    return kids


# ---------------------------------------------------------------------------------------------
# the program
# ---------------------------------------------------------------------------------------------

def load_search_stores(args: Args):
    from tts_gym.data.resolve import resolve_store
    if args.benchmark.lower() in HELD_OUT:
        raise SystemExit(f"search_bwc: {args.benchmark} is a held-out benchmark; search on aime24")
    data = args.data
    if data is None:
        data = os.environ.get("TTS_GYM_DATA")
        if data is None:
            p = Path(__file__).resolve().parents[1].parent / "shared" / "autotts-replay"
            data = str(p) if p.is_dir() else "synthetic"
    if data == "synthetic":
        return [resolve_store("synthetic")]
    return [resolve_store(data, m, args.benchmark) for m in args.models]


def question_half(store, half: str):
    """The store restricted to its even / odd question indices (``"all"``: unchanged)."""
    import dataclasses
    if half == "all":
        return store
    if half not in ("even", "odd"):
        raise SystemExit(f"search_bwc: --questions must be all, even or odd, got {half!r}")
    qs = np.arange(store.num_questions)[(0 if half == "even" else 1)::2]
    take = lambda name: np.ascontiguousarray(getattr(store, name)[qs])  # noqa: E731
    return dataclasses.replace(
        store, benchmark=f"{store.benchmark}[{half}]",
        **{k: take(k) for k in ("probe_ids", "num_probes", "branch_tokens", "final_ids",
                                "num_branches", "probe_interval", "gold_ids")},
        answer_tables=tuple(store.answer_tables[q] for q in qs),
        gold_answers=tuple(store.gold_answers[q] for q in qs),
        questions=tuple(store.questions[q] for q in qs))


def search_seeds(n: int) -> list[int]:
    n = max(1, min(100, int(n)))
    return list(range(0, 100, 100 // n))[:n]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def references(ep: SearchEpisodes) -> dict:
    """CMC's beta curve and SC@64 on the given episodes: per-store tokens and accuracies."""
    betas = [round(0.1 * i, 1) for i in range(11)]
    ca, ct = ep.run_params("cmc", [{"beta": b} for b in betas])
    sa, stt = ep.run_params("sc", [{"max_samples": 64}])
    return {"cmc_betas": betas, "cmc_acc": ca.tolist(), "cmc_tok": ct.tolist(),
            "sc64_acc": sa[0].tolist(), "sc64_tok": stt[0].tolist()}


def relative_cost(tok: np.ndarray, ref: dict) -> np.ndarray:
    """``max_s tok[:, s] / cmc05[s]``: tokens on the worst store relative to CMC beta=0.5's."""
    cmc05 = np.asarray(ref["cmc_tok"])[ref["cmc_betas"].index(0.5)]
    return (np.atleast_2d(tok) / cmc05[None, :]).max(axis=1)


def objective_budgets(ref: dict, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(budgets, CMC costs, CMC mean accuracies)``: ``n`` cost budgets log-spaced over CMC's."""
    c = relative_cost(np.asarray(ref["cmc_tok"]), ref)
    a = np.asarray(ref["cmc_acc"]).mean(axis=1)
    return np.exp(np.linspace(math.log(c.min()), math.log(c.max()), n)), c, a


def run(args: Args) -> dict:
    from tqdm.auto import tqdm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    all_stores = load_search_stores(args)
    stores = [question_half(s, args.questions) for s in all_stores]
    ep = SearchEpisodes(stores, search_seeds(args.seeds), args.workers)
    ref = references(ep)
    budgets, cmc_cost, cmc_acc = objective_budgets(ref, args.budgets)

    state_path, hist_path = out / "state.json", out / "history.jsonl"
    rng = np.random.default_rng(args.seed)
    archive = Archive(args.bins, *args.cost_range)
    gen, curve, costs, accs = -1, [], [], []
    if args.resume and state_path.exists():
        s = json.loads(state_path.read_text())
        archive = Archive.from_state(s["archive"])
        rng.bit_generator.state = s["rng"]
        gen, curve, costs, accs = s["generation"], s["curve"], s["costs"], s["accs"]
        with open(hist_path) as fh:   # drop a generation written after the last checkpoint
            keep = [line for line in fh if line.strip() and json.loads(line)["generation"] <= gen]
        _atomic_write(hist_path, "".join(keep))

    def evaluate_batch(U: np.ndarray, g: int) -> None:
        params = [decode(u) for u in U]
        acc, tok = ep.run("bwc", bwc_rows(params))
        cost = relative_cost(tok, ref)
        lines = []
        for u, p, a, t, c in zip(U, params, acc, tok, cost):
            archive.insert(u, float(a.mean()), float(c))
            costs.append(float(c))
            accs.append(float(a.mean()))
            lines.append(json.dumps({"generation": g, "u": np.round(u, 6).tolist(), "params": p,
                                     "acc": np.round(a, 4).tolist(), "tok": np.round(t, 1).tolist(),
                                     "cost": round(float(c), 5)}))
        with open(hist_path, "a") as fh:
            fh.write("\n".join(lines) + "\n")

    def checkpoint() -> None:
        _atomic_write(state_path, json.dumps({
            "archive": archive.state(), "rng": rng.bit_generator.state, "generation": gen,
            "curve": curve, "costs": costs, "accs": accs, "args": asdict(args)}))

    if gen < 0:   # generation 0: random configurations
        if hist_path.exists():
            hist_path.unlink()
        evaluate_batch(rng.random((args.init, len(SPACE))), 0)
        curve.append(frontier_gain(costs, accs, cmc_cost, cmc_acc, budgets))
        gen = 0
        checkpoint()
    bar = tqdm(total=args.generations, initial=gen, desc="search", disable=not args.progress,
               dynamic_ncols=True, file=sys.stderr)
    while gen < args.generations:
        U = propose(archive, rng, args.population, args.sigma, args.crossover)
        gen += 1
        evaluate_batch(U, gen)
        curve.append(frontier_gain(costs, accs, cmc_cost, cmc_acc, budgets))
        checkpoint()
        bar.update(1)
        bar.set_postfix_str(f"frontier gain {curve[-1]:+.3f} pp, {len(archive.filled())} bins")
    bar.close()
    result = select(args, stores, archive, ref, curve, hist_path)
    if args.questions != "all":   # the selected targets on the other half of the questions
        other = [question_half(s, "odd" if args.questions == "even" else "even") for s in all_stores]
        result["other_half"] = validate(args, other, result)
    _atomic_write(out / "result.json", json.dumps(result, indent=1))
    if args.ship:
        _atomic_write(Path(args.ship), json.dumps(shipped_file(args, result), indent=1) + "\n")
    return result


TARGETS = {"cmc-beta0.5": ("cmc", {"beta": 0.5}, 1.0), "cmc-beta1": ("cmc", {"beta": 1.0}, 1.0),
           "sc64-15pct": ("sc", {"max_samples": 64}, 0.15)}
"""Selection targets: (reference policy, its parameters, share of its tokens allowed)."""


def target_caps(ref: dict) -> dict[str, np.ndarray]:
    """Per-store token caps of the selection targets (before ``margin``)."""
    tok = np.asarray(ref["cmc_tok"])
    return {"cmc-beta0.5": tok[ref["cmc_betas"].index(0.5)],
            "cmc-beta1": tok[ref["cmc_betas"].index(1.0)],
            "sc64-15pct": 0.15 * np.asarray(ref["sc64_tok"])}


def lcb(d: np.ndarray, z: float) -> np.ndarray:
    """Mean minus ``z`` standard errors of per-question differences ``d`` ``[G, questions]``."""
    n = d.shape[1]
    return d.mean(axis=1) - z * d.std(axis=1, ddof=1) / np.sqrt(n)


def select(args: Args, stores, archive: Archive, ref: dict, curve: list, hist_path: Path) -> dict:
    """Re-evaluate the best candidates on all final seeds and pick one per target."""
    hist = [json.loads(line) for line in hist_path.read_text().splitlines() if line.strip()]
    h_acc = np.asarray([np.mean(h["acc"]) for h in hist])
    h_tok = np.asarray([h["tok"] for h in hist])
    picks: list[int] = []
    by_bin: dict[int, list[int]] = {}
    for i, h in enumerate(hist):                       # the best few of every cost bin
        by_bin.setdefault(archive.bin_of(h["cost"]), []).append(i)
    for k in sorted(by_bin):
        picks += sorted(by_bin[k], key=lambda i: -h_acc[i])[:args.final_candidates]
    for cap in target_caps(ref).values():              # the best within each target's cap
        ok = np.flatnonzero(np.all(h_tok <= 1.03 * args.margin * cap[None, :], axis=1))
        picks += ok[np.argsort(-h_acc[ok], kind="stable")][:args.target_candidates].tolist()
    cands, seen = [], set()
    for i in picks:
        key = json.dumps(hist[i]["params"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            cands.append(hist[i]["params"])
    full = SearchEpisodes(stores, list(range(args.final_seeds)), args.workers)
    fref = references(full)
    acc, tok, pq = full.run("bwc", bwc_rows(cands), per_question=True)
    chosen = {}
    for name, cap in target_caps(fref).items():
        ok = np.all(tok <= args.margin * cap[None, :], axis=1)
        if ok.any():
            fam, params, _share = TARGETS[name]
            _a, _t, ref_pq = full.run_params(fam, [params], per_question=True)
            score = lcb(pq - ref_pq, args.lcb_z)
            i = int(np.flatnonzero(ok)[np.argmax(score[ok])])
            d = pq[i] - ref_pq[0]
            chosen[name] = {"params": cands[i], "acc": acc[i].round(3).tolist(),
                            "tok": tok[i].round(1).tolist(), "acc_mean": round(float(acc[i].mean()), 3),
                            "tok_mean": round(float(tok[i].mean()), 1),
                            "cap_tok": (args.margin * cap).round(1).tolist(),
                            "diff_vs_reference": round(float(d.mean()), 3),
                            "diff_se_questions": round(float(d.std(ddof=1) / np.sqrt(d.size)), 3),
                            "selection_score": round(float(score[i]), 3)}
    am, tm = acc.mean(1), tok.mean(1)                  # Pareto front (mean tokens, mean accuracy)
    front, best = [], -np.inf
    for i in np.argsort(tm, kind="stable"):
        if am[i] > best:
            best = am[i]
            front.append(int(i))
    budgets, cmc_cost, cmc_acc = objective_budgets(fref, args.budgets)
    return {
        "stores": [s.name for s in stores], "search_seeds": search_seeds(args.seeds),
        "final_seeds": args.final_seeds, "curve": curve, "references_final": fref,
        "targets": chosen, "candidates": len(cands),
        "frontier": [{"params": cands[i], "acc_mean": round(float(am[i]), 3),
                      "tok_mean": round(float(tm[i]), 1)} for i in front],
        "frontier_gain_final": frontier_gain(relative_cost(tok, fref), am, cmc_cost, cmc_acc, budgets),
    }


def validate(args: Args, stores, result: dict) -> dict:
    """Mean accuracy and tokens of each selected target and of its CMC / SC@64 reference on
    other stores (all final seeds)."""
    ep = SearchEpisodes(stores, list(range(args.final_seeds)), args.workers)
    ref = references(ep)
    names = list(result["targets"])
    acc, tok = ep.run("bwc", bwc_rows([result["targets"][n]["params"] for n in names]))
    out = {"stores": [s.name for s in stores]}
    for i, n in enumerate(names):
        out[n] = {"acc_mean": round(float(acc[i].mean()), 3), "tok_mean": round(float(tok[i].mean()), 1)}
    ca, ct = np.asarray(ref["cmc_acc"]).mean(1), np.asarray(ref["cmc_tok"]).mean(1)
    for b in (0.5, 1.0):
        k = ref["cmc_betas"].index(b)
        out[f"CMC beta={b:g}"] = {"acc_mean": round(float(ca[k]), 3), "tok_mean": round(float(ct[k]), 1)}
    out["SC@64"] = {"acc_mean": round(float(np.mean(ref["sc64_acc"])), 3),
                    "tok_mean": round(float(np.mean(ref["sc64_tok"])), 1)}
    return out


def shipped_file(args: Args, result: dict) -> dict:
    """The configuration file read by :mod:`tts_gym.policies.brevity_consensus`."""
    presets = {name: t["params"] for name, t in result["targets"].items()}
    front = result["frontier"]
    if len(front) > 12:   # thin the front to 12 points, evenly in log tokens
        lt = np.log([f["tok_mean"] for f in front])
        keep = sorted({int(np.argmin(np.abs(lt - x))) for x in np.linspace(lt[0], lt[-1], 12)})
        front = [front[i] for i in keep]
    for i, f in enumerate(front):
        presets[f"front-{i + 1:02d}"] = f["params"]
    default = "cmc-beta0.5" if "cmc-beta0.5" in presets else next(iter(presets))
    return {
        "default": default,
        "presets": presets,
        "selection": {
            "stores": result["stores"], "final_seeds": result["final_seeds"],
            "rule": f"among the re-evaluated candidates with tokens on every search store <= "
                    f"{args.margin:g} x the target's tokens on that store, the largest mean "
                    f"per-question accuracy difference to the target's reference minus "
                    f"{args.lcb_z:g} standard errors over the questions",
            "targets": {k: {kk: v[kk] for kk in ("acc_mean", "tok_mean", "acc", "tok", "cap_tok",
                                                 "diff_vs_reference", "diff_se_questions")}
                        for k, v in result["targets"].items()},
            "frontier": [{"preset": f"front-{i + 1:02d}", "acc_mean": f["acc_mean"],
                          "tok_mean": f["tok_mean"]} for i, f in enumerate(front)],
            "frontier_gain_search": result["curve"][-1],
            "curve": [round(c, 4) for c in result["curve"]],
            "frontier_gain_final_seeds": result["frontier_gain_final"],
            "command": "python agents/search_bwc.py " + " ".join(sys.argv[1:]),
            "commit": git_commit(),
            "search_args": asdict(args),
        },
    }


# ---------------------------------------------------------------------------------------------
# command line: the Args dataclass (field docstrings become the --help text)
# ---------------------------------------------------------------------------------------------

def _field_docs(cls) -> dict:
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for a, b in zip(body, body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
            docs[a.target.id] = " ".join(str(b.value.value).split())
    return docs


def parse_args(argv=None) -> Args:
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    docs = _field_docs(Args)
    for f in fields(Args):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=docs.get(f.name))
        elif isinstance(default, tuple):
            typ = type(default[0])
            p.add_argument(flag, nargs="+" if f.name == "models" else len(default), type=typ,
                           default=default, help=docs.get(f.name))
        else:
            typ = {"int | None": int, "str | None": str}.get(str(f.type), type(default) if default is not None else str)
            p.add_argument(flag, type=typ, default=default, help=docs.get(f.name))
    ns = p.parse_args(argv)
    kw = {f.name: (tuple(getattr(ns, f.name)) if isinstance(f.default, tuple) else getattr(ns, f.name))
          for f in fields(Args)}
    return Args(**kw)


def main(argv=None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    result = run(args)
    wall = time.perf_counter() - t0
    print(f"frontier gain over CMC (search seeds): {result['curve'][0]:+.3f} pp after the random "
          f"start -> {result['curve'][-1]:+.3f} pp after {len(result['curve']) - 1} generations; "
          f"{wall:.0f} s")
    for name, t in result["targets"].items():
        print(f"  {name:12s} acc {t['acc_mean']:.2f} %  tokens {t['tok_mean'] / 1000:.1f}k  {t['params']}")
    if "other_half" in result:
        print("  on the other half of the questions: " + "; ".join(
            f"{k} {v['acc_mean']:.2f} % / {v['tok_mean'] / 1000:.1f}k"
            for k, v in result["other_half"].items() if k != "stores"))
    return result


if __name__ == "__main__":
    main()
