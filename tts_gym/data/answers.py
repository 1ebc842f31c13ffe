"""Answer extraction, and optional math-equivalence merging of a store's answers.

Extraction (shared by the collector and usable on any model output):

* :func:`extract_boxed` -- content of the **last** ``\\boxed{...}`` with balanced braces, stripped;
  ``None`` when there is none (or the last one is never closed).
* :func:`extract_answer` -- the same, but the unparseable case (no box, unclosed box, empty box) is the
  literal :data:`ERR` ``"ERR"``, as in the AutoTTS stores, where ``"ERR"`` is an ordinary answer string.
* :func:`extract_forced_answer` -- the answer after an answer-forcing suffix that already ends in
  ``\\boxed{`` (the collector's probes): the decoded text up to the brace that closes the box, or,
  when the short decode ran out of tokens first, the text decoded so far (``unclosed="keep"``) or
  ``"ERR"`` (``unclosed="err"``).

No normalisation is applied beyond stripping surrounding whitespace: stores stay exact strings and
gold answers are compared by exact string equality (``docs/replay-semantics.md``, "Replay stores").

Merging (optional, ``pip install 'tts_gym[answers]'`` for ``math-verify``):
:func:`merge_equivalent_answers` rewrites every answer of a store to a representative of its
math-equivalence class within the question (``"0.5"``, ``"1/2"`` and ``"\\frac{1}{2}"`` become one
string; the gold answer's spelling is kept as the representative of the gold's class). The store
records ``attrs["answer_merging"]`` (``"none"`` when never merged) and the effect on majority-vote
accuracy under ``attrs["answer_merging_effect"]``; :func:`answer_merging_summary` formats both for
``tts-gym data info``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ERR = "ERR"
"""The answer string of an unparseable output (the AutoTTS stores' convention)."""

BOX_COMMANDS = ("\\boxed", "\\fbox")
NO_MERGING = "none"

__all__ = [
    "ERR", "NO_MERGING", "extract_boxed", "extract_answer", "extract_forced_answer", "balanced_prefix",
    "MathEquivalence", "merge_equivalent_answers", "majority_accuracy", "answer_merging_summary",
    "math_verify_available", "format_answer_merging",
]


# -- extraction ----------------------------------------------------------------------------------
def balanced_prefix(text: str, depth: int = 1) -> tuple[str, bool]:
    """Split ``text`` (which starts inside ``depth`` open braces) at the brace that closes them.

    Returns ``(content, closed)``: ``content`` is the text before the closing brace (the whole text
    when ``closed`` is false). Escaped braces ``\\{`` and ``\\}`` do not count.
    """
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "{}":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[:i], True
        i += 1
    return text, False


def _box_starts(text: str) -> list[int]:
    """Indices just past the ``{`` of every ``\\boxed{`` / ``\\boxed {`` / ``\\fbox{`` in ``text``."""
    starts = []
    for cmd in BOX_COMMANDS:
        pos = text.find(cmd)
        while pos >= 0:
            j = pos + len(cmd)
            # \boxedx is another macro; allow spaces between the command and the brace
            while j < len(text) and text[j] == " ":
                j += 1
            if j < len(text) and text[j] == "{":
                starts.append(j + 1)
            pos = text.find(cmd, pos + 1)
    return sorted(starts)


def extract_boxed(text: str) -> str | None:
    """Stripped content of the last ``\\boxed{...}`` with balanced braces, or ``None``.

    The *last* box wins (a solution may restate intermediate results in boxes). A box that is never
    closed gives ``None`` (it is the last one: the output was cut inside it).
    """
    starts = _box_starts(text)
    if not starts:
        return None
    content, closed = balanced_prefix(text[starts[-1]:])
    return content.strip() if closed else None


def extract_answer(text: str) -> str:
    """:func:`extract_boxed`, with ``"ERR"`` for a missing, unclosed or empty box."""
    ans = extract_boxed(text)
    return ans if ans else ERR


def extract_forced_answer(continuation: str, unclosed: str = "keep") -> str:
    """Answer from the short decode that follows an answer-forcing suffix ending in ``\\boxed{``.

    The answer is the continuation up to the brace closing the box (nested braces balanced, so
    ``\\frac{1}{2}}`` gives ``\\frac{1}{2}``). If the decode stopped before closing the box, the text
    decoded so far is the answer (``unclosed="keep"``) or ``"ERR"`` (``unclosed="err"``). Stripped;
    empty is ``"ERR"``. NUL characters (which a store cannot hold) are removed.
    """
    if unclosed not in ("keep", "err"):
        raise ValueError(f"unclosed must be 'keep' or 'err', got {unclosed!r}")
    content, closed = balanced_prefix(continuation)
    if not closed and unclosed == "err":
        return ERR
    content = content.replace("\x00", "").strip()
    return content if content else ERR


# -- math-equivalence merging --------------------------------------------------------------------
def math_verify_available() -> bool:
    try:
        import math_verify  # noqa: F401
    except ImportError:
        return False
    return True


def _math_verify_version() -> str:
    try:
        from importlib.metadata import version
        return version("math-verify")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


class MathEquivalence:
    """Groups answer strings into math-equivalence classes with ``math-verify``.

    Each string is parsed once (as the content of a ``\\boxed{}``). Numbers are bucketed by value
    (relative tolerance ``rel_tol``), then other parsed expressions are compared with
    ``math_verify.verify`` against each existing class representative; unparseable strings (``"ERR"``,
    text) only match themselves. ``timeout`` (seconds, main thread only) bounds one parse/verify.
    """

    def __init__(self, rel_tol: float = 1e-9, timeout: int | None = 5):
        try:
            import math_verify
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise ImportError("math-equivalence merging needs math-verify: "
                              "pip install 'tts_gym[answers]' (or pip install math-verify)") from exc
        self._mv = math_verify
        self.rel_tol = rel_tol
        self.timeout = timeout
        self.method = f"math-verify {_math_verify_version()}"

    def _timeouts(self) -> tuple[dict, dict]:
        import threading
        if self.timeout is None or threading.current_thread() is not threading.main_thread():
            return {"parsing_timeout": None}, {"timeout_seconds": None}
        return {"parsing_timeout": self.timeout}, {"timeout_seconds": self.timeout}

    def parse(self, s: str) -> list:
        if s == ERR or not s.strip():
            return []
        pkw, _ = self._timeouts()
        try:
            return self._mv.parse("\\boxed{" + s + "}", **pkw)
        except Exception:
            return []

    @staticmethod
    def _number(parsed: list) -> float | None:
        if not parsed:
            return None
        expr = parsed[0]
        try:
            import sympy
            if isinstance(expr, sympy.Basic) and expr.is_number and expr.is_real:
                v = float(expr)
                return v if math.isfinite(v) else None
        except Exception:
            return None
        return None

    def classes(self, strings: Sequence[str]) -> list[int]:
        """Class index of each string (classes numbered by first occurrence)."""
        _, vkw = self._timeouts()
        labels: list[int] = []
        by_exact: dict[str, int] = {}
        numbers: dict[float, int] = {}
        number_keys: list[float] = []
        exprs: list[tuple[int, list]] = []  # (class, parsed) of non-numeric parsed representatives
        n_classes = 0
        for s in strings:
            if s in by_exact:
                labels.append(by_exact[s])
                continue
            parsed = self.parse(s)
            cls = None
            value = self._number(parsed)
            if value is not None:
                cls = numbers.get(value)
                if cls is None:
                    for key in number_keys:
                        if math.isclose(key, value, rel_tol=self.rel_tol, abs_tol=1e-12):
                            cls = numbers[key]
                            break
            elif parsed:
                for c, rep in exprs:
                    try:
                        if self._mv.verify(rep, parsed, **vkw):
                            cls = c
                            break
                    except Exception:
                        continue
            if cls is None:
                cls = n_classes
                n_classes += 1
                if value is not None:
                    numbers[value] = cls
                    number_keys.append(value)
                elif parsed:
                    exprs.append((cls, parsed))
            by_exact[s] = cls
            labels.append(cls)
        return labels


def majority_accuracy(store) -> float:
    """Share of questions whose majority final answer (all branches, stored order, first-occurrence
    tie-breaking) equals the gold answer exactly. A quick data-quality figure, not a policy score."""
    from tts_gym.core.voting import majority  # the one plurality rule

    Q = store.num_questions
    if Q == 0:
        return float("nan")
    correct = 0
    for q in range(Q):
        winner = majority(store.final_ids[q, :int(store.num_branches[q])].tolist())
        correct += int(winner is not None and winner == int(store.gold_ids[q]))
    return correct / Q


def merge_equivalent_answers(store, equivalence: MathEquivalence | Callable[[Sequence[str]], list[int]]
                             | None = None):
    """A copy of ``store`` whose answers are merged into math-equivalence classes per question.

    Every answer string is replaced by its class representative: the gold answer when the class
    holds a string equivalent to the gold, else the class's first string in interning order. The
    store's ``attrs`` gain ``answer_merging`` (the method, e.g. ``"math-verify 0.9.0"``) and
    ``answer_merging_effect`` (JSON: majority accuracy before/after, distinct answers before/after).
    ``equivalence`` defaults to :class:`MathEquivalence`; any callable mapping a list of strings to
    class labels works (tests use simple ones).
    """
    from tts_gym.data.store import GOLD_ABSENT, PAD_ID, ReplayStore

    eq = MathEquivalence() if equivalence is None else equivalence
    classes_of = eq.classes if isinstance(eq, MathEquivalence) else eq
    method = eq.method if isinstance(eq, MathEquivalence) else getattr(eq, "method", getattr(
        eq, "__name__", "custom"))
    probe_ids = store.probe_ids.copy()
    final_ids = store.final_ids.copy()
    gold_ids = np.full_like(store.gold_ids, GOLD_ABSENT)
    tables = []
    before_distinct = after_distinct = 0
    for q in range(store.num_questions):
        table = list(store.answer_tables[q])
        gold = store.gold_answers[q]
        labels = classes_of(table + [gold])
        gold_label = labels[-1]
        labels = labels[:-1]
        # representative per class: gold spelling for the gold class, else first occurrence
        rep: dict[int, str] = {}
        for s, c in zip(table, labels):
            rep.setdefault(c, s)
        if gold_label in rep:
            rep[gold_label] = gold
        # re-intern in first-occurrence order of the representatives (the store's interning rule)
        new_table: dict[str, int] = {}
        old_to_new = np.empty(len(table), dtype=np.int32)
        for i, c in enumerate(labels):
            old_to_new[i] = new_table.setdefault(rep[c], len(new_table))
        lut = np.append(old_to_new, PAD_ID)  # index -1 (PAD) maps to PAD
        probe_ids[q] = lut[store.probe_ids[q]]
        final_ids[q] = lut[store.final_ids[q]]
        gold_ids[q] = new_table.get(gold, GOLD_ABSENT)
        tables.append(tuple(new_table))
        before_distinct += len(table)
        after_distinct += len(new_table)
    attrs = dict(store.attrs)
    attrs["answer_merging"] = method
    merged = ReplayStore(model=store.model, benchmark=store.benchmark, probe_ids=probe_ids,
                         num_probes=store.num_probes.copy(), branch_tokens=store.branch_tokens.copy(),
                         final_ids=final_ids, num_branches=store.num_branches.copy(),
                         probe_interval=store.probe_interval.copy(), gold_ids=gold_ids,
                         answer_tables=tuple(tables), gold_answers=tuple(store.gold_answers),
                         questions=tuple(store.questions), attrs=attrs)
    effect = {"method": method,
              "majority_accuracy_before": majority_accuracy(store),
              "majority_accuracy_after": majority_accuracy(merged),
              "distinct_answers_before": before_distinct,
              "distinct_answers_after": after_distinct,
              "gold_present_before": int(np.sum(store.gold_ids != GOLD_ABSENT)),
              "gold_present_after": int(np.sum(gold_ids != GOLD_ABSENT))}
    attrs["answer_merging_effect"] = json.dumps(effect, sort_keys=True)
    return merged


def answer_merging_summary(store, compute: bool = False) -> dict[str, Any]:
    """What ``tts-gym data info`` shows about answer merging.

    Returns ``{"answer_merging": method or "none", "majority_accuracy": float, ...}``; for a merged
    store also the recorded effect (``majority_accuracy_before``/``_after`` and distinct-answer counts).
    With ``compute=True`` and an unmerged store, the effect that math-equivalence merging *would*
    have is computed (needs math-verify; slow on large stores) under ``"would_merge"``.
    """
    method = store.attrs.get("answer_merging", NO_MERGING) or NO_MERGING
    out: dict[str, Any] = {"answer_merging": method, "majority_accuracy": majority_accuracy(store)}
    raw = store.attrs.get("answer_merging_effect")
    if raw:
        try:
            out.update({k: v for k, v in json.loads(raw).items() if k != "method"})
        except (TypeError, ValueError):
            out["answer_merging_effect"] = raw
    elif compute and method == NO_MERGING:
        merged = merge_equivalent_answers(store)
        out["would_merge"] = json.loads(merged.attrs["answer_merging_effect"])
    return out


def format_answer_merging(summary: dict[str, Any]) -> list[str]:
    """Human-readable lines for :func:`answer_merging_summary`'s result."""
    lines = [f"answer merging: {summary['answer_merging']}",
             f"majority-vote accuracy (all branches): {100 * summary['majority_accuracy']:.2f} %"]
    if "majority_accuracy_before" in summary:
        lines.append(f"  effect of merging on majority accuracy: "
                     f"{100 * summary['majority_accuracy_before']:.2f} % -> "
                     f"{100 * summary['majority_accuracy_after']:.2f} %; distinct answers "
                     f"{summary['distinct_answers_before']} -> {summary['distinct_answers_after']}")
    if "would_merge" in summary:
        w = summary["would_merge"]
        lines.append(f"  with {w['method']} merging it would be {100 * w['majority_accuracy_after']:.2f} %"
                     f" (distinct answers {w['distinct_answers_before']} -> {w['distinct_answers_after']})")
    return lines
