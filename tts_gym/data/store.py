"""In-memory replay store: the tensors of one (model, benchmark) replay.

A replay store holds, for every question ``q`` and every pre-sampled reasoning branch ``b``,
the intermediate answers recorded every ``probe_interval[q]`` tokens, the branch's total token
count and its final answer. Answers are interned per question into small integer ids so the
compiled kernels never touch strings.

Layout (``Q`` questions, ``N`` = max branches per question, ``K`` = max probes per branch):

=================  ==============  =====================================================================
field              dtype / shape   meaning
=================  ==============  =====================================================================
``probe_ids``      int32 [Q,N,K]   answer id of probe ``k`` (after ``(k+1)*pf`` tokens); ``PAD_ID`` past
                                   ``num_probes[q,b]`` and for padding branches
``num_probes``     int32 [Q,N]     ``K_b``: number of intermediate probes of the branch (0 for padding)
``branch_tokens``  int64 [Q,N]     ``T_b``: total tokens of the complete trajectory (0 for padding)
``final_ids``      int32 [Q,N]     answer id of the complete trajectory's final answer (``PAD_ID`` pad)
``num_branches``   int32 [Q]       real branches of question ``q`` (branches ``>=`` it are padding)
``probe_interval`` int32 [Q]       ``pf``: tokens per probe interval
``gold_ids``       int32 [Q]       id of the gold answer in the question's table, ``GOLD_ABSENT`` if the
                                   gold string is never revealed by any probe or final answer
``answer_tables``  tuple of tuples per-question answer strings; id ``i`` is ``answer_tables[q][i]``
``gold_answers``   tuple of str    gold answer strings (kept even when absent from the table)
``questions``      tuple of str    problem statements
=================  ==============  =====================================================================

Interning order (documented, stable): for each question, branches are scanned in stored order; for
each branch its probes in order, then its final answer; a string receives the next id at its first
occurrence. Answers are compared as exact strings -- no normalisation (see the replay spec).

The gold answer is metadata for *scoring only*: environments never put it in observations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PAD_ID: int = -1
"""Pad value of ``probe_ids`` / ``final_ids`` beyond the real probes and branches."""

GOLD_ABSENT: int = -1
"""``gold_ids`` value of a question whose gold answer appears in no probe and no final answer."""


@dataclass(frozen=True, eq=False)
class ReplayStore:
    model: str
    benchmark: str
    probe_ids: np.ndarray
    num_probes: np.ndarray
    branch_tokens: np.ndarray
    final_ids: np.ndarray
    num_branches: np.ndarray
    probe_interval: np.ndarray
    gold_ids: np.ndarray
    answer_tables: tuple
    gold_answers: tuple
    questions: tuple
    attrs: dict = field(default_factory=dict)

    # -- shape helpers -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.model}/{self.benchmark}"

    @property
    def num_questions(self) -> int:
        return int(self.probe_ids.shape[0])

    @property
    def max_branches(self) -> int:
        return int(self.probe_ids.shape[1])

    @property
    def max_probes(self) -> int:
        return int(self.probe_ids.shape[2])

    def answer(self, q: int, answer_id: int) -> str | None:
        """The exact string of answer ``answer_id`` of question ``q`` (``None`` for a negative id)."""
        return None if answer_id < 0 else self.answer_tables[q][answer_id]

    def __repr__(self) -> str:  # the arrays are large; say what the store is
        return (f"ReplayStore({self.name!r}, questions={self.num_questions}, "
                f"branches={self.max_branches}, max_probes={self.max_probes})")

    # -- checks --------------------------------------------------------------------------------
    def validate(self) -> "ReplayStore":
        """Check the internal consistency of the tensors; raise ``ValueError`` naming the first fault.

        Checks dtypes and shapes, padding (``PAD_ID`` exactly past ``num_probes`` / ``num_branches``),
        answer ids inside each question's table, positive token counts and probe intervals, and that
        ``gold_ids`` agrees with ``gold_answers``. Vectorised: cheap even for large synthetic stores.
        Returns ``self`` so that it can be chained.
        """
        def fail(msg: str) -> None:
            raise ValueError(f"store {self.name}: {msg}")

        if not isinstance(self.model, str) or not isinstance(self.benchmark, str):
            fail("model and benchmark must be strings")
        expect = {"probe_ids": (np.int32, 3), "num_probes": (np.int32, 2), "branch_tokens": (np.int64, 2),
                  "final_ids": (np.int32, 2), "num_branches": (np.int32, 1),
                  "probe_interval": (np.int32, 1), "gold_ids": (np.int32, 1)}
        for name, (dtype, ndim) in expect.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != ndim:
                fail(f"{name} must be a {ndim}-d {np.dtype(dtype).name} array, got "
                     f"{getattr(arr, 'dtype', type(arr).__name__)} with shape {getattr(arr, 'shape', '?')}")
        Q, N, K = self.probe_ids.shape
        for name in ("num_probes", "branch_tokens", "final_ids"):
            if getattr(self, name).shape != (Q, N):
                fail(f"{name} has shape {getattr(self, name).shape}, expected {(Q, N)}")
        for name in ("num_branches", "probe_interval", "gold_ids"):
            if getattr(self, name).shape != (Q,):
                fail(f"{name} has shape {getattr(self, name).shape}, expected {(Q,)}")
        for name in ("answer_tables", "gold_answers", "questions"):
            if len(getattr(self, name)) != Q:
                fail(f"{name} has {len(getattr(self, name))} entries, expected {Q}")
        if np.any((self.num_branches < 0) | (self.num_branches > N)):
            fail(f"num_branches outside 0..{N}")
        if np.any(self.probe_interval <= 0):
            fail(f"non-positive probe_interval at question {int(np.argmax(self.probe_interval <= 0))}")
        real = np.arange(N)[None, :] < self.num_branches[:, None]
        if np.any(self.num_probes < 0) or np.any(self.num_probes > K) or np.any(self.num_probes[~real] != 0):
            fail(f"num_probes outside 0..{K} (or non-zero for a padding branch)")
        if np.any(self.branch_tokens[real] <= 0) or np.any(self.branch_tokens[~real] != 0):
            fail("branch_tokens must be > 0 for real branches and 0 for padding")
        sizes = np.array([len(t) for t in self.answer_tables], dtype=np.int64)
        in_probe = np.arange(K)[None, None, :] < self.num_probes[:, :, None]
        ids = self.probe_ids
        if np.any(ids[~in_probe] != PAD_ID) or np.any(self.final_ids[~real] != PAD_ID):
            fail(f"padding must be PAD_ID={PAD_ID}")
        bad = in_probe & ((ids < 0) | (ids >= sizes[:, None, None]))
        if bad.any():
            q, b, k = (int(v[0]) for v in np.nonzero(bad))
            fail(f"probe id {int(ids[q, b, k])} out of range at question {q}, branch {b}, probe {k}")
        bad = real & ((self.final_ids < 0) | (self.final_ids >= sizes[:, None]))
        if bad.any():
            q, b = (int(v[0]) for v in np.nonzero(bad))
            fail(f"final id {int(self.final_ids[q, b])} out of range at question {q}, branch {b}")
        for q in range(Q):
            gid = int(self.gold_ids[q])
            tab = self.answer_tables[q]
            if gid == GOLD_ABSENT:
                if self.gold_answers[q] in tab:
                    fail(f"question {q}: gold answer is in the table but gold_ids says absent")
            elif not 0 <= gid < len(tab) or tab[gid] != self.gold_answers[q]:
                fail(f"question {q}: gold_ids[{q}]={gid} does not point at the gold answer")
        return self

    def equals(self, other: "ReplayStore") -> bool:
        """Exact equality of every field (array dtypes and contents, strings, attrs)."""
        if not isinstance(other, ReplayStore):
            return False
        for name in ("probe_ids", "num_probes", "branch_tokens", "final_ids", "num_branches",
                     "probe_interval", "gold_ids"):
            a, b = getattr(self, name), getattr(other, name)
            if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                return False
        return (self.model == other.model and self.benchmark == other.benchmark
                and tuple(map(tuple, self.answer_tables)) == tuple(map(tuple, other.answer_tables))
                and tuple(self.gold_answers) == tuple(other.gold_answers)
                and tuple(self.questions) == tuple(other.questions) and self.attrs == other.attrs)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_records(cls, model: str, benchmark: str, records: list[dict[str, Any]],
                     attrs: dict | None = None) -> "ReplayStore":
        """Build a store from already-validated question records.

        Each record: ``{"question": str, "gold_answer": str, "probe_freq": int,
        "each_branch": [[probe_list, branch_tokens, final_answer], ...]}`` (the AutoTTS layout).
        Validation is the importer's job (:mod:`tts_gym.data.autotts`); this only interns and packs.
        """
        Q = len(records)
        N = max(len(r["each_branch"]) for r in records)
        K = max(len(br[0]) for r in records for br in r["each_branch"])
        probe_ids = np.full((Q, N, K), PAD_ID, dtype=np.int32)
        num_probes = np.zeros((Q, N), dtype=np.int32)
        branch_tokens = np.zeros((Q, N), dtype=np.int64)
        final_ids = np.full((Q, N), PAD_ID, dtype=np.int32)
        num_branches = np.zeros(Q, dtype=np.int32)
        probe_interval = np.zeros(Q, dtype=np.int32)
        gold_ids = np.full(Q, GOLD_ABSENT, dtype=np.int32)
        tables = []
        for q, rec in enumerate(records):
            table: dict[str, int] = {}
            intern = lambda s: table.setdefault(s, len(table))  # noqa: E731 - first-occurrence ids
            branches = rec["each_branch"]
            num_branches[q] = len(branches)
            probe_interval[q] = int(rec["probe_freq"])
            for b, (probes, tokens, final) in enumerate(branches):
                num_probes[q, b] = len(probes)
                probe_ids[q, b, :len(probes)] = [intern(s) for s in probes]
                branch_tokens[q, b] = int(tokens)
                final_ids[q, b] = intern(final)
            gold_ids[q] = table.get(rec["gold_answer"], GOLD_ABSENT)
            tables.append(tuple(table))
        return cls(model=model, benchmark=benchmark, probe_ids=probe_ids, num_probes=num_probes,
                   branch_tokens=branch_tokens, final_ids=final_ids, num_branches=num_branches,
                   probe_interval=probe_interval, gold_ids=gold_ids, answer_tables=tuple(tables),
                   gold_answers=tuple(r["gold_answer"] for r in records),
                   questions=tuple(r["question"] for r in records), attrs=dict(attrs or {}))

    def to_records(self) -> list[dict[str, Any]]:
        """The inverse of :meth:`from_records` (AutoTTS layout, with ``final_answers_trace``)."""
        out = []
        for q in range(self.num_questions):
            tab = self.answer_tables[q]
            branches = []
            for b in range(int(self.num_branches[q])):
                k = int(self.num_probes[q, b])
                branches.append([[tab[i] for i in self.probe_ids[q, b, :k]],
                                 int(self.branch_tokens[q, b]), tab[self.final_ids[q, b]]])
            out.append({"question": self.questions[q],
                        "final_answers_trace": [br[2] for br in branches],
                        "each_branch": branches, "gold_answer": self.gold_answers[q],
                        "probe_freq": int(self.probe_interval[q])})
        return out
