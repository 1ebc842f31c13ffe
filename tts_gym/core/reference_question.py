"""The AutoTTS reference's question object over one episode's branches, in plain Python.

:class:`ReferenceQuestion` implements the reference's four calls (``probe_new``, ``probe_more``,
``get_new_branch_final_answer``, ``get_seq_and_total_tokens``, plus
``get_cost_per_branch_active``) with the env's transition rules (``docs/replay-semantics.md``
section 2: fused reveals, free probes, finished positions cannot be continued) as a few list
operations per call, and records every call as an env action id (:mod:`tts_gym.core.actions`).
The compiled kernels re-play those logs afterwards and are the authority for costs and answers:
the discovery sandbox compares every episode, ``tts-gym eval --controller`` scores from the
re-play, :class:`~tts_gym.policies.autotts_adapter.AutoTTSPolicy` hands the log to the env.

This module imports nothing beyond the standard library and the action layout, so the sandboxed
controller process starts without loading the compiled layer. Nothing here can reach a gold
answer: a :class:`BranchTable` reads only branch tensors and answer strings.

See :mod:`tts_gym.policies.autotts_adapter` for the call semantics (safe-wrapper ``None`` vs the
reference's exceptions, ``strict``, the index quirks) and for committing the returned string.
"""
from __future__ import annotations

import operator
from typing import Any, Callable

from tts_gym.core import actions as A

__all__ = ["BranchTable", "ReferenceQuestion"]

_G = A.NUM_GLOBAL_ACTIONS


class BranchTable:
    """The stored branches of every question of one or more stores as Python values.

    ``rows(q)`` is, per stored branch ``b`` of question ``q`` (questions numbered across the
    sources in order, as :func:`tts_gym.core.kernels.pack_stores` numbers them), the tuple
    ``(probe strings, K_b, T_b, final string, probe ids, final id)`` -- built on first use and
    kept. A source is any object with the store arrays (``probe_ids``, ``num_probes``,
    ``branch_tokens``, ``final_ids``, ``num_branches``, ``probe_interval``): a
    :class:`~tts_gym.data.store.ReplayStore` or packed :class:`~tts_gym.core.kernels.ReplayData`.
    Nothing about the gold answer is read or kept.
    """

    def __init__(self, data, answer_tables) -> None:
        self._q: list = []           # question -> (source, local question index)
        self._tables: list = list(answer_tables)
        self._add(data)
        self._rows: dict[int, list] = {}

    def _add(self, src) -> None:
        n = int(src.num_probes.shape[0])
        self._q.extend((src, i) for i in range(n))

    @classmethod
    def from_stores(cls, stores) -> "BranchTable":
        """Over ``stores`` in order (without packing them: no compiled code is loaded)."""
        stores = list(stores)
        table = cls(stores[0], stores[0].answer_tables)
        for s in stores[1:]:
            table._add(s)
            table._tables.extend(s.answer_tables)
        return table

    def num_branches(self, q: int) -> int:
        src, i = self._q[q]
        return int(src.num_branches[i])

    def probe_interval(self, q: int) -> int:
        src, i = self._q[q]
        return int(src.probe_interval[i])

    def rows(self, q: int) -> list:
        rows = self._rows.get(q)
        if rows is None:
            src, i = self._q[q]
            tab = self._tables[q]
            n = int(src.num_branches[i])
            ks = src.num_probes[i].tolist()
            ts = src.branch_tokens[i].tolist()
            fs = src.final_ids[i].tolist()
            pid = src.probe_ids[i]
            rows = []
            for b in range(n):
                ids = pid[b, :ks[b]].tolist()
                rows.append((tuple(tab[j] for j in ids), ks[b], ts[b], tab[fs[b]], ids, fs[b]))
            self._rows[q] = rows
        return rows

    def question(self, q: int, order, max_branches: int, **kw) -> "ReferenceQuestion":
        """A fresh :class:`ReferenceQuestion` for question ``q`` with branch order ``order``
        (stored branch index per position)."""
        limit = min(int(max_branches), self.num_branches(q))
        order = order.tolist() if hasattr(order, "tolist") else list(order)
        return ReferenceQuestion(self.rows(q), order[:limit], self.probe_interval(q), limit,
                                 max_branches, **kw)


class ReferenceQuestion:
    """The AutoTTS question object over one episode's branches (see the module docstring).

    ``rows``: the question's stored branches (:meth:`BranchTable.rows`); ``order``: stored branch
    index of each position; ``limit``: positions that may be opened. Every call that is an env
    action is appended to :attr:`actions` (action ids of :mod:`tts_gym.core.actions`); :attr:`cost`
    is the episode's cost so far; :meth:`commit` appends the answering action.

    ``inadmissible(message)``, when given, is called (and must raise) instead of raising
    ``ValueError`` for a call that ``strict`` forbids (``probe_more`` on an unopened or finished
    position, or with a non-integer index).
    """

    # per opened position p: _pos[p] its branch row, _depth[p] intervals advanced (K_b + 1 once
    # finished), _fin[p] 0 (open), 1 (finished by probing) or 2 (full read)
    __slots__ = ("_rows", "_order", "_limit", "_pf", "_M", "_strict", "_raise", "_bad", "_pos",
                 "_depth", "_fin", "_cursor", "cost", "actions", "free_repeats")

    def __init__(self, rows, order, probe_freq: int, limit: int, max_branches: int, *,
                 strict: bool = False, raise_on_exhaustion: bool = False,
                 inadmissible: Callable[[str], Any] | None = None) -> None:
        self._rows = rows
        self._order = order
        self._limit = int(limit)
        self._pf = int(probe_freq)
        self._M = int(max_branches)
        self._strict = bool(strict)
        self._raise = bool(raise_on_exhaustion)
        self._bad = inadmissible
        self._pos: list = []
        self._depth: list = []
        self._fin: list = []
        self._cursor = 0
        self.cost = 0
        self.actions: list = []
        self.free_repeats = 0

    # -- public, gold-free metadata --------------------------------------------------------------
    @property
    def probe_freq(self) -> int:
        return self._pf

    @property
    def num_branches(self) -> int:
        """Positions this episode may open."""
        return self._limit

    @property
    def cursor(self) -> int:
        return self._cursor

    # -- the reference operations ----------------------------------------------------------------
    def probe_new(self):
        """Open the next branch and read its first probe: ``(answer, position, finished)``."""
        p = self._cursor
        if p >= self._limit:
            if self._raise:
                raise ValueError("Index out of range for branches.")
            return None
        row = self._rows[self._order[p]]
        self._cursor = p + 1
        self._pos.append(row)
        self._depth.append(1)
        self.actions.append(0)          # BRANCH
        if row[1] > 0:
            self._fin.append(0)
            self.cost += self._pf
            return row[0][0], p, False
        self._fin.append(1)             # no intermediate probe: opening is the finishing step
        self.cost += row[2]
        return row[3], p, True

    def probe_more(self, index):
        """Advance opened position ``index`` by one interval: ``(answer, finished)``."""
        i = index
        if type(i) is not int:
            try:
                i = operator.index(index)
            except TypeError as exc:
                if self._bad is not None:
                    self._bad(f"probe_more({index!r}): {exc}")
                raise
        if i < 0 or i >= self._cursor:
            if self._strict:
                self._refuse(f"probe_more({i}): position not opened (cursor={self._cursor}); "
                             f"the env only advances opened positions 0 <= i < cursor")
            if self._raise and i >= self._limit:
                raise IndexError(f"branch index {i} out of range")
            return None
        row = self._pos[i]
        if self._fin[i]:
            if self._strict:
                self._refuse(f"probe_more({i}): branch already finished (the reference would "
                             f"re-charge its remainder; the env forbids the action)")
            self.free_repeats += 1
            return row[3], True
        d = self._depth[i]
        self.actions.append(_G + i)     # CONTINUE(i)
        if d < row[1]:
            self._depth[i] = d + 1
            self.cost += self._pf
            return row[0][d], False
        # finishing step: the remainder of the trajectory beyond the K_b probed intervals
        rest = row[2] - row[1] * self._pf
        if rest > 0:
            self.cost += rest
        self._depth[i] = row[1] + 1
        self._fin[i] = 1
        return row[3], True

    def _refuse(self, message: str):
        if self._bad is not None:
            self._bad(message)
        raise ValueError(message)

    def get_new_branch_final_answer(self):
        """Read the next branch to completion (cost ``T_b``): its final answer."""
        p = self._cursor
        if p >= self._limit:
            if self._raise:
                raise IndexError("list index out of range")
            return None
        row = self._rows[self._order[p]]
        self._cursor = p + 1
        self._pos.append(row)
        self._depth.append(row[1] + 1)
        self._fin.append(2)
        self.cost += row[2]
        self.actions.append(1)          # SAMPLE
        return row[3]

    def get_seq_and_total_tokens(self):
        """``(sequential tokens, total tokens)``; the first is the reference's stub, always 0."""
        return 0, self.cost

    def get_cost_per_branch_active(self):
        """Tokens charged to each opened position, in opening order."""
        pf, out = self._pf, []
        for row, d, f in zip(self._pos, self._depth, self._fin):
            if f == 2:
                out.append(row[2])
            elif f == 1:
                out.append(max(row[2], row[1] * pf))
            else:
                out.append(d * pf)
        return out

    # -- committing ----------------------------------------------------------------------------------
    def latest(self, p: int) -> tuple[str, int]:
        """``(string, id)`` of position ``p``'s latest revealed answer."""
        row = self._pos[p]
        if self._fin[p]:
            return row[3], row[5]
        d = self._depth[p]
        return row[0][d - 1], row[4][d - 1]

    def commit(self, answer) -> tuple[int, int, bool]:
        """``(action, answer id, unmapped)`` for ``solve``'s return value (see the module
        docstring); the action is appended to the log."""
        action, aid, unmapped = A.ABSTAIN, -1, answer is not None
        if isinstance(answer, str):
            for p in range(self._cursor):
                s, i = self.latest(p)
                if s == answer:
                    action, aid, unmapped = _G + 3 * self._M + p, i, False
                    break
        self.actions.append(action)
        return action, aid, unmapped

    def __repr__(self) -> str:
        return f"ReferenceQuestion(cursor={self._cursor}, cost={self.cost})"
