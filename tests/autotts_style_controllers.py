"""AutoTTS-style controllers for the adapter tests, written from the pseudo-code of
``docs/replay-semantics.md``, "Baselines", in the reference's style: each is a class with
``NAME``, ``config`` and ``solve(question)``; it talks to the question object through "safe"
wrappers and votes over answer *strings* with ``collections.Counter`` (whose ``most_common``
breaks ties by first occurrence). They share nothing with :mod:`tts_gym.policies.baselines`
except the Beta-majority confidence value and the CMC schedule (the reference computes those in
one place too), so identical results show the adapter is faithful.
"""
from __future__ import annotations

from collections import Counter

from tts_gym.policies.common import cmc_schedule
from tts_gym.core.voting import conf as beta_confidence


def safe_probe_new(question):
    try:
        return question.probe_new()
    except (IndexError, ValueError):
        return None


def safe_probe_more(question, index):
    try:
        return question.probe_more(index)
    except (IndexError, ValueError):
        return None


def safe_final(question):
    try:
        return question.get_new_branch_final_answer()
    except (IndexError, ValueError):
        return None


def majority_vote(answers):
    if not answers:
        return None
    return Counter(answers).most_common(1)[0][0]


def top_two_counts(answers):
    if not answers:
        return None, 0, 0, 0
    mc = Counter(answers).most_common()
    second = mc[1][1] if len(mc) > 1 else 0
    return mc[0][0], mc[0][1], second, len(answers)


class ASCMethod:
    NAME = "asc"

    def __init__(self, config=None):
        self.config = dict(config or {})
        self.max_samples = int(self.config.get("max_samples", 64))
        self.threshold = float(self.config.get("threshold", 0.95))

    def solve(self, question):
        answers = []
        for _ in range(self.max_samples):
            ans = safe_final(question)
            if ans is None:
                break
            answers.append(ans)
            if len(answers) >= 2:
                winner, c1, c2, _ = top_two_counts(answers)
                if beta_confidence(c1, c2) > self.threshold:
                    return winner
        return majority_vote(answers)


class ESCMethod:
    NAME = "esc"

    def __init__(self, config=None):
        self.config = dict(config or {})
        self.max_samples = int(self.config.get("max_samples", 64))
        self.window_size = int(self.config.get("window_size", 8))

    def solve(self, question):
        collected = []
        for _ in range(self.max_samples // self.window_size):
            window = []
            for _ in range(self.window_size):
                ans = safe_final(question)
                if ans is None:
                    break
                window.append(ans)
            if not window:
                continue
            collected.extend(window)
            if len(set(window)) == 1:
                return window[0]
        return majority_vote(collected)


class ParallelProbeMethod:
    NAME = "parallel_probe"

    def __init__(self, config=None):
        self.config = dict(config or {})
        c = self.config
        self.num_chains = int(c.get("num_chains", 64))
        self.T = int(c.get("T", 40))
        self.prune_patience = int(c.get("prune_patience", 7))
        self.warm_up = int(c.get("warm_up", 15))
        self.probe_burst = int(c.get("probe_burst", 1))
        self.max_steps = int(c.get("max_steps", 100))

    def solve(self, question):
        chains = []
        for _ in range(self.num_chains):
            res = safe_probe_new(question)
            if res is None:
                break
            ans, idx, fin = res
            chains.append({"idx": idx, "finished": fin, "pruned": False, "history": [ans], "off": 0})
        if not chains:
            return None
        stable, prev = 0, None
        for step in range(self.max_steps):
            active = []
            for ch in chains:
                if ch["pruned"]:
                    continue
                if not ch["finished"]:
                    last = ch["history"][-1]
                    for _ in range(self.probe_burst):
                        if ch["finished"]:
                            break
                        res = safe_probe_more(question, ch["idx"])
                        if res is None:
                            ch["finished"] = True
                            break
                        last, ch["finished"] = res
                    ch["history"].append(last)
                active.append(ch)
            if not active:
                return prev
            winner = majority_vote([ch["history"][-1] for ch in active])
            if step >= self.warm_up and len(active) > 1:
                for ch in active:
                    if not ch["finished"]:
                        ch["off"] = ch["off"] + 1 if ch["history"][-1] != winner else 0
                newly = [ch for ch in active if not ch["finished"] and ch["off"] >= self.prune_patience]
                for ch in newly:
                    ch["pruned"] = True
                if newly:
                    active = [ch for ch in active if not ch["pruned"]]
                    if not active:
                        return prev
                    winner = majority_vote([ch["history"][-1] for ch in active])
            stable = stable + 1 if winner == prev else 0
            prev = winner
            if stable >= self.T:
                return winner
            if all(ch["finished"] or ch["pruned"] for ch in chains):
                return winner
        return prev


class CMCMethod:
    NAME = "cmc"
    MAX_BRANCH = 64
    MAX_ROUNDS = 500

    def __init__(self, config=None):
        self.config = dict(config or {})
        for k, v in cmc_schedule(self.config.get("beta", 0.5)).items():
            setattr(self, k, v)

    def _pool(self, completed):
        if not completed:
            return None, 0.0
        w, c1, c2, _ = top_two_counts(completed)
        return w, beta_confidence(c1, c2)

    def solve(self, question):
        branches, completed = [], []
        spawned = 0

        def spawn():
            nonlocal spawned
            res = safe_probe_new(question)
            if res is None:
                return False
            ans, idx, fin = res
            spawned += 1
            branches.append({"idx": idx, "latest": ans, "finished": fin, "abandoned": False,
                             "probe_count": 0, "disagree": 0})
            if fin:
                completed.append(ans)
            return True

        for _ in range(self.n_init):
            if not spawn():
                break
        if not branches:
            return None
        ema, hist = 0.0, []
        r = 0
        while r < self.MAX_ROUNDS:
            winner, c = self._pool(completed)
            warm = r >= self.warm_up
            ema = (1.0 - self.ema_alpha) * ema + self.ema_alpha * c
            hist.append(ema)
            if len(hist) > self.T_ema:
                hist.pop(0)
            if warm and winner is not None:
                for b in branches:
                    if not b["abandoned"] and not b["finished"]:
                        b["disagree"] = b["disagree"] + 1 if b["latest"] != winner else 0
                alive = sum(1 for b in branches if not b["abandoned"] and not b["finished"])
                cands = sorted((b for b in branches if not b["abandoned"] and not b["finished"]
                                and b["disagree"] >= self.abandon_patience),
                               key=lambda b: b["disagree"], reverse=True)
                for b in cands[:max(0, alive - 2)]:
                    b["abandoned"] = True
            live = sorted((b for b in branches if not b["abandoned"] and not b["finished"]),
                          key=lambda b: b["probe_count"], reverse=True)
            for b in live:
                aligned = warm and winner is not None and b["latest"] == winner
                for _ in range(self.burst_aligned if aligned else 1):
                    if b["finished"]:
                        break
                    res = safe_probe_more(question, b["idx"])
                    if res is None:
                        b["finished"] = True
                        if b["latest"] is not None:
                            completed.append(b["latest"])
                        break
                    b["latest"], b["finished"] = res
                    b["probe_count"] += 1
                    if b["finished"]:
                        completed.append(b["latest"])
                        break
            winner, c = self._pool(completed)
            ema = (1.0 - self.ema_alpha) * ema + self.ema_alpha * c
            hist[-1] = ema
            delta = hist[-1] - hist[0] if len(hist) >= 2 else 0.0
            if (warm and len(completed) >= self.min_complete and ema >= self.conf_thresh
                    and delta >= -self.delta_slack):
                return winner
            if all(b["finished"] or b["abandoned"] for b in branches):
                break
            if (spawned < self.max_branch_use and spawned < self.MAX_BRANCH
                    and delta <= self.trend_thresh and r >= max(1, self.warm_up // 2)
                    and ema < self.conf_thresh):
                for _ in range(self.widen_burst):
                    if spawned >= self.max_branch_use or spawned >= self.MAX_BRANCH:
                        break
                    if not spawn():
                        break
            r += 1
        winner, _ = self._pool(completed)
        if winner is None:
            winner = majority_vote([b["latest"] for b in branches
                                    if not b["abandoned"] and b["latest"] is not None])
        return winner


CONTROLLERS = {"asc": ASCMethod, "esc": ESCMethod, "parallel_probe": ParallelProbeMethod,
               "cmc": CMCMethod}


def make_controller(name, **config):
    """An AutoTTS-style controller by registry name (``sc`` = ASC with threshold 1.01)."""
    if name == "sc":
        return ASCMethod({"max_samples": config.get("max_samples", 64), "threshold": 1.01})
    return CONTROLLERS[name](config)
