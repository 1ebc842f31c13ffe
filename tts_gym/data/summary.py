"""Summary statistics of a replay store: what ``tts-gym data info`` prints and ``data/README.md``
tabulates."""
from __future__ import annotations

from typing import Any

import numpy as np

from tts_gym.data.answers import majority_accuracy
from tts_gym.data.store import GOLD_ABSENT, ReplayStore

__all__ = ["summarize_store"]


def summarize_store(store: ReplayStore) -> dict[str, Any]:
    """Summary statistics of a store.

    ``majority_acc``: share of questions whose plurality final answer over all branches (stored
    order, the tie rule of :mod:`tts_gym.core.voting`) equals the gold
    (:func:`tts_gym.data.answers.majority_accuracy`); ``pass_acc``: share whose gold is
    among the final answers; ``gold_anywhere``: share whose gold appears in any probe or final;
    ``branch_acc``: share of correct branches; ``distinct_finals``/``distinct_answers``: mean distinct
    final answers / all answers (probes too) per question; ``first_final_depth``: mean 1-based probe
    index at which a branch's final answer first appears among its probes (``first_final_frac``: the
    same as a fraction of ``K``); ``err_probe_share``: share of probes equal to the string ``"ERR"``.
    """
    Q, N, K = store.probe_ids.shape
    nb = store.num_branches
    real = np.arange(N)[None, :] < nb[:, None]
    kp = store.num_probes[real]
    tok = store.branch_tokens[real]
    fin = store.final_ids
    qidx = np.broadcast_to(np.arange(Q)[:, None], (Q, N))[real].astype(np.int64)
    sizes = np.array([len(t) for t in store.answer_tables], dtype=np.int64)
    A = int(sizes.max()) if Q else 1
    key = qidx * A + fin[real]
    uk = np.unique(key)
    uq = uk // A
    gold = store.gold_ids.astype(np.int64)
    has_gold = gold != GOLD_ABSENT
    pass_n = has_gold & np.isin(np.arange(Q) * A + gold, uk)
    correct = has_gold[:, None] & (fin == gold[:, None]) & real
    in_probe = np.arange(K)[None, None, :] < store.num_probes[:, :, None]
    eq = (store.probe_ids == fin[:, :, None]) & in_probe
    found = eq.any(axis=2) & real
    first = eq.argmax(axis=2)[found] + 1
    err_share = 0.0
    n_probes = int(kp.sum())
    if n_probes:
        err_ids = np.array([t.index("ERR") if "ERR" in t else -3 for t in store.answer_tables], dtype=np.int64)
        err_share = float(((store.probe_ids == err_ids[:, None, None]) & in_probe).sum()) / n_probes
    return {
        "model": store.model, "benchmark": store.benchmark, "questions": Q, "branches": int(nb.sum()),
        "max_branches": N, "k_min": int(kp.min()), "k_mean": float(kp.mean()), "k_max": int(kp.max()),
        "tokens_min": int(tok.min()), "tokens_mean": float(tok.mean()), "tokens_max": int(tok.max()),
        "majority_acc": majority_accuracy(store), "pass_acc": float(pass_n.mean()),
        "gold_anywhere": float(has_gold.mean()), "branch_acc": float(correct.sum() / max(1, real.sum())),
        "distinct_finals": float(np.bincount(uq, minlength=Q).mean()), "distinct_answers": float(sizes.mean()),
        "first_final_depth": float(first.mean()) if first.size else float("nan"),
        "first_final_frac": float((first / store.num_probes[found]).mean()) if first.size else float("nan"),
        "err_probe_share": err_share,
    }
