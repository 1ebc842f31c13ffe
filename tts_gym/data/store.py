"""In-memory replay store: the tensors of one (model, benchmark) replay.

A replay store holds, for every question ``q`` and every pre-sampled reasoning branch ``b``,
the intermediate answers recorded every ``probe_interval[q]`` tokens, the branch's total token
count and its final answer. Answers are interned per question into small integer ids so the
compiled kernels never touch strings.

Layout (``Q`` questions, ``N`` = max branches per question, ``K`` = max probes per branch):

=================  ==============  =====================================================================
field              dtype / shape   meaning
=================  ==============  =====================================================================
``probe_ids``      int16 [Q,N,K]   answer id of probe ``k`` (after ``(k+1)*pf`` tokens); ``PAD_ID`` past
                   (int32 when a   ``num_probes[q,b]`` and for padding branches
                   table exceeds
                   32767 answers)
``num_probes``     int32 [Q,N]     ``K_b``: number of intermediate probes of the branch (0 for padding)
``branch_tokens``  int64 [Q,N]     ``T_b``: total tokens of the complete trajectory (0 for padding)
``final_ids``      int32 [Q,N]     answer id of the complete trajectory's final answer (``PAD_ID`` pad)
``num_branches``   int32 [Q]       real branches of question ``q`` (branches ``>=`` it are padding)
``probe_interval`` int32 [Q]       ``pf``: tokens per probe interval
``gold_ids``       int32 [Q]       id of the gold answer in the question's table, ``GOLD_ABSENT`` if the
                                   gold string is never revealed by any probe or final answer
``answer_tables``  AnswerTables    per-question answer strings; id ``i`` is ``answer_tables[q][i]`` (a
                                   sequence of tuples, packed as one UTF-8 buffer + offsets)
``gold_answers``   tuple of str    gold answer strings (kept even when absent from the table)
``questions``      tuple of str    problem statements
=================  ==============  =====================================================================

Interning order (documented, stable): for each question, branches are scanned in stored order; for
each branch its probes in order, then its final answer; a string receives the next id at its first
occurrence. Answers are compared as exact strings -- no normalisation (see the replay spec).

The gold answer is metadata for *scoring only*: environments never put it in observations.

Bounds (checked by :meth:`ReplayStore.validate`, the one validation every store goes through --
JSON import, HDF5 load, the collector, the synthetic generator, every write): at least one
question; ``1 <= num_branches <= MAX_BRANCHES``; ``1 <= probe_interval <= MAX_PROBE_INTERVAL``;
``1 <= branch_tokens <= MAX_BRANCH_TOKENS``; ``0 <= num_probes <= ceil(branch_tokens /
probe_interval)``; answer ids inside their table; the strings of a table distinct; no NUL
character in any string. With these bounds no episode's token total can overflow int64
(``MAX_BRANCHES * (MAX_BRANCH_TOKENS + MAX_PROBE_INTERVAL) < 2**61``).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PAD_ID: int = -1
"""Pad value of ``probe_ids`` / ``final_ids`` beyond the real probes and branches."""

GOLD_ABSENT: int = -1
"""``gold_ids`` value of a question whose gold answer appears in no probe and no final answer."""

MAX_BRANCH_TOKENS = 2**40
"""Largest token count of one branch (about 1.1e12: far beyond any context length)."""
MAX_PROBE_INTERVAL = 2**31 - 1
"""Largest probe interval (int32)."""
MAX_BRANCHES = 2**20
"""Most branches of one question."""
MAX_QUESTIONS = 2**31 - 1
"""Most questions of one store (int32 question indices)."""
COMPACT_ANSWERS = 2**15 - 1
"""Answer tables up to this size keep ``probe_ids`` as int16 (else int32)."""

_VALIDATE_BLOCK = 1 << 22  # elements of [Q, N, K] checked at once: bounded temporaries

_CANONICAL = {"num_probes": np.int32, "branch_tokens": np.int64, "final_ids": np.int32,
              "num_branches": np.int32, "probe_interval": np.int32, "gold_ids": np.int32}


class StoreFormatError(ValueError):
    """A replay store (JSON, HDF5 or in memory) is malformed.

    Attributes: ``file`` (or the store's name), ``dataset`` (HDF5 dataset / store field),
    ``question`` and ``branch`` (0-based indices, ``None`` when not relevant), ``kind`` (a short
    fault code) and ``detail`` (the message without the location prefix). The message reads
    ``FILE: dataset 'D': question Q, branch B: DETAIL``.
    """

    def __init__(self, detail: str, *, file: str | os.PathLike | None = None, question: int | None = None,
                 branch: int | None = None, kind: str = "invalid", dataset: str | None = None):
        self.file = None if file is None else str(file)
        self.question = question
        self.branch = branch
        self.kind = kind
        self.detail = detail
        self.dataset = dataset
        where = [self.file] if self.file else []
        if dataset:
            where.append(f"dataset {dataset!r}")
        loc = []
        if question is not None:
            loc.append(f"question {question}")
        if branch is not None:
            loc.append(f"branch {branch}")
        if loc:
            where.append(", ".join(loc))
        super().__init__(": ".join(where + [detail]))


def json_object(text, what: str) -> dict:
    """``text`` (a store's ``attrs_json``, a ``--params`` option) parsed as a JSON object;
    ``ValueError`` ``"<what> is not valid JSON (...)"`` or ``"<what> must be a JSON object, got <type>"``."""
    try:
        obj = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(obj).__name__}")
    return obj


def answer_dtype(max_table_size: int) -> type:
    """The dtype of ``probe_ids`` for answer tables of at most ``max_table_size`` entries."""
    return np.int16 if int(max_table_size) <= COMPACT_ANSWERS else np.int32


def empty_branch_arrays(Q: int, N: int, K: int, probe_dtype=np.int32
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(probe_ids, num_probes, branch_tokens, final_ids)`` for ``Q`` questions of at most ``N``
    branches of at most ``K`` probes, every slot empty (ids :data:`PAD_ID`, counts and tokens 0)."""
    return (np.full((Q, N, K), PAD_ID, dtype=probe_dtype), np.zeros((Q, N), dtype=np.int32),
            np.zeros((Q, N), dtype=np.int64), np.full((Q, N), PAD_ID, dtype=np.int32))


def stack_branch_arrays(parts: Sequence[Any], probe_dtype
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(probe_ids, num_probes, branch_tokens, final_ids)`` of the stores ``parts`` stacked along
    the question axis, the branch and probe axes padded to the widest part."""
    Q = sum(p.num_questions for p in parts)
    N = max(p.max_branches for p in parts)
    K = max(p.max_probes for p in parts)
    arrays = empty_branch_arrays(Q, N, K, probe_dtype)
    probe_ids, num_probes, branch_tokens, final_ids = arrays
    q0 = 0
    for p in parts:
        q1 = q0 + p.num_questions
        n, k = p.max_branches, p.max_probes
        probe_ids[q0:q1, :n, :k] = p.probe_ids
        num_probes[q0:q1, :n] = p.num_probes
        branch_tokens[q0:q1, :n] = p.branch_tokens
        final_ids[q0:q1, :n] = p.final_ids
        q0 = q1
    return arrays


def _show(s: str, limit: int = 40) -> str:
    text = repr(s)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


class AnswerTables(Sequence):
    """Every question's answer table, packed: one UTF-8 buffer, the end offset of each answer in it,
    and the first answer of each question. ``tables[q]`` is question ``q``'s table as a tuple of
    strings (decoded on access, recent ones cached); ``tables.sizes()`` the table sizes.

    A plain tuple of tuples of strings takes ~70 bytes per answer in CPython; this takes the
    string's UTF-8 bytes plus 4 (or 8) bytes."""

    __slots__ = ("_blob", "_ends", "_starts", "_cache")
    _CACHE = 4096

    def __init__(self, blob: bytes, ends: np.ndarray, starts: np.ndarray):
        self._blob = bytes(blob)
        self._ends = np.asarray(ends)
        self._starts = np.asarray(starts, dtype=np.int64)
        self._cache: dict[int, tuple] = {}

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def build(cls, tables: Iterable[Iterable[str]]) -> "AnswerTables":
        """From per-question sequences of strings (raises ``StoreFormatError`` for a non-string or
        a string that is not valid Unicode, naming question and answer id)."""
        if isinstance(tables, AnswerTables):
            return tables
        tabs = [t if isinstance(t, (tuple, list)) else tuple(t) for t in tables]
        sizes = np.fromiter(map(len, tabs), dtype=np.int64, count=len(tabs))
        starts = np.zeros(len(tabs) + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        flat = [s for t in tabs for s in t]
        return cls.from_flat(flat, starts)

    @classmethod
    def from_flat(cls, flat: Sequence[str], starts: np.ndarray) -> "AnswerTables":
        """From every table's strings concatenated (question order) and the ``Q + 1`` table starts."""
        starts = np.asarray(starts, dtype=np.int64)
        bad = next((i for i, s in enumerate(flat) if type(s) is not str), None) \
            if not set(map(type, flat)) <= {str} else None
        if bad is not None:
            q = int(np.searchsorted(starts, bad, side="right") - 1)
            raise StoreFormatError(f"answer {bad - int(starts[q])} must be a string, got "
                                   f"{type(flat[bad]).__name__} {flat[bad]!r}", question=q,
                                   dataset="answer_tables", kind="non_string_answer")
        lens = np.fromiter(map(len, flat), dtype=np.int64, count=len(flat))
        joined = "".join(flat)
        try:
            blob = joined.encode("utf-8")
        except UnicodeEncodeError as exc:
            char_ends = np.cumsum(lens)
            i = int(np.searchsorted(char_ends, exc.start, side="right"))
            q = int(np.searchsorted(starts, i, side="right") - 1)
            raise StoreFormatError(f"answer {i - int(starts[q])} {_show(flat[i])} contains a lone "
                                   f"surrogate (not valid Unicode)", question=q, dataset="answer_tables",
                                   kind="invalid_string") from None
        if len(blob) != len(joined):  # non-ASCII: byte lengths differ from character lengths
            lens = np.fromiter((len(s.encode("utf-8")) for s in flat), dtype=np.int64, count=len(flat))
        ends = np.cumsum(lens)
        return cls(blob, ends.astype(np.int32 if len(blob) < 2**31 else np.int64), starts)

    @classmethod
    def from_bytes(cls, chunks: Iterable[Sequence[bytes]], starts: np.ndarray) -> "AnswerTables":
        """From chunks of UTF-8 encoded answers (e.g. read from HDF5); the bytes are checked to be
        UTF-8 (raises ``StoreFormatError`` naming the question and answer id)."""
        starts = np.asarray(starts, dtype=np.int64)
        parts, lens, a0 = [], [], 0
        for chunk in chunks:
            chunk = list(chunk)
            bad = next((i for i, s in enumerate(chunk) if type(s) is not bytes), None) \
                if not set(map(type, chunk)) <= {bytes} else None
            if bad is not None:
                q = int(np.searchsorted(starts, a0 + bad, side="right") - 1)
                raise StoreFormatError(f"answer {a0 + bad - int(starts[q])} is not a string "
                                       f"({type(chunk[bad]).__name__})", question=q,
                                       dataset="answers", kind="non_string_answer")
            blob = b"".join(chunk)
            try:
                blob.decode("utf-8")
            except UnicodeDecodeError:
                i = next(i for i, s in enumerate(chunk) if not _utf8(s))
                q = int(np.searchsorted(starts, a0 + i, side="right") - 1)
                raise StoreFormatError(f"answer {a0 + i - int(starts[q])} is not valid UTF-8",
                                       question=q, dataset="answers", kind="invalid_string") from None
            parts.append(blob)
            lens.append(np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk)))
            a0 += len(chunk)
        blob = b"".join(parts)
        del parts
        ends = np.cumsum(np.concatenate(lens) if lens else np.zeros(0, np.int64))
        return cls(blob, ends.astype(np.int32 if len(blob) < 2**31 else np.int64), starts)

    # -- access ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._starts) - 1

    def sizes(self) -> np.ndarray:
        """int64 ``[Q]``: entries of each question's table."""
        return np.diff(self._starts)

    @property
    def num_answers(self) -> int:
        """Entries of all tables together."""
        return int(self._starts[-1])

    @property
    def nbytes(self) -> int:
        return len(self._blob) + self._ends.nbytes + self._starts.nbytes

    def _span(self, a0: int, a1: int) -> tuple[int, int]:
        b0 = int(self._ends[a0 - 1]) if a0 > 0 else 0
        b1 = int(self._ends[a1 - 1]) if a1 > 0 else 0
        return b0, b1

    def flat(self, a0: int = 0, a1: int | None = None) -> list[str]:
        """Answers ``a0 <= i < a1`` of the concatenated tables (question order), decoded."""
        a1 = self.num_answers if a1 is None else a1
        if a1 <= a0:
            return []
        b0, b1 = self._span(a0, a1)
        ends = (self._ends[a0:a1] - b0).tolist()
        starts = [0] + ends[:-1]
        raw = self._blob[b0:b1]
        if raw.isascii():
            text = raw.decode("ascii")
            return [text[i:j] for i, j in zip(starts, ends)]
        return [raw[i:j].decode("utf-8") for i, j in zip(starts, ends)]

    def flat_bytes(self, a0: int = 0, a1: int | None = None) -> list[bytes]:
        """As :meth:`flat`, UTF-8 encoded."""
        a1 = self.num_answers if a1 is None else a1
        if a1 <= a0:
            return []
        b0, b1 = self._span(a0, a1)
        ends = (self._ends[a0:a1] - b0).tolist()
        raw = self._blob[b0:b1]
        return [raw[i:j] for i, j in zip([0] + ends[:-1], ends)]

    def __getitem__(self, q):
        if isinstance(q, slice):
            return tuple(self[i] for i in range(*q.indices(len(self))))
        q = int(q)
        if q < 0:
            q += len(self)
        if not 0 <= q < len(self):
            raise IndexError(f"question {q} out of range")
        hit = self._cache.get(q)
        if hit is None:
            hit = tuple(self.flat(int(self._starts[q]), int(self._starts[q + 1])))
            if len(self._cache) >= self._CACHE:
                self._cache.clear()
            self._cache[q] = hit
        return hit

    def answer(self, q: int, i: int) -> str:
        """Answer ``i`` of question ``q``."""
        a = int(self._starts[q]) + int(i)
        if not 0 <= i < int(self._starts[q + 1] - self._starts[q]):
            raise IndexError(f"answer {i} out of range for question {q}")
        return self.flat(a, a + 1)[0]

    def select(self, questions: Sequence[int]) -> "AnswerTables":
        """The tables of ``questions`` (in that order) as a new packed object."""
        return AnswerTables.build(self[int(q)] for q in questions)

    # -- checks ------------------------------------------------------------------------------------
    def first_fault(self) -> tuple[int, str, str] | None:
        """``(question, kind, detail)`` of the first table holding a string twice or a NUL
        character, else ``None``."""
        nul = self._blob.find(b"\x00")
        if nul >= 0:
            i = int(np.searchsorted(self._ends, nul, side="right"))
            q = int(np.searchsorted(self._starts, i, side="right") - 1)
            return q, "invalid_string", (f"answer {i - int(self._starts[q])} "
                                         f"{_show(self.flat(i, i + 1)[0])} contains a NUL character")
        starts = self._starts.tolist()
        step = 1 << 16
        q = 0
        Q = len(self)
        while q < Q:
            q1 = int(np.searchsorted(self._starts, self._starts[q] + step, side="right")) - 1
            q1 = min(Q, max(q1, q + 1))
            flat = self.flat_bytes(starts[q], starts[q1])
            base = starts[q]
            for qq in range(q, q1):
                tab = flat[starts[qq] - base:starts[qq + 1] - base]
                if len(set(tab)) != len(tab):
                    seen: dict[bytes, int] = {}
                    for i, s in enumerate(tab):
                        if s in seen:
                            return qq, "duplicate_answer", (
                                f"the answer table holds {_show(s.decode('utf-8', 'replace'))} twice "
                                f"(ids {seen[s]} and {i}); answers must be distinct strings")
                        seen[s] = i
            q = q1
        return None

    # -- comparison ----------------------------------------------------------------------------------
    def __eq__(self, other) -> bool:
        if isinstance(other, AnswerTables):
            return (self._blob == other._blob and np.array_equal(self._starts, other._starts)
                    and np.array_equal(self._ends, other._ends))
        if isinstance(other, (tuple, list)):
            return len(other) == len(self) and all(tuple(a) == b for a, b in zip(other, self))
        return NotImplemented

    __hash__ = None  # mutable-free but compared by value

    def __repr__(self) -> str:
        return f"AnswerTables({len(self)} questions, {self.num_answers} answers, {len(self._blob)} bytes)"

    def __reduce__(self):
        return (AnswerTables, (self._blob, self._ends, self._starts))


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _lossless(arr: np.ndarray, dtype) -> np.ndarray:
    """``arr`` as ``dtype`` when every value fits (else ``arr`` unchanged, for validate to report)."""
    if arr.dtype == dtype or arr.dtype.kind not in "iub":
        return arr
    if arr.dtype.kind == "b":
        return arr
    info = np.iinfo(dtype)
    if arr.size and (int(arr.min()) < info.min or int(arr.max()) > info.max):
        return arr
    return arr.astype(dtype)


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
    answer_tables: AnswerTables
    gold_answers: tuple
    questions: tuple
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # canonical, compact representation: packed answer tables, int16 probe ids where they fit
        # (lossless conversions only; anything else is left for validate() to report)
        tables = self.answer_tables
        if not isinstance(tables, AnswerTables):
            tables = AnswerTables.build(tables)
            object.__setattr__(self, "answer_tables", tables)
        for name, dt in _CANONICAL.items():
            arr = getattr(self, name)
            if isinstance(arr, np.ndarray):
                object.__setattr__(self, name, _lossless(arr, dt))
        pid = self.probe_ids
        if isinstance(pid, np.ndarray) and pid.dtype.kind in "iu":
            sizes = tables.sizes()
            dt = answer_dtype(int(sizes.max()) if sizes.size else 0)
            conv = _lossless(pid, dt)
            if conv is pid and pid.dtype not in (np.int16, np.int32):
                conv = _lossless(pid, np.int32)
            object.__setattr__(self, "probe_ids", conv)
        for name in ("gold_answers", "questions"):
            v = getattr(self, name)
            if not isinstance(v, tuple) and isinstance(v, Iterable) and not isinstance(v, str):
                object.__setattr__(self, name, tuple(v))

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

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors and the packed answer tables (not the question texts)."""
        return sum(getattr(self, n).nbytes for n in ("probe_ids", *_CANONICAL)) + self.answer_tables.nbytes

    def answer(self, q: int, answer_id: int) -> str | None:
        """The exact string of answer ``answer_id`` of question ``q`` (``None`` for a negative id)."""
        return None if answer_id < 0 else self.answer_tables.answer(q, answer_id)

    def __repr__(self) -> str:  # the arrays are large; say what the store is
        return (f"ReplayStore({self.name!r}, questions={self.num_questions}, "
                f"branches={self.max_branches}, max_probes={self.max_probes})")

    # -- checks --------------------------------------------------------------------------------
    def validate(self, source: str | os.PathLike | None = None, *,
                 datasets: dict[str, str] | None = None, question_offset: int = 0) -> "ReplayStore":
        """Check every bound and the consistency of the tensors; raise :class:`StoreFormatError`
        (a ``ValueError``) naming ``source`` (default: ``store <model>/<benchmark>``), the dataset
        (``datasets`` maps field names to the caller's names, e.g. the HDF5 datasets) and the
        question / branch of the first fault.

        Checked (see the module docstring for the bounds): dtypes and shapes; at least one question;
        branch counts, probe intervals, token counts and probe counts inside their bounds, with
        ``num_probes <= ceil(branch_tokens / probe_interval)``; padding (``PAD_ID`` / 0) exactly past
        ``num_probes`` / ``num_branches``; answer ids inside each question's table; the strings of a
        table distinct and free of NUL; ``gold_ids`` agreeing with ``gold_answers``. Vectorised over
        blocks of questions (bounded memory). ``question_offset`` is added to the question indices
        of messages (a block of a larger store). Returns ``self``.
        """
        where = str(source) if source is not None else f"store {self.name}"
        names = datasets or {}

        def fail(detail: str, dataset: str | None = None, q: int | None = None, b: int | None = None,
                 kind: str = "invalid") -> None:
            raise StoreFormatError(detail, file=where, dataset=names.get(dataset, dataset) if dataset else None,
                                   question=None if q is None else q + question_offset, branch=b, kind=kind)

        if not isinstance(self.model, str) or not isinstance(self.benchmark, str) \
                or not self.model or not self.benchmark:
            fail("model and benchmark must be non-empty strings", kind="bad_name")
        expect = {"probe_ids": ((np.int16, np.int32), 3), "num_probes": ((np.int32,), 2),
                  "branch_tokens": ((np.int64,), 2), "final_ids": ((np.int32,), 2),
                  "num_branches": ((np.int32,), 1), "probe_interval": ((np.int32,), 1),
                  "gold_ids": ((np.int32,), 1)}
        for name, (dtypes, ndim) in expect.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype not in dtypes or arr.ndim != ndim:
                want = " or ".join(np.dtype(d).name for d in dtypes)
                fail(f"must be a {ndim}-d {want} array, got "
                     f"{getattr(arr, 'dtype', type(arr).__name__)} with shape {getattr(arr, 'shape', '?')}",
                     name, kind="bad_dtype")
        Q, N, K = self.probe_ids.shape
        if Q < 1:
            fail("the store holds no question (at least one is needed)", kind="no_questions")
        if Q > MAX_QUESTIONS:
            fail(f"{Q} questions exceed the limit of {MAX_QUESTIONS}", kind="too_large")
        for name in ("num_probes", "branch_tokens", "final_ids"):
            if getattr(self, name).shape != (Q, N):
                fail(f"has shape {getattr(self, name).shape}, expected {(Q, N)}", name, kind="bad_shape")
        for name in ("num_branches", "probe_interval", "gold_ids"):
            if getattr(self, name).shape != (Q,):
                fail(f"has shape {getattr(self, name).shape}, expected {(Q,)}", name, kind="bad_shape")
        tables = self.answer_tables
        if not isinstance(tables, AnswerTables) or len(tables) != Q:
            fail(f"has {len(tables)} tables, expected {Q}", "answer_tables", kind="bad_shape")
        for name in ("gold_answers", "questions"):
            v = getattr(self, name)
            if not isinstance(v, tuple) or len(v) != Q:
                fail(f"has {len(v)} entries, expected {Q}", name, kind="bad_shape")
            bad = next((i for i, x in enumerate(v) if type(x) is not str), None) \
                if not set(map(type, v)) <= {str} else None
            if bad is not None:
                fail(f"must be a string, got {type(v[bad]).__name__}", name, bad, kind="non_string_answer")
            joined = "".join(v)
            why = None
            if "\x00" in joined:
                why = "contains a NUL character"
            else:
                try:
                    joined.encode("utf-8")
                except UnicodeEncodeError:
                    why = "contains a lone surrogate (not valid Unicode)"
            if why is not None:
                i = next(i for i, x in enumerate(v) if "\x00" in x or not _encodes(x))
                fail(f"{_show(v[i])} {why}", name, i, kind="invalid_string")

        nb = self.num_branches
        bad = (nb < 1) | (nb > min(N, MAX_BRANCHES))
        if bad.any():
            q = int(np.argmax(bad))
            fail(f"must be in [1, {min(N, MAX_BRANCHES)}], got {int(nb[q])}", "num_branches", q,
                 kind="bad_branch_count")
        pf = self.probe_interval
        bad = (pf < 1) | (pf > MAX_PROBE_INTERVAL)
        if bad.any():
            q = int(np.argmax(bad))
            fail(f"must be in [1, {MAX_PROBE_INTERVAL}], got {int(pf[q])}", "probe_interval", q,
                 kind="bad_probe_freq")
        sizes = tables.sizes()
        limit = COMPACT_ANSWERS if self.probe_ids.dtype == np.int16 else 2**31 - 1
        if sizes.size and int(sizes.max()) > limit:
            q = int(np.argmax(sizes))
            fail(f"{self.probe_ids.dtype} probe ids cannot address the question's {int(sizes[q])} answers",
                 "probe_ids", q, kind="bad_dtype")
        step = max(1, _VALIDATE_BLOCK // max(1, N * max(K, 1)))
        kpos = np.arange(K, dtype=np.int32)
        bpos = np.arange(N, dtype=np.int32)
        for q0 in range(0, Q, step):
            q1 = min(Q, q0 + step)
            real = bpos[None, :] < nb[q0:q1, None]
            tok = self.branch_tokens[q0:q1]
            kp = self.num_probes[q0:q1]
            fin = self.final_ids[q0:q1]
            sz = sizes[q0:q1]

            def first(mask) -> tuple[int, int]:
                q, b = np.nonzero(mask)[:2]
                return q0 + int(q[0]), int(b[0])

            bad = real & ((tok < 1) | (tok > MAX_BRANCH_TOKENS))
            if bad.any():
                q, b = first(bad)
                fail(f"must be in [1, {MAX_BRANCH_TOKENS}] (2**40), got {int(self.branch_tokens[q, b])}",
                     "branch_tokens", q, b, kind="bad_token_count")
            bad = ~real & (tok != 0)
            if bad.any():
                q, b = first(bad)
                fail(f"must be 0 for a padding branch (the question has {int(nb[q])} branches), got "
                     f"{int(self.branch_tokens[q, b])}", "branch_tokens", q, b, kind="bad_padding")
            bad = (kp < 0) | (kp > K) | (~real & (kp != 0))
            if bad.any():
                q, b = first(bad)
                fail(f"must be in [0, {K}] (0 for a padding branch), got {int(self.num_probes[q, b])}",
                     "num_probes", q, b, kind="bad_probe_count")
            fit = (tok + pf[q0:q1, None].astype(np.int64) - 1) // pf[q0:q1, None]
            bad = real & (kp > fit)
            if bad.any():
                q, b = first(bad)
                T, k, f = int(self.branch_tokens[q, b]), int(self.num_probes[q, b]), int(pf[q])
                fail(f"{k} probes but only {T} tokens: at most ceil({T}/{f}) = {-(-T // f)} probes fit",
                     "num_probes", q, b, kind="too_many_probes")
            bad = (real & ((fin < 0) | (fin >= sz[:, None]))) | (~real & (fin != PAD_ID))
            if bad.any():
                q, b = first(bad)
                fail(f"answer id {int(self.final_ids[q, b])} outside the question's table of "
                     f"{int(sizes[q])} answers" if b < nb[q] else
                     f"must be PAD_ID={PAD_ID} for a padding branch, got {int(self.final_ids[q, b])}",
                     "final_ids", q, b, kind="bad_answer_id")
            ids = self.probe_ids[q0:q1]
            in_probe = kpos[None, None, :] < kp[:, :, None]
            szi = sz.astype(ids.dtype)   # sizes fit the id dtype (checked above): no widened copy of ids
            bad = in_probe & ((ids < 0) | (ids >= szi[:, None, None]))
            bad |= ~in_probe & (ids != PAD_ID)
            if bad.any():
                q, b, k = (int(v[0]) for v in np.nonzero(bad))
                q += q0
                v = int(self.probe_ids[q, b, k])
                fail(f"probe {k}: answer id {v} outside the question's table of {int(sizes[q])} answers"
                     if k < self.num_probes[q, b] else
                     f"probe {k}: must be PAD_ID={PAD_ID} past the branch's {int(self.num_probes[q, b])} "
                     f"probes, got {v}", "probe_ids", q, b, kind="bad_answer_id")
        fault = tables.first_fault()
        if fault is not None:
            q, kind, detail = fault
            fail(detail, "answer_tables", q, kind=kind)
        gold = self.gold_ids
        bad = (gold < GOLD_ABSENT) | (gold >= sizes)
        if bad.any():
            q = int(np.argmax(bad))
            fail(f"gold id {int(gold[q])} outside the question's table of {int(sizes[q])} answers",
                 "gold_ids", q, kind="bad_gold")
        for q in range(Q):
            gid = int(gold[q])
            if gid == GOLD_ABSENT:
                if self.gold_answers[q] in tables[q]:
                    fail("the gold answer is in the answer table but gold_ids says absent", "gold_ids", q,
                         kind="bad_gold")
            elif tables.answer(q, gid) != self.gold_answers[q]:
                fail(f"gold id {gid} does not point at the gold answer "
                     f"{_show(self.gold_answers[q])}", "gold_ids", q, kind="bad_gold")
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
                and self.answer_tables == other.answer_tables
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
        probe_ids, num_probes, branch_tokens, final_ids = empty_branch_arrays(Q, N, K)
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

    @classmethod
    def concatenate(cls, parts: Sequence["ReplayStore"], model: str | None = None,
                    benchmark: str | None = None, attrs: dict | None = None) -> "ReplayStore":
        """The questions of ``parts`` in order, as one store (branch and probe axes padded to the
        widest part). Names and ``attrs`` default to the first part's."""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate")
        if len(parts) == 1 and model is None and benchmark is None and attrs is None:
            return parts[0]
        sizes = np.concatenate([p.answer_tables.sizes() for p in parts])
        probe_ids, num_probes, branch_tokens, final_ids = stack_branch_arrays(
            parts, answer_dtype(int(sizes.max())))
        starts = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=starts[1:])
        blob = b"".join(p.answer_tables._blob for p in parts)
        ends, off = [], 0
        for p in parts:
            ends.append(p.answer_tables._ends.astype(np.int64) + off)
            off += len(p.answer_tables._blob)
        ends = np.concatenate(ends).astype(np.int32 if len(blob) < 2**31 else np.int64)
        first = parts[0]
        return cls(model=first.model if model is None else model,
                   benchmark=first.benchmark if benchmark is None else benchmark,
                   probe_ids=probe_ids, num_probes=num_probes, branch_tokens=branch_tokens,
                   final_ids=final_ids,
                   num_branches=np.concatenate([p.num_branches for p in parts]),
                   probe_interval=np.concatenate([p.probe_interval for p in parts]),
                   gold_ids=np.concatenate([p.gold_ids for p in parts]),
                   answer_tables=AnswerTables(blob, ends, starts),
                   gold_answers=tuple(g for p in parts for g in p.gold_answers),
                   questions=tuple(x for p in parts for x in p.questions),
                   attrs=dict(first.attrs if attrs is None else attrs))


def _encodes(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
