"""Seeded synthetic replay stores with the statistics of real reasoning traces.

:func:`synthesize` builds a :class:`~tts_gym.data.store.ReplayStore` directly from numpy arrays (no
per-probe Python loop), so it scales to 100k+ questions. The generative model, fitted by eye to the
12 public AutoTTS stores (see ``data/README.md`` for the measured comparison):

* **Questions.** Each question has a difficulty ``z ~ N(0, 1)``; a branch is correct with probability
  ``sigmoid(skill - spread * z)`` (bimodal per-question accuracy, as in the real stores). The gold
  answer is an integer string ``0..999`` (AIME style).
* **Wrong answers.** Each question has its own long-tailed pool of wrong answers: a wrong branch
  draws the rank ``r`` of its answer from a Zipf law (exponent ``wrong_answer_exponent``, flatter on
  harder questions), so a few "attractor" wrong answers dominate and a long tail of one-off answers
  follows. Rank ``r`` maps to a fixed, distinct string per question (integers, ``\\frac{..}{..}``,
  decimals, surds). A small share of final answers is the literal ``"ERR"`` (unparseable).
* **Lengths.** ``log T`` is normal; wrong branches and harder questions are longer. Lengths above
  ``max_tokens`` are truncated (a spike just above it, like generations cut at the context limit; a
  truncated branch is more often wrong). The probe count is ``K = ceil(T / pf) - d`` with ``d`` drawn
  from the real distribution (0..9), clipped to ``1..max_probes``; so ``K <= ceil(T / pf)``.
* **Intermediate answers.** Each branch's final answer first appears among its probes at a random
  depth (a Beta fraction of ``K``; at the first probe for a few branches). Before that, the probes
  follow a sticky random walk (runs of ~3 probes) over the question's answer pool: wrong attractors
  (some of them "early attractors" that are rarely final), the gold (so a wrong branch may pass
  through the gold), and "ERR". From the first appearance on, most runs show the final answer and a
  few still wander. Isolated "ERR" probes appear throughout. The last probe always equals the final.
* **Unsolvable questions.** A share of the questions is beyond the model (no correct branch), so
  the gold is sometimes absent from every probe and final answer (``GOLD_ABSENT``).

Interning follows :meth:`ReplayStore.from_records` exactly: per question, branches in order, each
branch's probes then its final answer, ids in first-occurrence order. Same arguments (incl. seed)
give an identical store.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from tts_gym.data.store import (GOLD_ABSENT, MAX_BRANCHES, MAX_PROBE_INTERVAL, PAD_ID, AnswerTables,
                                ReplayStore, answer_dtype)

# Empirical distribution of d = ceil(T / pf) - K over the 46,080 branches of the 12 real stores.
_D_PROBS = np.array([7090, 20487, 10593, 4896, 1906, 630, 248, 131, 85, 14], dtype=np.float64)
_D_PROBS /= _D_PROBS.sum()
# Multipliers coprime to 999 (= 27 * 37): rank -> integer answer is a bijection for each of them.
_COPRIME = np.array([a for a in range(2, 999) if a % 3 and a % 37], dtype=np.int64)
CODE_GOLD, CODE_ERR = 0, 1  # answer codes; a wrong answer of rank r >= 1 has code r + 1
MAX_RANK = 1_000_000
DENSE_CODES = 64  # interning: codes below this use a dense (question, code) table, the rest a sort
SWITCH_RATE = 0.35  # chance per probe that the intermediate answer changes (real mean run: 2.8)
DISTRACTOR_EXTRA = 0.1  # intermediate distractors concentrate a little more than wrong finals
FIRST_BETA = (1.8, 1.0)  # depth (fraction of K) at which the final answer first appears ...
EARLY_FIRST = 0.08  # ... or at the first probe with this probability
AFTER_HIT = 0.85  # chance that a segment after the first appearance shows the final answer


def _ranks(rng: np.random.Generator, exponent: np.ndarray) -> np.ndarray:
    """Wrong-answer ranks ``r >= 1`` with ``P(R >= r) = r ** -(exponent - 1)`` (discrete Pareto).

    Rank shares for exponent 1.6: .34, .14, .08, .055, .04, ... -- the shares of the most common
    wrong final answers in the real stores (.34, .13, .08, .05, .04).
    """
    u = 1.0 - rng.random(len(exponent), dtype=np.float32)  # (0, 1]
    with np.errstate(over="ignore"):  # huge ranks overflow to inf, then clip
        r = np.floor(u ** (-1.0 / (exponent.astype(np.float32) - 1.0)))
    return np.minimum(r, MAX_RANK).astype(np.int32)


@functools.lru_cache(maxsize=1)
def _string_table() -> np.ndarray:
    """All small-rank answer strings, shared by every store (object array, built once).

    Layout: ``[0, 1000)`` integers ``v``; ``[1000, 9000)`` ``\\frac{v}{d}``; ``[9000, 17000)``
    ``v\\sqrt{d}`` (``d`` = 2..9, index ``v * 8 + d - 2``); ``[17000, 107000)`` decimals ``v.dddd``
    (90 fractional parts per ``v``). The four forms are disjoint.
    """
    ints = [str(v) for v in range(1000)]
    fracs = [f"\\frac{{{v}}}{{{d}}}" for v in range(1000) for d in range(2, 10)]
    surds = [f"{v}\\sqrt{{{d}}}" for v in range(1000) for d in range(2, 10)]
    decs = [f"{v}.{1000 + 97 * j}" for v in range(1000) for j in range(90)]
    out = np.empty(len(ints) + len(fracs) + len(surds) + len(decs), dtype=object)
    out[:] = ints + fracs + surds + decs
    return out


def _wrong_strings(golds: np.ndarray, mult: np.ndarray, shift: np.ndarray, ranks: np.ndarray,
                   salt: np.ndarray) -> np.ndarray:
    """Distinct wrong-answer strings for (question, rank) pairs, never equal to the gold (object array).

    Ranks up to 999 map to distinct integers ``v != gold`` (a per-question affine bijection) shown as
    ``v`` (80 %), ``\\frac{v}{d}`` (10 %), ``v.dddd`` (7 %) or ``v\\sqrt{d}`` (3 %); these forms are
    disjoint, so distinct ``v`` give distinct strings. Larger ranks become ``\\frac{<rank>}{\\sqrt{d}}``.
    Strings come from a shared table (no per-answer formatting, shared string objects).
    """
    r0 = ranks.astype(np.int64) - 1
    v = (golds + 1 + (mult * r0 + shift) % 999) % 1000
    style = salt % 100
    aux = salt // 100
    idx = np.where(style < 80, v,
                   np.where(style < 90, 1000 + v * 8 + aux % 8,
                            np.where(style < 97, 17000 + v * 90 + aux % 90, 9000 + v * 8 + aux % 8)))
    out = _string_table()[idx]
    big = ranks > 999
    if big.any():
        out[big] = [f"\\frac{{{r}}}{{\\sqrt{{{2 + y % 8}}}}}"
                    for r, y in zip(ranks[big].tolist(), aux[big].tolist())]
    return out


def _intern(seq_q: np.ndarray, seq: np.ndarray, Q: int):
    """First-occurrence interning of codes ``seq`` (grouped by question ``seq_q``, scan order).

    Returns ``(ids, table_q, table_code, table_start)``: the id of each element within its question;
    for each table entry (question-major, id order) its question and code; the start of each
    question's table (``Q + 1`` offsets). Codes below ``DENSE_CODES`` (nearly all) go through a dense
    ``(question, code)`` table with ``np.minimum.at``; the rare larger codes through ``np.unique``.
    """
    L = len(seq)
    C = DENSE_CODES
    small = seq < C
    key = np.where(small, seq_q * C + seq, Q * C).astype(np.int32 if Q * C < 2**31 - 1 else np.int64)
    idx = np.int32 if L < 2**31 - 1 else np.int64  # same dtype for both: ufunc.at's fast path
    first = np.full(Q * C + 1, L, dtype=idx)
    np.minimum.at(first, key, np.arange(L, dtype=idx))
    dense_keys = np.flatnonzero(first[:-1] < L)
    tail_at = np.flatnonzero(~small)
    del small
    W = int(seq.max()) + 1
    tail_key = seq_q[tail_at].astype(np.int64) * W + seq[tail_at]
    tail_u, tail_first, tail_inv = np.unique(tail_key, return_index=True, return_inverse=True)
    nd = len(dense_keys)
    all_first = np.concatenate([first[dense_keys], tail_at[tail_first]])
    all_q = np.concatenate([dense_keys // C, tail_u // W])
    all_code = np.concatenate([dense_keys % C, tail_u % W])
    order = np.argsort(all_first)  # first indices are distinct: q-major, then first occurrence
    table_q, table_code = all_q[order], all_code[order]
    table_start = np.searchsorted(table_q, np.arange(Q + 1))
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order)) - table_start[table_q]
    dense_id = np.full(Q * C + 1, -1, dtype=np.int32)
    dense_id[dense_keys] = rank[:nd]
    ids = dense_id[key]
    ids[tail_at] = rank[nd:][tail_inv.reshape(-1)]
    return ids, table_q, table_code, table_start


_INT_BOUNDS = {"num_questions": (1, 2**31 - 1), "num_branches": (1, MAX_BRANCHES), "seed": (0, 2**63 - 1),
               "probe_interval": (1, MAX_PROBE_INTERVAL), "max_probes": (1, 2**16),
               "max_tokens": (1, 2**31 - 1)}
_FLOAT_BOUNDS = {"skill": (-50.0, 50.0), "difficulty_spread": (0.0, 50.0), "unsolvable_share": (0.0, 1.0),
                 "wrong_answer_exponent": (1.05, 10.0), "err_final_rate": (0.0, 1.0),
                 "err_probe_rate": (0.0, 1.0), "mean_log_tokens": (0.0, 20.0)}


def _check_params(**params) -> None:
    """Generator parameters inside their ranges (ValueError naming parameter, value and range)."""
    import math
    for name, v in params.items():
        if name in _INT_BOUNDS:
            lo, hi = _INT_BOUNDS[name]
            ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool) and lo <= v <= hi
            if not ok:
                raise ValueError(f"synthesize: {name} must be an integer in [{lo}, {hi}], got {v!r}")
        else:
            lo, hi = _FLOAT_BOUNDS[name]
            ok = (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                  and math.isfinite(float(v)) and lo <= float(v) <= hi)
            if not ok:
                raise ValueError(f"synthesize: {name} must be a number in [{lo:g}, {hi:g}], got {v!r}")


BLOCK_BRANCHES = 1 << 20
"""Branches generated at once by :func:`synthesize_blocks` (bounds the generator's memory)."""


def synthesize_blocks(num_questions: int, num_branches: int = 128, seed: int = 0, *,
                      block_questions: int | None = None, model: str = "synthetic",
                      benchmark: str | None = None, **kwargs):
    """A large synthetic store as consecutive blocks of questions (each a :class:`ReplayStore` of
    ``block_questions`` questions, default ``BLOCK_BRANCHES // num_branches``), for writing with
    :func:`tts_gym.data.hdf5.write_store_blocks` in bounded memory. Block ``i`` is
    ``synthesize(..., seed=seed * 1_000_003 + i)`` with its questions renumbered; a store of a
    single block is exactly ``synthesize(num_questions, num_branches, seed)``."""
    _check_params(num_questions=num_questions, num_branches=num_branches, seed=seed)
    Q, N = int(num_questions), int(num_branches)
    B = max(1, int(block_questions) if block_questions else BLOCK_BRANCHES // N)
    name = f"seed{seed}" if benchmark is None else benchmark
    if B >= Q:
        yield synthesize(Q, N, seed, model=model, benchmark=name, **kwargs)
        return
    for i, q0 in enumerate(range(0, Q, B)):
        part = synthesize(min(B, Q - q0), N, seed * 1_000_003 + i, model=model, benchmark=name, **kwargs)
        yield dataclasses.replace(
            part, questions=tuple(f"Synthetic question {q0 + q} (seed {seed})" for q in range(part.num_questions)),
            attrs={**part.attrs, "seed": int(seed), "block_questions": B})


def synthesize(num_questions: int = 30, num_branches: int = 128, seed: int = 0, *,
               model: str = "synthetic", benchmark: str | None = None, probe_interval: int = 500,
               max_probes: int = 80, skill: float = 0.3, difficulty_spread: float = 3.5,
               unsolvable_share: float = 0.22, wrong_answer_exponent: float = 1.6,
               err_final_rate: float = 0.015, err_probe_rate: float = 0.035, mean_log_tokens: float = 9.2,
               max_tokens: int = 40_960,
               ) -> ReplayStore:
    """A seeded synthetic :class:`ReplayStore` of ``num_questions x num_branches`` branches.

    ``benchmark`` defaults to ``f"seed{seed}"``. ``skill`` shifts the per-branch correctness logit
    (higher: a stronger model); ``difficulty_spread`` scales question difficulty;
    ``unsolvable_share`` is the share of questions no branch solves; ``wrong_answer_exponent`` ``s``
    sets the tail of the wrong answers (``P(rank >= r) = r ** -(s - 1)``; larger: fewer distinct wrong
    answers). Token counts are in ``[1000, max_tokens + 549]``; at most ``max_probes`` probes per branch.
    Cost: 100k questions x 16 branches (51 M probes) take ~12 s of CPU and ~1.6 GB peak memory.
    """
    _check_params(num_questions=num_questions, num_branches=num_branches, seed=seed,
                  probe_interval=probe_interval, max_probes=max_probes, skill=skill,
                  difficulty_spread=difficulty_spread, unsolvable_share=unsolvable_share,
                  wrong_answer_exponent=wrong_answer_exponent, err_final_rate=err_final_rate,
                  err_probe_rate=err_probe_rate, mean_log_tokens=mean_log_tokens, max_tokens=max_tokens)
    Q, N, pf = int(num_questions), int(num_branches), int(probe_interval)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7715]))
    M = Q * N

    # -- questions -------------------------------------------------------------------------------
    z = rng.standard_normal(Q)
    p_correct = 1.0 / (1.0 + np.exp(-(skill - difficulty_spread * z)))
    p_correct[rng.random(Q) < unsolvable_share] = 0.0  # beyond the model: no branch is correct
    golds = rng.integers(0, 1000, Q)
    mult = _COPRIME[rng.integers(0, len(_COPRIME), Q)]
    shift = rng.integers(0, 999, Q)
    exponent = np.clip(wrong_answer_exponent - 0.15 * z + 0.15 * rng.standard_normal(Q), 1.15, 3.0)
    early_shift = rng.integers(1, 5, Q).astype(np.int32)
    mu_q = mean_log_tokens + 0.12 * z + 0.1 * rng.standard_normal(Q)

    # -- branches (flat, question-major) -----------------------------------------------------------
    qb = np.repeat(np.arange(Q, dtype=np.int32), N)
    correct = rng.random(M) < p_correct[qb]
    log_t = mu_q[qb] + 0.6 * ~correct + 0.5 * rng.standard_normal(M)
    tokens = np.maximum(np.rint(np.exp(log_t)).astype(np.int64), rng.integers(1000, 1600, M))
    del log_t
    truncated = tokens > max_tokens  # cut at the context limit (plus the prompt)
    tokens[truncated] = max_tokens + rng.integers(0, 550, int(truncated.sum()))
    correct &= ~(truncated & (rng.random(M) < 0.5))
    final_code = np.where(correct, CODE_GOLD, _ranks(rng, exponent[qb]) + 1).astype(np.int32)
    err_final = ~correct & (rng.random(M) < np.where(truncated, 0.1, err_final_rate))
    final_code[err_final] = CODE_ERR
    del correct, truncated, err_final
    d = rng.choice(len(_D_PROBS), size=M, p=_D_PROBS)
    K = np.clip(-(-tokens // pf) - d, 1, max_probes).astype(np.int32)
    del d
    # 0-based probe index at which the final answer first appears (0 with prob. EARLY_FIRST)
    first_at = np.floor(rng.beta(*FIRST_BETA, M) * K).astype(np.int32)
    first_at[rng.random(M) < EARLY_FIRST] = 0
    first_at = np.minimum(first_at, K - 1)

    # -- answer sequence in scan order: per branch its K probes, then its final (flat, ragged) ------
    P = int(K.sum(dtype=np.int64))
    L = P + M
    idx = np.int32 if L < 2**31 - 1 else np.int64
    starts = np.zeros(M + 1, dtype=np.int64)  # branch m occupies [starts[m], starts[m + 1])
    np.cumsum(K + 1, out=starts[1:])
    last_at = starts[1:] - 2  # the last probe; starts[1:] - 1 is the final answer
    # sticky segments: a new segment at each branch start, at the final's first appearance, and
    # with probability SWITCH_RATE per probe
    new_seg = rng.random(L, dtype=np.float32) < SWITCH_RATE
    new_seg[starts[:-1]] = True
    new_seg[starts[:-1] + first_at] = True
    seg_start = np.flatnonzero(new_seg)
    seg_of = np.cumsum(new_seg, dtype=idx) - 1
    del new_seg
    S = len(seg_start)
    branch_start = np.zeros(L, dtype=bool)
    branch_start[starts[:-1]] = True
    seg_br = np.cumsum(branch_start[seg_start], dtype=np.int32) - 1  # every branch start opens a segment
    del branch_start
    seg_pos = (seg_start - starts[seg_br]).astype(np.int32)
    del seg_start
    seg_q = qb[seg_br]
    seg_final = final_code[seg_br]
    seg_first = first_at[seg_br]
    # distractor of each segment: "ERR", the gold (wrong branches may pass through it), or a wrong
    # answer: half from the final-answer pool, half from "early attractors" (ranks shifted by a
    # per-question offset: answers that are rarely final)
    u = rng.random(S, dtype=np.float32)
    to_err = u < 0.04
    to_gold = ~to_err & (u < 0.04 + 0.3 * p_correct[seg_q])
    seg_rank = _ranks(rng, exponent[seg_q] + DISTRACTOR_EXTRA)
    seg_rank += early_shift[seg_q] * (rng.random(S, dtype=np.float32) < 0.5)
    seg_code = np.where(to_gold, CODE_GOLD, np.minimum(seg_rank, MAX_RANK) + 1).astype(np.int32)
    seg_code[to_err] = CODE_ERR
    del u, to_err, to_gold, seg_rank, seg_q
    # before the first appearance a distractor never equals the final: move it to the next rank
    before = seg_pos < seg_first
    clash = before & (seg_code == seg_final)
    seg_code[clash] = np.where(seg_final[clash] >= 2, seg_final[clash] + 1, 2)
    # from the first appearance on, a segment shows the final answer with probability AFTER_HIT
    show_final = ~before & ((seg_pos == seg_first) | (rng.random(S, dtype=np.float32) < AFTER_HIT))
    seg_code = np.where(show_final, seg_final, seg_code)
    del before, clash, show_final, seg_pos, seg_final, seg_first
    seq = seg_code[seg_of]
    del seg_of, seg_code
    seq[last_at] = final_code  # the last probe is the final answer
    seq[last_at + 1] = final_code  # the final answer itself
    # isolated "ERR" probes (sparse: only the ~err_probe_rate * L sampled positions are touched)
    g = np.sort(rng.integers(0, L, rng.binomial(L, err_probe_rate)))  # sorted: cache-friendly lookups
    g_br = np.searchsorted(starts, g, side="right") - 1
    g_pos = g - starts[g_br]
    keep = (g_pos < K[g_br] - 1) & (g_pos != first_at[g_br]) & (final_code[g_br] != CODE_ERR)
    seq[g[keep]] = CODE_ERR
    del g, g_br, g_pos, keep

    # -- interning in first-occurrence order (branches in order, probes then final) ---------------
    q_len = K.reshape(Q, N).sum(axis=1, dtype=np.int64) + N
    seq_q = np.repeat(np.arange(Q, dtype=np.int32 if Q * DENSE_CODES < 2**31 - 1 else np.int64), q_len)
    ids, table_q, table_code, table_start = _intern(seq_q, seq, Q)
    del seq, seq_q

    # -- answer strings ------------------------------------------------------------------------
    strings = np.empty(len(table_q), dtype=object)
    is_gold, is_err = table_code == CODE_GOLD, table_code == CODE_ERR
    gold_str = _string_table()[golds]  # "0".."999", shared string objects
    strings[is_gold] = gold_str[table_q[is_gold]]
    strings[is_err] = "ERR"
    wrong = ~(is_gold | is_err)
    wq, wr = table_q[wrong].astype(np.int64), table_code[wrong].astype(np.int64) - 1
    salt = ((wq * 1_000_003 + wr * 7919 + int(seed) * 104729) * 2654435761) % (1 << 31)
    strings[wrong] = _wrong_strings(golds[wq], mult[wq], shift[wq], wr, salt)
    flat = strings.tolist()
    del strings
    tables = AnswerTables.from_flat(flat, table_start)
    del flat
    gold_ids = np.full(Q, GOLD_ABSENT, dtype=np.int32)
    gold_ids[table_q[is_gold]] = (np.flatnonzero(is_gold) - table_start[table_q[is_gold]]).astype(np.int32)

    # -- padded tensors --------------------------------------------------------------------------
    Kmax = int(K.max())
    probe_ids = np.full((Q, N, Kmax), PAD_ID, dtype=answer_dtype(int(np.diff(table_start).max())))
    final_ids = ids[starts[1:] - 1].reshape(Q, N)
    ids[starts[1:] - 1] = PAD_ID  # drop the finals from the sequence: what remains are the probes
    probe_ids[np.arange(Kmax, dtype=np.int32)[None, None, :] < K.reshape(Q, N)[:, :, None]] = \
        ids[ids != PAD_ID]
    store = ReplayStore(
        model=model, benchmark=f"seed{seed}" if benchmark is None else benchmark,
        probe_ids=probe_ids, num_probes=K.reshape(Q, N),
        branch_tokens=tokens.reshape(Q, N), final_ids=final_ids,
        num_branches=np.full(Q, N, dtype=np.int32), probe_interval=np.full(Q, pf, dtype=np.int32),
        gold_ids=gold_ids, answer_tables=tables, gold_answers=tuple(gold_str.tolist()),
        questions=tuple(f"Synthetic question {q} (seed {seed})" for q in range(Q)),
        attrs={"source": "synthetic", "generator": "tts_gym.data.synthetic.synthesize", "seed": int(seed),
               "params": {"skill": skill, "difficulty_spread": difficulty_spread,
                          "unsolvable_share": unsolvable_share,
                          "wrong_answer_exponent": wrong_answer_exponent, "err_final_rate": err_final_rate,
                          "err_probe_rate": err_probe_rate, "mean_log_tokens": mean_log_tokens,
                          "max_tokens": max_tokens, "max_probes": max_probes}},
    )
    return store.validate()
