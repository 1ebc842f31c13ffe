"""A plain-Python model of the replay semantics: the executable specification of the environment.

Written directly from ``docs/replay-semantics.md`` ("Token accounting", "Environment mapping") and
the action layout of :mod:`tts_gym.core.actions`, over answer *strings* and Python lists, without
the kernels (votes and the Beta-majority confidence are the plain-Python ones of
:mod:`tts_gym.core.voting`, the one vote rule). Clarity comes first, speed not at all; it serves
three uses:

* the oracle of the property tests (costs, revealed answers, masks and observations of the compiled
  env must equal this model's on random admissible action sequences);
* the pure-Python baseline of ``benchmarks/env_throughput.py``;
* documentation: :meth:`PyEpisode.step` is the environment's transition function in ~80 lines.

Semantics (one episode = one question and one branch order):

* ``BRANCH`` opens position ``cursor`` and steps its branch once (the reference's ``probe_new``);
  ``SAMPLE`` opens it by a full read: charge ``T_b``, reveal only the final answer.
* Stepping a branch: while probes remain, charge ``pf`` and move to the next probe; once the ``K_b``
  probes are consumed, the *finishing step* charges ``max(0, T_b - K_b * pf)`` and reaches the final
  answer. Finished positions cannot be continued (the reference's re-charging quirk is forbidden).
* Fused mode (the reference): every step reveals the answer it reaches. Unfused mode: stepping
  reveals nothing; ``PROBE(i)`` reveals the answer at the current depth. Every reveal (also the one of
  ``SAMPLE``) costs ``probe_cost`` tokens, charged to the position.
* ``PRUNE(i)`` (zero cost) retires a live position: no more ``CONTINUE``/``PROBE``/``PRUNE`` on it,
  and it leaves the default vote.
* ``ANSWER`` commits the plurality of the latest answers of opened unpruned positions (ties: the
  earliest first occurrence in opening order); ``ANSWER_WITH(i)`` commits position ``i``'s latest
  answer; ``ABSTAIN`` commits nothing (scored wrong).
* With a token budget, once ``cost >= budget`` only ``ANSWER``, ``ANSWER_WITH`` and ``ABSTAIN``
  remain (and ``PROBE`` when ``probe_cost == 0``).
"""
from __future__ import annotations

from collections import Counter

from tts_gym.core.voting import conf, majority, ranked, top_two

BRANCH, SAMPLE, ANSWER, ABSTAIN = 0, 1, 2, 3
G = 4  # number of global actions

# reasons (the names match the kernels' ERR_* codes)
REASONS = ("OK", "ERR_DONE", "ERR_NO_BRANCH_LEFT", "ERR_NOT_OPENED", "ERR_FINISHED", "ERR_PRUNED",
           "ERR_NOTHING_TO_PROBE", "ERR_NO_ANSWER", "ERR_BAD_ACTION", "ERR_BUDGET")


class InadmissibleAction(ValueError):
    """Raised by :meth:`PyEpisode.step` for an action the mask forbids; ``reason`` names the rule."""

    def __init__(self, action: int, reason: str):
        super().__init__(f"action {action} is inadmissible: {reason}")
        self.action, self.reason = action, reason


class PyBranch:
    """One pre-sampled trajectory: intermediate answers, total tokens, final answer."""
    __slots__ = ("probes", "tokens", "final")

    def __init__(self, probes, tokens, final):
        self.probes, self.tokens, self.final = list(probes), int(tokens), final


class PyPosition:
    __slots__ = ("branch", "opened", "finished", "pruned", "sampled", "depth", "latest",
                 "revealed_depth", "stable", "reveal_step", "ledger")

    def __init__(self, branch: PyBranch):
        self.branch = branch
        self.opened = self.finished = self.pruned = self.sampled = False
        self.depth = 0            # intervals advanced (K + 1 once finished)
        self.latest = None        # latest revealed answer string
        self.revealed_depth = 0   # depth of that reveal
        self.stable = 0           # consecutive reveals repeating the latest answer
        self.reveal_step = -1     # step index of the last reveal
        self.ledger = 0           # tokens charged to this position

    def answer_at_depth(self) -> str:
        d = self.depth
        return self.branch.probes[d - 1] if d <= len(self.branch.probes) else self.branch.final


class PyEpisode:
    """One episode of the replay, in plain Python (see the module docstring for the rules).

    ``branches``: the question's branches as ``(probe_list, tokens, final)`` in stored order;
    ``order``: stored branch index of each position (a permutation or its prefix).
    """

    def __init__(self, branches, order, probe_interval: int, max_branches: int, *, fused: bool = True,
                 probe_cost: int = 0, token_budget: int | None = None):
        self.M = int(max_branches)
        self.pf = int(probe_interval)
        self.fused = bool(fused)
        self.probe_cost = int(probe_cost)
        self.budget = int(token_budget) if token_budget else 0
        self.num_branches = len(branches)
        self.limit = min(self.M, self.num_branches)
        objs = [b if isinstance(b, PyBranch) else PyBranch(*b) for b in branches]
        self.positions = [PyPosition(objs[int(order[p])]) for p in range(self.limit)]
        self.cursor = 0
        self.cost = 0
        self.steps = 0
        self.done = False
        self.answer = None        # committed answer string (None: none / abstained)

    @classmethod
    def from_store(cls, store, question: int, order, max_branches: int, **kw) -> "PyEpisode":
        tab = store.answer_tables[question]
        branches = []
        for b in range(int(store.num_branches[question])):
            k = int(store.num_probes[question, b])
            branches.append(PyBranch([tab[i] for i in store.probe_ids[question, b, :k]],
                                     int(store.branch_tokens[question, b]),
                                     tab[store.final_ids[question, b]]))
        return cls(branches, order, int(store.probe_interval[question]), max_branches, **kw)

    # -- rules ------------------------------------------------------------------------------------
    def over_budget(self) -> bool:
        return self.budget > 0 and self.cost >= self.budget

    def check(self, action: int) -> str:
        """``"OK"`` or the name of the rule that forbids ``action``."""
        M = self.M
        if not 0 <= action < G + 4 * M:
            return "ERR_BAD_ACTION"
        if self.done:
            return "ERR_DONE"
        if action in (BRANCH, SAMPLE):
            if self.over_budget():
                return "ERR_BUDGET"
            return "OK" if self.cursor < self.limit else "ERR_NO_BRANCH_LEFT"
        if action in (ANSWER, ABSTAIN):
            return "OK"
        kind, i = divmod(action - G, M)
        if i >= self.cursor:
            return "ERR_NOT_OPENED"
        pos = self.positions[i]
        if kind == 3:  # ANSWER_WITH
            return "OK" if pos.latest is not None else "ERR_NO_ANSWER"
        if pos.pruned:
            return "ERR_PRUNED"
        if kind == 0:  # CONTINUE
            if pos.finished:
                return "ERR_FINISHED"
            return "ERR_BUDGET" if self.over_budget() else "OK"
        if kind == 1:  # PROBE
            if self.fused or pos.revealed_depth >= pos.depth:
                return "ERR_NOTHING_TO_PROBE"
            return "ERR_BUDGET" if self.over_budget() and self.probe_cost > 0 else "OK"
        return "ERR_FINISHED" if pos.finished else "OK"  # PRUNE

    def mask(self) -> list[bool]:
        """Admissible actions: ``check(a) == "OK"`` for every action id (the definition)."""
        return [self.check(a) == "OK" for a in range(G + 4 * self.M)]

    def fast_mask(self) -> list[bool]:
        """The same list as :meth:`mask`, in one pass over the positions (used by the benchmark)."""
        M = self.M
        out = [False] * (G + 4 * M)
        if self.done:
            return out
        over = self.over_budget()
        out[BRANCH] = out[SAMPLE] = (not over) and self.cursor < self.limit
        out[ANSWER] = out[ABSTAIN] = True
        probe_ok = not self.fused and not (over and self.probe_cost > 0)
        for i in range(self.cursor):
            pos = self.positions[i]
            out[G + 3 * M + i] = pos.latest is not None
            if pos.pruned:
                continue
            out[G + i] = not pos.finished and not over
            out[G + M + i] = probe_ok and pos.revealed_depth < pos.depth
            out[G + 2 * M + i] = not pos.finished
        return out

    def _charge(self, pos: PyPosition, tokens: int) -> None:
        self.cost += tokens
        pos.ledger += tokens

    def _reveal(self, pos: PyPosition, answer: str) -> None:
        pos.stable = pos.stable + 1 if answer == pos.latest else 1
        pos.latest = answer
        pos.revealed_depth = pos.depth
        pos.reveal_step = self.steps
        self._charge(pos, self.probe_cost)

    def _step_branch(self, pos: PyPosition) -> int:
        """The reference's private ``step(b)``: one interval, or the finishing step."""
        br = pos.branch
        k = len(br.probes)
        if pos.depth < k:
            charge = self.pf
            pos.depth += 1
        else:
            charge = max(0, br.tokens - k * self.pf)
            pos.depth = k + 1
            pos.finished = True
        self._charge(pos, charge)
        if self.fused:
            self._reveal(pos, pos.answer_at_depth())
        return charge

    def default_answer(self) -> str | None:
        return majority([p.latest for p in self.positions[:self.cursor] if p.latest is not None and not p.pruned])

    def step(self, action: int) -> dict:
        """Apply ``action``; returns ``{"charge", "position", "revealed", "finished"}``: the tokens charged,
        the position opened or addressed (-1 for ``ANSWER``/``ABSTAIN``), the answer string revealed by
        this action (``None`` if none) and whether that position is finished afterwards.
        Raises :class:`InadmissibleAction`."""
        action = int(action)
        reason = self.check(action)
        if reason != "OK":
            raise InadmissibleAction(action, reason)
        M = self.M
        cost0 = self.cost
        position, revealed, finished = -1, None, False
        if action in (BRANCH, SAMPLE):
            position = self.cursor
            pos = self.positions[position]
            self.cursor += 1
            pos.opened = True
            if action == BRANCH:
                self._step_branch(pos)
            else:
                pos.sampled = pos.finished = True
                pos.depth = len(pos.branch.probes) + 1
                self._charge(pos, pos.branch.tokens)
                self._reveal(pos, pos.branch.final)
        elif action == ANSWER:
            self.answer, self.done = self.default_answer(), True
        elif action == ABSTAIN:
            self.answer, self.done = None, True
        else:
            kind, position = divmod(action - G, M)
            pos = self.positions[position]
            if kind == 0:
                self._step_branch(pos)
            elif kind == 1:
                self._reveal(pos, pos.answer_at_depth())
            elif kind == 2:
                pos.pruned = True
            else:
                self.answer, self.done = pos.latest, True
        if position >= 0:
            pos = self.positions[position]
            if pos.reveal_step == self.steps:
                revealed = pos.latest
            finished = pos.finished
        self.steps += 1
        return {"charge": self.cost - cost0, "position": position, "revealed": revealed,
                "finished": finished}

    # -- observation (mirror of tts_gym.core.observation, in plain Python) -------------------------------
    def observe(self, *, depth_scale: float, cost_scale: float, step_scale: float, gamma: float = 0.0,
                stability_horizon: float = 10.0) -> tuple[list[list[float]], list[float]]:
        """``(positions, globals)`` as lists of floats, per the table of :mod:`tts_gym.core.observation`."""
        M, n = self.M, self.cursor
        opened = self.positions[:n]
        pool = [p.latest for p in opened if p.latest is not None and not p.pruned]
        counts = Counter(pool)
        order = ranked(pool)
        top1 = order[0] if order else None
        top2 = order[1] if len(order) > 1 else None
        fin = [p.latest for p in opened  # revealed final answers of finished positions
               if p.finished and not p.pruned and p.latest is not None and p.revealed_depth == p.depth]
        fcounts = Counter(fin)
        _, t1, t2, _ = top_two(fin)
        rows = []
        for p in range(M):
            if p >= n:
                row = [0.0] * 15
                row[5] = 1.0 if p < self.limit else 0.0
                rows.append(row)
                continue
            pos = self.positions[p]
            a = pos.latest
            live = not (pos.pruned or pos.finished)
            in_pool = a is not None and not pos.pruned
            rows.append([
                1.0, float(live), float(pos.finished), float(pos.pruned), float(pos.sampled), 0.0,
                min(1.0, pos.depth / depth_scale), float(a is not None),
                float(pos.depth > pos.revealed_depth),
                counts[a] / len(pool) if in_pool else 0.0,
                float(in_pool and a == top1), float(in_pool and a == top2),
                min(1.0, pos.stable / stability_horizon) if a is not None else 0.0,
                fcounts.get(a, 0) / len(fin) if (a is not None and fin) else 0.0,
                float(a is not None and pos.reveal_step == self.steps - 1),
            ])
        npool = len(pool)
        glob = [
            n / M, self.limit / M, min(1.0, self.cost / cost_scale),
            min(1.0, self.cost / self.budget) if self.budget else 0.0,
            counts[top1] / npool if npool else 0.0,
            counts[top2] / npool if top2 is not None else 0.0,
            npool / M, len(counts) / M,
            sum(p.finished and not p.pruned for p in opened) / M,
            sum(not (p.finished or p.pruned) for p in opened) / M,
            sum(p.pruned for p in opened) / M,
            conf(t1, t2),
            t1 / len(fin) if fin else 0.0,
            gamma, min(1.0, self.steps / step_scale),
        ]
        return rows, glob


class PyReplayEnv:
    """Minimal pure-Python counterpart of :class:`tts_gym.envs.env.TTSReplayEnv` (no gymnasium, no numba):
    ``reset(question, order)`` / ``step(action)`` with the same reward and mask. Used as the pure-Python
    baseline of the throughput benchmark."""

    def __init__(self, store, max_branches: int = 64, *, fused: bool = True, probe_cost: int = 0,
                 cost_weight: float = 0.0, token_scale: float = 100_000, observe: bool = True):
        self.store, self.M = store, int(max_branches)
        self.fused, self.probe_cost = fused, probe_cost
        self.gamma, self.token_scale, self.with_obs = float(cost_weight), float(token_scale), observe
        k_max = max(max(map(int, row)) for row in store.num_probes)
        max_full = max(max(int(t), int(k) * int(pf))
                       for t_row, k_row, pf in zip(store.branch_tokens, store.num_probes, store.probe_interval)
                       for t, k in zip(t_row, k_row))
        self._scales = dict(depth_scale=k_max + 1.0, cost_scale=float(self.M * max_full),
                            step_scale=float(self.M * (k_max + 2) * (1 if fused else 2)))
        self.episode: PyEpisode | None = None
        self.question = -1

    def reset(self, question: int, order):
        self.question = int(question)
        self.episode = PyEpisode.from_store(self.store, question, order, self.M, fused=self.fused,
                                            probe_cost=self.probe_cost)
        return self._obs(), {"action_mask": self.episode.fast_mask()}

    def _obs(self):
        if not self.with_obs:
            return None
        return self.episode.observe(gamma=self.gamma, **self._scales)

    def step(self, action: int):
        ep = self.episode
        out = ep.step(action)
        reward = -self.gamma * out["charge"] / self.token_scale
        info = dict(out, cost=ep.cost, cursor=ep.cursor, action_mask=ep.fast_mask())
        if ep.done:
            correct = ep.answer is not None and ep.answer == self.store.gold_answers[self.question]
            reward += float(correct)
            info.update(answer=ep.answer, correct=correct, tokens=ep.cost)
        return self._obs(), reward, ep.done, False, info


def toy_records() -> list[dict]:
    """Three hand-written questions in the AutoTTS record layout, small enough to reason about by
    hand: unequal branch counts (padding), a branch without probes (``K = 0``), branches whose
    probed cost exceeds their length (``K * pf > T``), ``"ERR"`` answers, a gold answer found only
    among intermediate probes, and one gold that appears nowhere."""
    return [
        {"question": "toy 0", "gold_answer": "42", "probe_freq": 100, "each_branch": [
            [["7", "42", "42"], 280, "42"],          # K*pf = 300 > T: finishing step charges 0
            [["ERR", "13"], 450, "13"],              # finishing step charges 250
            [["42"], 100, "42"],
            [[], 60, "42"],                          # no probes: BRANCH = finishing step (60)
            [["13", "13", "7", "42"], 555, "42"],
        ]},
        {"question": "toy 1", "gold_answer": "\\frac{1}{2}", "probe_freq": 50, "each_branch": [
            [["1", "\\frac{1}{2}", "2"], 170, "2"],  # gold only as an intermediate probe
            [["2", "2"], 100, "2"],
            [["3", "ERR", "1", "1"], 199, "1"],
            [["2"], 77, "2"],
            [["1", "1", "1", "1", "1", "2"], 320, "2"],
            [["ERR"], 51, "ERR"],
            [["5", "5"], 101, "5"],
            [["2", "3", "2"], 150, "2"],
            [["1"], 20, "1"],
        ]},
        {"question": "toy 2", "gold_answer": "never", "probe_freq": 10, "each_branch": [
            [["a", "b"], 25, "b"],
            [["b"], 9, "b"],
            [["c", "a", "a"], 31, "a"],
        ]},
    ]


def toy_store():
    """:func:`toy_records` as a :class:`~tts_gym.data.store.ReplayStore` (model ``"toy"``, benchmark ``"toy"``)."""
    from tts_gym.data.store import ReplayStore
    return ReplayStore.from_records("toy", "toy", toy_records())
