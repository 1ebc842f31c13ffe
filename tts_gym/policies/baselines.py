"""The five reference test-time-scaling algorithms as :class:`~tts_gym.policies.base.Policy`\\ s.

Each is a :class:`~tts_gym.policies.base.ScriptedPolicy` whose script is the pseudo-code of
``docs/replay-semantics.md``, "Baselines", acting only through env actions and reading the revealed
answers through the :class:`~tts_gym.envs.view.EpisodeView` after each action. Votes run over answer
*ids* (per-question intern ids: equal ids <=> equal strings) with the first-occurrence
tie-breaking of :mod:`tts_gym.core.voting`; answers are committed with ``ANSWER_WITH`` (a position whose
latest revealed answer is the chosen one) or ``ABSTAIN`` for ``None``.

=====================  ===============================  ==========================================
registry name          class                            parameters (reference CSV names)
=====================  ===============================  ==========================================
``"sc"``               :class:`SelfConsistency`         ``max_samples``
``"asc"``              :class:`AdaptiveConsistency`     ``max_samples``, ``threshold``
``"esc"``              :class:`EarlyStoppingSC`         ``max_samples``, ``window_size``
``"parallel_probe"``   :class:`ParallelProbe`           ``num_chains``, ``T``, ``prune_patience``,
                                                        ``warm_up``, ``probe_burst``,
                                                        ``max_steps`` (``K``, ``eps_inter``,
                                                        ``eps_intra`` accepted, unused)
``"cmc"``              :class:`ConfidenceMomentum`      ``beta``
=====================  ===============================  ==========================================

Parity needs an env with at least as many positions as the algorithm opens (``max_branches``
>= 64 for the ``@64`` configurations; the reference stores have 128): a smaller env exhausts
earlier than the reference would.
"""
from __future__ import annotations

from typing import Any

from tts_gym.policies.base import ScriptedPolicy

from tts_gym.policies.common import CMC_MAX_BRANCH, CMC_MAX_ROUNDS, cmc_schedule, external_policy
from tts_gym.core.voting import conf, majority, top_two

__all__ = ["SelfConsistency", "AdaptiveConsistency", "EarlyStoppingSC", "ParallelProbe",
           "ConfidenceMomentum", "POLICIES", "make_policy"]


class AdaptiveConsistency(ScriptedPolicy):
    """ASC ("ASC"): full reads until the Beta-majority confidence of the top two counts exceeds
    ``threshold`` (strict ``>``, at least two answers), else majority after ``max_samples``."""

    name = "asc"

    def __init__(self, max_samples: int = 64, threshold: float = 0.95) -> None:
        super().__init__(max_samples=int(max_samples), threshold=float(threshold))
        self.max_samples, self.threshold = int(max_samples), float(threshold)

    def script(self, view):
        answers = []
        for _ in range(self.max_samples):
            a = yield from self.full_read(view)
            if a is None:
                break
            answers.append(a)
            if self.threshold < 1.0 and len(answers) >= 2:   # a confidence never exceeds 1
                w, t1, t2, _ = top_two(answers)
                if conf(t1, t2) > self.threshold:
                    return w
        return majority(answers)


class SelfConsistency(AdaptiveConsistency):
    """SC@N: full-read ``max_samples`` branches, majority of their finals in read order ("SC@N"):
    ASC with a threshold no confidence exceeds, as the reference runs it."""

    name = "sc"

    def __init__(self, max_samples: int = 64) -> None:
        super().__init__(max_samples, threshold=float("inf"))
        self.params = {"max_samples": int(max_samples)}


class EarlyStoppingSC(ScriptedPolicy):
    """ESC ("ESC"): ``max_samples // window_size`` windows of full reads; a unanimous window returns
    its first answer; otherwise majority of everything read."""

    name = "esc"

    def __init__(self, max_samples: int = 64, window_size: int = 8) -> None:
        super().__init__(max_samples=int(max_samples), window_size=int(window_size))
        self.max_samples, self.window_size = int(max_samples), int(window_size)

    def script(self, view):
        every = []
        for _ in range(self.max_samples // self.window_size):
            window = []
            for _ in range(self.window_size):
                a = yield from self.full_read(view)
                if a is None:
                    break
                window.append(a)
            if not window:
                continue
            every.extend(window)
            if all(x == window[0] for x in window):
                return window[0]
        return majority(every)


class ParallelProbe(ScriptedPolicy):
    """Parallel-Probe ("Parallel-Probe"). ``K``, ``eps_inter``, ``eps_intra`` are accepted and
    unused, as in the reference. Pruned branches are also marked with the env's zero-cost ``PRUNE(i)`` when
    ``emit_prune`` (bookkeeping only: no effect on answers or costs)."""

    name = "parallel_probe"

    def __init__(self, num_chains: int = 64, T: int = 40, prune_patience: int = 7,
                 warm_up: int = 15, probe_burst: int = 1, max_steps: int = 100,
                 K: int = 5, eps_inter: float = 5.0, eps_intra: float = 5.0,
                 emit_prune: bool = True) -> None:
        super().__init__(num_chains=int(num_chains), K=K, T=int(T), eps_inter=eps_inter,
                         eps_intra=eps_intra, prune_patience=int(prune_patience),
                         warm_up=int(warm_up), probe_burst=int(probe_burst),
                         max_steps=int(max_steps))
        self.num_chains, self.T = int(num_chains), int(T)
        self.prune_patience, self.warm_up = int(prune_patience), int(warm_up)
        self.probe_burst, self.max_steps = int(probe_burst), int(max_steps)
        self.emit_prune = bool(emit_prune)

    def script(self, view):
        # branch record: [pos, finished, pruned, last, off]   (history[-1] is all that is read)
        branches = []
        for _ in range(self.num_chains):
            r = yield from self.open(view)
            if r is None:
                break
            a, pos, f = r
            branches.append([pos, f, False, a, 0])
        if not branches:
            return None
        stable, prev = 0, None
        for step in range(self.max_steps):
            active = []
            for br in branches:
                if br[2]:
                    continue
                if not br[1]:
                    last = br[3]
                    for _ in range(self.probe_burst):
                        if br[1]:
                            break
                        r = yield from self.advance(view, br[0])
                        if r is None:
                            br[1] = True
                            break
                        last, br[1] = r
                    br[3] = last
                active.append(br)
            if not active:
                return prev
            w = majority([br[3] for br in active])
            if step >= self.warm_up and len(active) > 1:
                for br in active:
                    if not br[1]:
                        br[4] = br[4] + 1 if br[3] != w else 0
                newly = [br for br in active if not br[1] and br[4] >= self.prune_patience]
                for br in newly:
                    br[2] = True
                    if self.emit_prune:
                        yield from self.prune(view, br[0])
                if newly:
                    active = [br for br in active if not br[2]]
                    if not active:
                        return prev
                    w = majority([br[3] for br in active])
            stable = stable + 1 if w == prev else 0
            prev = w
            if stable >= self.T:
                return w
            if all(br[1] or br[2] for br in branches):
                return w
        return prev


class ConfidenceMomentum(ScriptedPolicy):
    """CMC, the Confidence Momentum Controller (``OptimalController``, 5.5), config ``{"beta": b}``.

    The schedule is derived from ``beta`` by :func:`tts_gym.policies.common.cmc_schedule`
    (half-to-even rounding). Abandoned branches are also marked with the env's zero-cost
    ``PRUNE(i)`` when ``emit_prune`` (bookkeeping only)."""

    name = "cmc"

    def __init__(self, beta: float = 0.5, emit_prune: bool = True) -> None:
        super().__init__(beta=float(beta))
        self.beta = float(beta)
        self.schedule = dict(cmc_schedule(beta))
        self.emit_prune = bool(emit_prune)

    def _pool_stats(self, completed):
        if not completed:
            return None, 0.0
        w, t1, t2, _ = top_two(completed)
        return w, conf(t1, t2)

    def script(self, view):
        s = self.schedule
        n_init, max_branch_use, warm_up = s["n_init"], s["max_branch_use"], s["warm_up"]
        abandon_patience, T_ema, ema_alpha = s["abandon_patience"], s["T_ema"], s["ema_alpha"]
        conf_thresh, delta_slack, burst_aligned = s["conf_thresh"], s["delta_slack"], s["burst_aligned"]
        widen_burst, trend_thresh, min_complete = s["widen_burst"], s["trend_thresh"], s["min_complete"]
        pool_stats = self._pool_stats

        # branch record: [pos, latest, finished, abandoned, probe_count, disagree]
        branches = []
        completed = []
        spawned = 0

        def spawn():
            nonlocal spawned
            r = yield from self.open(view)
            if r is None:
                return False
            a, pos, f = r
            spawned += 1
            branches.append([pos, a, f, False, 0, 0])
            if f:
                completed.append(a)
            return True

        for _ in range(n_init):
            if not (yield from spawn()):
                break
        if not branches:
            return None
        ema = 0.0
        hist = []
        r = 0
        while r < CMC_MAX_ROUNDS:
            w, c = pool_stats(completed)
            warm = r >= warm_up
            # (1) pre-probe EMA update
            ema = (1.0 - ema_alpha) * ema + ema_alpha * c
            hist.append(ema)
            if len(hist) > T_ema:
                del hist[0]
            # (2) deviance bookkeeping and abandonment
            if warm and w is not None:
                for br in branches:
                    if not br[3] and not br[2]:
                        br[5] = br[5] + 1 if br[1] != w else 0
                alive = sum(1 for br in branches if not br[3] and not br[2])
                cands = [br for br in branches if not br[3] and not br[2] and br[5] >= abandon_patience]
                cands.sort(key=lambda br: -br[5])  # stable: ties keep opening order
                for br in cands[:max(0, alive - 2)]:
                    br[3] = True
                    if self.emit_prune:
                        yield from self.prune(view, br[0])
            # (3) depth allocation (tiers from the round-start winner and pre-round latest)
            live = [br for br in branches if not br[3] and not br[2]]
            live.sort(key=lambda br: -br[4])
            for br in live:
                aligned = warm and w is not None and br[1] == w
                for _ in range(burst_aligned if aligned else 1):
                    if br[2]:
                        break
                    x = yield from self.advance(view, br[0])
                    if x is None:
                        br[2] = True
                        if br[1] is not None:
                            completed.append(br[1])
                        break
                    br[1], br[2] = x
                    br[4] += 1
                    if br[2]:
                        completed.append(br[1])
                        break
            # (4) post-probe EMA update
            w, c = pool_stats(completed)
            ema = (1.0 - ema_alpha) * ema + ema_alpha * c
            hist[-1] = ema
            delta = hist[-1] - hist[0] if len(hist) >= 2 else 0.0
            # (5) stopping gate
            if warm and len(completed) >= min_complete and ema >= conf_thresh and delta >= -delta_slack:
                return w
            # (6) all resolved?
            if all(br[2] or br[3] for br in branches):
                break
            # (7) widening
            if (spawned < max_branch_use and spawned < CMC_MAX_BRANCH and delta <= trend_thresh
                    and r >= max(1, warm_up // 2) and ema < conf_thresh):
                for _ in range(widen_burst):
                    if spawned >= max_branch_use or spawned >= CMC_MAX_BRANCH:
                        break
                    if not (yield from spawn()):
                        break
            r += 1
        w, _ = pool_stats(completed)
        if w is None:
            w = majority([br[1] for br in branches if not br[3] and br[1] is not None])
        return w


POLICIES = {
    "sc": SelfConsistency,
    "asc": AdaptiveConsistency,
    "esc": EarlyStoppingSC,
    "parallel_probe": ParallelProbe,
    "cmc": ConfidenceMomentum,
}


def make_policy(name: str, **params: Any):
    """Build a baseline policy by registry name with the reference CSV parameter names, e.g.
    ``make_policy("asc", max_samples=64, threshold=0.95)`` or ``make_policy("cmc", beta=0.5)``.

    Names, aliases (``"pp"``, ``"parallel-probe"``, ``n`` for SC), defaults and parameter ranges are
    those of :mod:`tts_gym.policies.registry` (the same rules as the compiled fast path).
    ``emit_prune`` (``parallel_probe``, ``cmc``) is passed through.
    """
    from tts_gym.policies.registry import validate_params
    extra = {k: params.pop(k) for k in ("emit_prune",) if k in params}
    canon, norm = validate_params(name, params)
    ext = external_policy(canon)
    if ext is not None and not extra:   # a family of its own module (registry.EXTERNAL_POLICIES)
        return ext.POLICY_CLASS(**norm)
    if canon == "sc":
        return SelfConsistency(max_samples=norm["max_samples"])
    if extra and canon not in ("parallel_probe", "cmc"):
        raise ValueError(f"emit_prune applies to parallel_probe and cmc only, not {name!r}")
    return POLICIES[canon](**norm, **extra)
