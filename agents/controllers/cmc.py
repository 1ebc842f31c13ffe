"""Confidence Momentum Controller (CMC), the controller AutoTTS discovered, as a controller file.

Written from ``docs/replay-semantics.md``, "CMC", in the AutoTTS ``solve(question)`` style that
the discovery loop asks for, and within the sandbox's rules (standard-library ``math`` only), so
the same file works as

* ``tts-gym eval --controller agents/controllers/cmc.py`` (in-process), and
* a seed of ``tts-gym discover --seed-controller agents/controllers/cmc.py`` (sandboxed).

One beta knob trades accuracy for tokens: ``Controller(beta)`` derives every hyper-parameter from
``beta`` in [0, 1] (Python's half-to-even ``round``). Branches are probed in rounds; a pool of
final answers (in finishing order) gives a Beta-majority confidence, smoothed by an EMA updated
twice per round; the controller stops when the smoothed confidence is high and not falling, drops
branches that keep disagreeing with the pool's winner (always keeping two alive), and opens new
branches when the confidence trend is flat.
"""
import math

MAX_BRANCH = 64
MAX_ROUNDS = 500


def confidence(top1, top2):
    """1 - BetaCDF(0.5; top1 + 1, top2 + 1) = P[Binomial(top1 + top2 + 1, 1/2) <= top1], exactly
    (integer division of Python ints is correctly rounded)."""
    if top1 <= 0:
        return 0.0
    n = top1 + top2 + 1
    return sum(math.comb(n, j) for j in range(top1 + 1)) / 2 ** n


def top_two(answers):
    """(winner, top1, top2): most common answer (ties: earliest first occurrence), its count and the
    second-highest count."""
    counts = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    if not counts:
        return None, 0, 0
    winner, top1 = None, 0
    for a, c in counts.items():  # insertion order = first-occurrence order
        if c > top1:
            winner, top1 = a, c
    ordered = sorted(counts.values(), reverse=True)
    return winner, top1, (ordered[1] if len(ordered) > 1 else 0)


def majority(answers):
    return top_two(answers)[0]


class Branch:
    def __init__(self, pos, latest, finished):
        self.pos = pos
        self.latest = latest
        self.finished = finished
        self.abandoned = False
        self.probe_count = 0
        self.disagree = 0


class Controller:
    def __init__(self, beta=0.5):
        b = max(0.0, min(1.0, float(0.5 if beta is None else beta)))
        self.beta = b
        self.n_init = max(2, round(2 + 6 * b))
        self.max_branch_use = min(64, round(4 + 60 * b))
        self.warm_up = max(2, round(2 + 8 * b))
        self.abandon_patience = max(3, round(3 + 9 * b))
        self.t_ema = max(2, round(2 + 6 * b))
        self.ema_alpha = round(0.70 - 0.40 * b, 4)
        self.conf_thresh = round(0.85 + 0.12 * b, 4)
        self.delta_slack = round(0.04 - 0.03 * b, 4)
        self.burst_aligned = max(1, round(1 + 2 * b))
        self.widen_burst = max(1, round(1 + 3 * b))
        self.trend_thresh = round(0.04 - 0.03 * b, 4)
        self.min_complete = max(2, round(2 + 3 * b))

    def solve(self, question):
        branches = []
        completed = []          # final answers in finishing order
        spawned = 0

        def spawn():
            nonlocal spawned
            r = question.probe_new()
            if r is None:
                return False
            answer, pos, finished = r
            spawned += 1
            branches.append(Branch(pos, answer, finished))
            if finished:
                completed.append(answer)
            return True

        def pool_stats():
            if not completed:
                return None, 0.0
            w, t1, t2 = top_two(completed)
            return w, confidence(t1, t2)

        for _ in range(self.n_init):
            if not spawn():
                break
        if not branches:
            return None

        alpha = self.ema_alpha
        ema = 0.0
        hist = []
        r = 0
        while r < MAX_ROUNDS:
            w, c = pool_stats()
            warm = r >= self.warm_up
            # (1) pre-probe EMA update
            ema = (1.0 - alpha) * ema + alpha * c
            hist.append(ema)
            if len(hist) > self.t_ema:
                hist.pop(0)
            # (2) disagreement bookkeeping and abandonment
            if warm and w is not None:
                for br in branches:
                    if not br.abandoned and not br.finished:
                        br.disagree = br.disagree + 1 if br.latest != w else 0
                alive = sum(1 for br in branches if not br.abandoned and not br.finished)
                cands = [br for br in branches if not br.abandoned and not br.finished
                         and br.disagree >= self.abandon_patience]
                cands.sort(key=lambda br: -br.disagree)
                for br in cands[:max(0, alive - 2)]:
                    br.abandoned = True
            # (3) every live branch advances; aligned ones by a burst
            live = [br for br in branches if not br.abandoned and not br.finished]
            live.sort(key=lambda br: -br.probe_count)
            for br in live:
                aligned = warm and w is not None and br.latest == w
                for _ in range(self.burst_aligned if aligned else 1):
                    if br.finished:
                        break
                    x = question.probe_more(br.pos)
                    if x is None:
                        br.finished = True
                        if br.latest is not None:
                            completed.append(br.latest)
                        break
                    br.latest, br.finished = x
                    br.probe_count += 1
                    if br.finished:
                        completed.append(br.latest)
                        break
            # (4) post-probe EMA update (overwrites this round's entry)
            w, c = pool_stats()
            ema = (1.0 - alpha) * ema + alpha * c
            hist[-1] = ema
            delta = hist[-1] - hist[0] if len(hist) >= 2 else 0.0
            # (5) stopping gate
            if (warm and len(completed) >= self.min_complete and ema >= self.conf_thresh
                    and delta >= -self.delta_slack):
                return w
            # (6) everything resolved
            if all(br.finished or br.abandoned for br in branches):
                break
            # (7) widening when the trend is flat
            if (spawned < self.max_branch_use and spawned < MAX_BRANCH and delta <= self.trend_thresh
                    and r >= max(1, self.warm_up // 2) and ema < self.conf_thresh):
                for _ in range(self.widen_burst):
                    if spawned >= self.max_branch_use or spawned >= MAX_BRANCH:
                        break
                    if not spawn():
                        break
            r += 1
        w, _ = pool_stats()
        if w is None:
            w = majority([br.latest for br in branches if not br.abandoned and br.latest is not None])
        return w
