"""Validating importer of the AutoTTS replay-store JSON format.

A store file (``<model>/<benchmark>.json``) holds a list of question records::

    {"question": str, "gold_answer": str, "probe_freq": int,
     "each_branch": [[probe_list, branch_tokens, final_answer], ...],
     "final_answers_trace": [str, ...]}          # optional, redundant copy of the finals

Every fault is reported as one :class:`StoreFormatError` whose message names the file and, where
relevant, the (0-based) question index and branch index, e.g.::

    Qwen3-1.7B/aime24.json: question 3, branch 17: branch_tokens must be a positive integer, got -5

Faults (``StoreFormatError.kind``):

======================== =====================================================================
kind                     meaning
======================== =====================================================================
``corrupt_json``         empty, truncated or otherwise unparsable JSON (or invalid UTF-8)
``not_a_list``           the top level is not a JSON array
``no_questions``         the top-level array is empty
``not_an_object``        a question record is not a JSON object
``missing_field``        a required field is absent
``unknown_field``        a field outside the format is present
``wrong_type``           a field has the wrong JSON type (e.g. ``probe_freq`` a string or float)
``bad_probe_freq``       ``probe_freq`` is zero or negative
``inconsistent_probe_freq``  questions of one file disagree on ``probe_freq``
``no_branches``          ``each_branch`` is empty
``ragged_branch``        a branch is not a ``[probe_list, branch_tokens, final_answer]`` triple
``bad_probe_list``       a branch's probe list is not a list
``non_string_answer``    a probe answer or a final answer is not a string (null, number, ...)
``bad_token_count``      ``branch_tokens`` is not an integer, or is zero or negative
``too_many_probes``      more probes than the branch has tokens for (``K > ceil(T / probe_freq)``)
``trace_mismatch``       ``final_answers_trace`` disagrees with the branches' final answers
``invalid_string``       a string holds a NUL character or a lone surrogate (cannot be stored exactly)
``out_of_range``         an integer beyond the store's bounds (``probe_freq`` > 2**31-1, ``branch_tokens``
                         > 2**40, more than 2**20 branches; see :mod:`tts_gym.data.store`)
======================== =====================================================================

Answers are kept as exact strings: no normalisation. The model and benchmark names are taken from
the path (``<model>/<benchmark>.json``) unless given explicitly.

Files are read as a stream (:func:`iter_json_array`): one question record is parsed, validated and
packed at a time, so the memory an import needs is that of the resulting store (or, importing
into HDF5 with :func:`import_autotts_to_hdf5`, of one block of questions) rather than ~10x the
JSON text.
"""
from __future__ import annotations

import codecs
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from tts_gym.data.store import (GOLD_ABSENT, MAX_BRANCH_TOKENS, MAX_BRANCHES, MAX_PROBE_INTERVAL,
                                ReplayStore, StoreFormatError, empty_branch_arrays)

REQUIRED_FIELDS = ("question", "gold_answer", "probe_freq", "each_branch")
OPTIONAL_FIELDS = ("final_answers_trace",)
ALL_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS

_FIELD_TYPES = {"question": (str, "a string"), "gold_answer": (str, "a string"),
                "probe_freq": (int, "an integer"), "each_branch": (list, "a list"),
                "final_answers_trace": (list, "a list")}
_STR_ONLY = frozenset({str})


# bool before int: a bool is an int
_JSON_TYPE_NAMES = ((type(None), "null"), (bool, "boolean"), (int, "integer"), (float, "number"),
                    (str, "string"), (list, "list"), (dict, "object"))


def _jtype(value: Any) -> str:
    """JSON name of a Python value's type, for messages."""
    return next((name for kind, name in _JSON_TYPE_NAMES if isinstance(value, kind)), type(value).__name__)


def _show(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, float) or math.isfinite(value) \
        else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _desc(value: Any) -> str:
    """``<json type> <value>`` for messages (just ``null`` for null)."""
    return "null" if value is None else f"{_jtype(value)} {_show(value)}"


def _bad_string(s: str) -> str | None:
    """Why ``s`` cannot be stored exactly (HDF5 vlen UTF-8), or ``None``."""
    if "\x00" in s:
        return "contains a NUL character"
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode)"
    return None


def parse_json_bytes(raw: bytes, file: str | os.PathLike) -> Any:
    """``json.loads`` that reports truncated/corrupt input as a ``StoreFormatError``."""
    if not raw.strip():
        raise StoreFormatError("truncated or corrupt JSON: the file is empty", file=file, kind="corrupt_json")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise StoreFormatError(f"corrupt JSON: not valid UTF-8 text ({exc.reason} at byte {exc.start})",
                               file=file, kind="corrupt_json") from None
    except json.JSONDecodeError as exc:
        body = raw.rstrip()
        at_end = exc.pos >= len(body) - 1 or not body.endswith((b"]", b"}"))
        what = "truncated JSON (unexpected end of file)" if at_end else "corrupt JSON"
        raise StoreFormatError(f"{what}: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                               file=file, kind="corrupt_json") from None
    except RecursionError:
        raise StoreFormatError("corrupt JSON: nested too deeply", file=file, kind="corrupt_json") from None


def validate_records(data: Any, file: str | os.PathLike = "<records>") -> list[dict[str, Any]]:
    """Check parsed AutoTTS JSON; return it (a list of question records) or raise ``StoreFormatError``."""
    if not isinstance(data, list):
        raise StoreFormatError(f"top level must be a list of question records, got {_jtype(data)}",
                               file=file, kind="not_a_list")
    if not data:
        raise StoreFormatError("the list of question records is empty", file=file, kind="no_questions")
    first_pf: int | None = None
    for q, rec in enumerate(data):
        pf = validate_record(rec, q, file, first_pf)
        first_pf = pf if first_pf is None else first_pf
    return data


_REQUIRED = frozenset(REQUIRED_FIELDS)
_ALLOWED = frozenset(ALL_FIELDS)


def validate_record(rec: Any, q: int, file: str | os.PathLike = "<records>",
                    first_pf: int | None = None) -> int:
    """Check question record ``q`` (``first_pf``: question 0's ``probe_freq``, for the per-file
    consistency rule); return its ``probe_freq`` or raise ``StoreFormatError``."""
    def err(detail: str, kind: str, branch: int | None = None) -> StoreFormatError:
        return StoreFormatError(detail, file=file, question=q, branch=branch, kind=kind)

    if not isinstance(rec, dict):
        raise err(f"question record must be an object, got {_jtype(rec)}", "not_an_object")
    keys = rec.keys()
    if not _REQUIRED <= keys:
        missing = [f for f in REQUIRED_FIELDS if f not in keys]
        raise err(f"missing field {missing[0]!r}" + (f" (also {', '.join(map(repr, missing[1:]))})"
                                                    if len(missing) > 1 else ""), "missing_field")
    if not keys <= _ALLOWED:
        extra = sorted(k for k in keys if k not in _ALLOWED)
        raise err(f"unknown field {extra[0]!r} (allowed: {', '.join(ALL_FIELDS)})", "unknown_field")
    for name in ALL_FIELDS:
        if name in rec:
            typ, desc = _FIELD_TYPES[name]
            value = rec[name]
            if type(value) is not typ:
                raise err(f"field {name!r} must be {desc}, got {_desc(value)}", "wrong_type")
    pf = rec["probe_freq"]
    if pf <= 0:
        raise err(f"probe_freq must be a positive integer, got {pf}", "bad_probe_freq")
    if pf > MAX_PROBE_INTERVAL:
        raise err(f"probe_freq must be at most {MAX_PROBE_INTERVAL} (2**31-1), got {pf}", "out_of_range")
    if first_pf is not None and pf != first_pf:
        raise err(f"inconsistent probe_freq: {pf} here but {first_pf} in question 0 of the same file",
                  "inconsistent_probe_freq")
    branches = rec["each_branch"]
    if not branches:
        raise err("each_branch is empty: a question needs at least one branch", "no_branches")
    if len(branches) > MAX_BRANCHES:
        raise err(f"{len(branches)} branches exceed the limit of {MAX_BRANCHES} (2**20)", "out_of_range")
    for b, br in enumerate(branches):
        if type(br) is not list or len(br) != 3:
            got = f"a list of length {len(br)}" if type(br) is list else _desc(br)
            raise err(f"branch must be a [probe_list, branch_tokens, final_answer] triple, got {got}",
                      "ragged_branch", b)
        probes, tokens, final = br
        if type(probes) is not list:
            raise err(f"probe list (position 0) must be a list of strings, got {_desc(probes)}",
                      "bad_probe_list", b)
        if not set(map(type, probes)) <= _STR_ONLY:  # C-speed check; locate the fault only on error
            k, s = next((k, s) for k, s in enumerate(probes) if type(s) is not str)
            raise err(f"probe answer {k} must be a string, got {_desc(s)}",
                      "non_string_answer", b)
        if type(tokens) is not int:
            raise err(f"branch_tokens (position 1) must be a positive integer, got {_desc(tokens)}",
                      "bad_token_count", b)
        if tokens <= 0:
            raise err(f"branch_tokens (position 1) must be a positive integer, got {tokens}",
                      "bad_token_count", b)
        if tokens > MAX_BRANCH_TOKENS:
            raise err(f"branch_tokens (position 1) must be at most {MAX_BRANCH_TOKENS} (2**40), got {tokens}",
                      "out_of_range", b)
        if type(final) is not str:
            raise err(f"final answer (position 2) must be a string, got {_desc(final)}",
                      "non_string_answer", b)
        if len(probes) > -(-tokens // pf):
            raise err(f"{len(probes)} probes but only {tokens} tokens: at most ceil({tokens}/{pf}) = "
                      f"{-(-tokens // pf)} probes fit", "too_many_probes", b)
    trace = rec.get("final_answers_trace")
    if trace is not None:
        if len(trace) != len(branches):
            raise err(f"final_answers_trace has {len(trace)} entries but each_branch has {len(branches)}",
                      "trace_mismatch")
        for b, (t, br) in enumerate(zip(trace, branches)):
            if t != br[2]:
                raise err(f"final_answers_trace[{b}] = {_show(t)} disagrees with the branch's final answer "
                          f"{_show(br[2])}", "trace_mismatch", b)
    _check_record_strings(rec, q, file)
    return pf


def _check_record_strings(rec: dict[str, Any], q: int, file: str | os.PathLike) -> None:
    """Reject strings that cannot be stored exactly (NUL, lone surrogates): one C-speed pass over
    the record's strings joined, the fault located only when there is one."""
    parts = [rec["question"], rec["gold_answer"]]
    for probes, _, final in rec["each_branch"]:
        parts += probes
        parts.append(final)
    joined = "\x1f".join(parts)
    if "\x00" not in joined:
        try:
            joined.encode("utf-8")
            return
        except UnicodeEncodeError:
            pass
    for name in ("question", "gold_answer"):
        why = _bad_string(rec[name])
        if why is not None:
            raise StoreFormatError(f"field {name!r} {why}", file=file, question=q, kind="invalid_string")
    for b, (probes, _, final) in enumerate(rec["each_branch"]):
        for k, s in enumerate(probes):
            why = _bad_string(s)
            if why is not None:
                raise StoreFormatError(f"probe answer {k} {_show(s)} {why}", file=file, question=q, branch=b,
                                       kind="invalid_string")
        why = _bad_string(final)
        if why is not None:
            raise StoreFormatError(f"final answer {_show(final)} {why}", file=file, question=q, branch=b,
                                   kind="invalid_string")


# -- streaming JSON --------------------------------------------------------------------------------

_WS = " \t\n\r"
_READ = 1 << 23  # bytes read per refill
_NEAR_END = 64   # a parse error this close to the end of the window may only be a cut value
_DECODER = json.JSONDecoder()


class _JsonStream:
    """Incremental reader of one JSON text: UTF-8 decoded chunk by chunk into a window ``buf``
    (consumed text is dropped), with line/column bookkeeping for messages."""

    def __init__(self, fh, file) -> None:
        self.fh, self.file = fh, file
        self.dec = codecs.getincrementaldecoder("utf-8")("strict")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.bytes_read = 0
        self.lines_before = 0   # newlines in the dropped text
        self.col_base = 0       # characters after the last dropped newline

    def fill(self, want: int = _READ) -> bool:
        """Append about ``want`` more bytes of text; False once at EOF."""
        if self.eof:
            return False
        if self.pos > len(self.buf) // 2:
            dropped = self.buf[:self.pos]
            nl = dropped.count("\n")
            if nl:
                self.lines_before += nl
                self.col_base = len(dropped) - dropped.rfind("\n") - 1
            else:
                self.col_base += len(dropped)
            self.buf = self.buf[self.pos:]
            self.pos = 0
        raw = self.fh.read(max(want, _READ))
        final = not raw
        try:
            text = self.dec.decode(raw, final=final)
        except UnicodeDecodeError as exc:
            raise StoreFormatError(f"corrupt JSON: not valid UTF-8 text ({exc.reason} at byte "
                                   f"{self.bytes_read + exc.start})", file=self.file,
                                   kind="corrupt_json") from None
        self.bytes_read += len(raw)
        self.buf += text
        if final:
            self.eof = True
        return not final or bool(text)

    def where(self, pos: int) -> str:
        nl = self.buf.rfind("\n", 0, pos)
        line = self.lines_before + self.buf.count("\n", 0, pos) + 1
        col = pos - nl if nl >= 0 else self.col_base + pos + 1
        return f"line {line}, column {col}"

    def skip_ws(self) -> str:
        """The next non-blank character ("" at EOF), without consuming it."""
        while True:
            buf, pos = self.buf, self.pos
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            self.pos = pos
            if pos < len(buf):
                return buf[pos]
            if not self.fill():
                return ""

    def truncated(self) -> StoreFormatError:
        return StoreFormatError(f"truncated JSON (unexpected end of file, {self.where(len(self.buf))})",
                                file=self.file, kind="corrupt_json")

    def corrupt(self, msg: str, pos: int) -> StoreFormatError:
        return StoreFormatError(f"corrupt JSON: {msg} ({self.where(pos)})", file=self.file,
                                kind="corrupt_json")

    def value(self) -> Any:
        """Parse the value at the cursor (reading more text while it is cut by the window's end)."""
        while True:
            try:
                val, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                maybe_cut = exc.pos >= len(self.buf) - _NEAR_END or exc.msg.startswith("Unterminated")
                if maybe_cut and not self.eof and self.fill(len(self.buf) - self.pos):
                    continue
                if self.eof and (exc.pos >= len(self.buf.rstrip(_WS)) or exc.msg.startswith("Unterminated")):
                    raise self.truncated() from None
                raise self.corrupt(exc.msg, exc.pos) from None
            except RecursionError:
                raise self.corrupt("nested too deeply", self.pos) from None
            if end >= len(self.buf) and self.fill():   # a number may go on in the next chunk
                continue
            self.pos = end
            return val


_TOP_TYPES = {"{": "object", '"': "string", "t": "boolean", "f": "boolean", "n": "null"}


def iter_json_array(path: str | os.PathLike) -> Iterator[Any]:
    """Yield the elements of the JSON array that ``path`` holds, one at a time (the file is read
    in chunks; memory is one element plus a read window). Raises ``StoreFormatError`` for empty,
    truncated, corrupt or non-UTF-8 text, and (kind ``not_a_list``) when the top level is not an array."""
    with open(path, "rb") as fh:
        st = _JsonStream(fh, path)
        c = st.skip_ws()
        if c == "":
            raise StoreFormatError("truncated or corrupt JSON: the file is empty", file=path,
                                   kind="corrupt_json")
        if c != "[":
            kind = _TOP_TYPES.get(c, "number" if c in "-0123456789" else None)
            if kind is None:
                raise st.corrupt("Expecting value", st.pos)
            raise StoreFormatError(f"top level must be a list of question records, got {kind}",
                                   file=path, kind="not_a_list")
        st.pos += 1
        c = st.skip_ws()
        if c == "]":
            st.pos += 1
        else:
            while True:
                if c == "":
                    raise st.truncated()
                yield st.value()
                c = st.skip_ws()
                if c == ",":
                    st.pos += 1
                    c = st.skip_ws()
                    if c == "]":
                        raise st.corrupt("trailing comma before ']'", st.pos)
                    continue
                if c == "]":
                    st.pos += 1
                    break
                if c == "":
                    raise st.truncated()
                raise st.corrupt("Expecting ',' delimiter", st.pos)
        if st.skip_ws() != "":
            raise st.corrupt("Extra data", st.pos)


BLOCK_QUESTIONS = 1024
"""Questions packed together while streaming a JSON import (at most)."""
BLOCK_ANSWERS = 1 << 18
"""Answers (probes and finals) packed together while streaming a JSON import (about; bounds the
parsed records held at once to a few tens of MB whatever the file's size)."""


def iter_store_blocks(path: str | os.PathLike, model: str | None = None, benchmark: str | None = None,
                      *, block_questions: int = BLOCK_QUESTIONS, block_answers: int = BLOCK_ANSWERS,
                      attrs: dict | None = None) -> Iterator[ReplayStore]:
    """Stream one AutoTTS JSON file as validated stores of consecutive questions (at most
    ``block_questions`` of them, about ``block_answers`` answers; store order; each block validated,
    messages naming the file and the file's question index)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory (use import_autotts for a directory of stores)")
    inferred = infer_names(path)
    model, benchmark = model or inferred[0], benchmark or inferred[1]
    attrs = dict(attrs if attrs is not None else
                 {"source": "autotts-json", "source_file": f"{inferred[0]}/{path.name}"})
    first_pf: int | None = None
    block: list[dict[str, Any]] = []
    q0 = answers = 0
    for q, rec in enumerate(iter_json_array(path)):
        pf = validate_record(rec, q, path, first_pf)
        first_pf = pf if first_pf is None else first_pf
        block.append(rec)
        answers += sum(len(br[0]) + 1 for br in rec["each_branch"])
        if len(block) >= block_questions or answers >= block_answers:
            yield build_store(model, benchmark, block, attrs).validate(path, question_offset=q0)
            q0 += len(block)
            block = []
            answers = 0
    if block:
        yield build_store(model, benchmark, block, attrs).validate(path, question_offset=q0)
    elif q0 == 0:
        raise StoreFormatError("the list of question records is empty", file=path, kind="no_questions")


def infer_names(path: str | os.PathLike) -> tuple[str, str]:
    """``(model, benchmark)`` from a ``<model>/<benchmark>.json`` path."""
    p = Path(path).resolve()
    return p.parent.name, p.name[:-5] if p.name.endswith(".json") else p.stem


def build_store(model: str, benchmark: str, records: list[dict[str, Any]], attrs: dict | None = None
                ) -> ReplayStore:
    """Same result as :meth:`ReplayStore.from_records` (same interning order), several times faster.

    Per question the answers are laid out in scan order (each branch's probes, then its final);
    ``dict.fromkeys`` keeps first occurrences in order, and ids are looked up with ``map`` at C speed.
    """
    Q = len(records)
    N = max(len(r["each_branch"]) for r in records)
    K = max(len(br[0]) for r in records for br in r["each_branch"])
    probe_ids, num_probes, branch_tokens, final_ids = empty_branch_arrays(Q, N, K)
    num_branches = np.zeros(Q, dtype=np.int32)
    gold_ids = np.full(Q, GOLD_ABSENT, dtype=np.int32)
    tables = []
    kpos = np.arange(K)
    for q, rec in enumerate(records):
        branches = rec["each_branch"]
        nb = len(branches)
        flat: list[str] = []
        for probes, _, final in branches:
            flat += probes
            flat.append(final)
        table = dict.fromkeys(flat)
        for i, key in enumerate(table):
            table[key] = i
        ids = np.fromiter(map(table.__getitem__, flat), dtype=np.int32, count=len(flat))
        ks = np.fromiter(map(len, (br[0] for br in branches)), dtype=np.int32, count=nb)
        fin_at = np.cumsum(ks + 1) - 1
        is_probe = np.ones(len(flat), dtype=bool)
        is_probe[fin_at] = False
        num_branches[q] = nb
        num_probes[q, :nb] = ks
        branch_tokens[q, :nb] = [br[1] for br in branches]
        final_ids[q, :nb] = ids[fin_at]
        probe_ids[q, :nb][kpos[None, :] < ks[:, None]] = ids[is_probe]
        gold_ids[q] = table.get(rec["gold_answer"], GOLD_ABSENT)
        tables.append(tuple(table))
    return ReplayStore(model=model, benchmark=benchmark, probe_ids=probe_ids, num_probes=num_probes,
                       branch_tokens=branch_tokens, final_ids=final_ids, num_branches=num_branches,
                       probe_interval=np.array([r["probe_freq"] for r in records], dtype=np.int32),
                       gold_ids=gold_ids, answer_tables=tuple(tables),
                       gold_answers=tuple(r["gold_answer"] for r in records),
                       questions=tuple(r["question"] for r in records), attrs=dict(attrs or {}))


def records_to_store(records: Any, model: str, benchmark: str, *, file: str | os.PathLike = "<records>",
                     attrs: dict | None = None) -> ReplayStore:
    """Validate parsed AutoTTS records and build the (validated) :class:`ReplayStore`."""
    validate_records(records, file)
    return build_store(model, benchmark, records, attrs=attrs).validate(file)


def read_autotts_json(path: str | os.PathLike, model: str | None = None, benchmark: str | None = None,
                      ) -> ReplayStore:
    """Read and validate one AutoTTS JSON store file (streamed: see :func:`iter_store_blocks`).

    ``model``/``benchmark`` default to the names in the path ``<model>/<benchmark>.json``.
    Raises ``FileNotFoundError`` or :class:`StoreFormatError`.
    """
    return ReplayStore.concatenate(list(iter_store_blocks(path, model, benchmark)))


def find_autotts_files(src: str | os.PathLike) -> list[Path]:
    """The store files of a directory laid out ``<model>/<benchmark>.json`` (sorted).

    A directory holding ``*.json`` directly is taken as one model's directory.
    """
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or directory")
    if src.is_file():
        return [src]
    files = sorted(p for p in src.glob("*/*.json") if p.is_file())
    if not files:
        files = sorted(p for p in src.glob("*.json") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{src}: no AutoTTS store files found (expected <model>/<benchmark>.json)")
    return files


def _source_files(src: str | os.PathLike | Iterable[str | os.PathLike], model: str | None,
                  benchmark: str | None) -> list[Path]:
    """The store files of one source or several (:func:`find_autotts_files`); name overrides need one file."""
    sources = [src] if isinstance(src, (str, os.PathLike)) else list(src)
    files: list[Path] = []
    for s in sources:
        files.extend(find_autotts_files(s))
    if (model or benchmark) and len(files) > 1:
        raise ValueError("model/benchmark overrides need a single source file")
    return files


def import_autotts(src: str | os.PathLike | Iterable[str | os.PathLike], model: str | None = None,
                   benchmark: str | None = None) -> dict[tuple[str, str], ReplayStore]:
    """Import AutoTTS JSON: a file, a directory laid out ``<model>/<benchmark>.json``, or several of them.

    Returns the stores keyed by ``(model, benchmark)`` in sorted order. ``model``/``benchmark``
    override the names inferred from the path (only meaningful for a single file). The first fault
    found raises :class:`StoreFormatError`; nothing is returned half-imported.
    """
    files = _source_files(src, model, benchmark)
    stores: dict[tuple[str, str], ReplayStore] = {}
    origin: dict[tuple[str, str], Path] = {}
    for f in files:
        store = read_autotts_json(f, model, benchmark)
        key = (store.model, store.benchmark)
        if key in stores:
            raise ValueError(f"two sources give the same store {key[0]}/{key[1]}: {origin[key]} and {f}")
        stores[key], origin[key] = store, f
    return dict(sorted(stores.items()))


def import_autotts_to_hdf5(src: str | os.PathLike | Iterable[str | os.PathLike], output: str | os.PathLike, *,
                           model: str | None = None, benchmark: str | None = None, append: bool = False,
                           compression: str | None = "gzip") -> list[tuple[str, str]]:
    """Import AutoTTS JSON straight into an HDF5 file, streaming: one block of questions is parsed,
    validated and written at a time, so a store larger than memory imports. The file is written
    atomically: on any fault nothing (and no temporary file) is left, an existing file is untouched.
    Returns the ``(model, benchmark)`` written."""
    from tts_gym.data.hdf5 import write_store_blocks
    files = _source_files(src, model, benchmark)
    keys: dict[tuple[str, str], Path] = {}
    items = []
    for f in files:
        inferred = infer_names(f)
        key = (model or inferred[0], benchmark or inferred[1])
        if key in keys:
            raise ValueError(f"two sources give the same store {key[0]}/{key[1]}: {keys[key]} and {f}")
        keys[key] = f
        attrs = {"source": "autotts-json", "source_file": f"{inferred[0]}/{f.name}"}
        items.append((key[0], key[1], attrs, iter_store_blocks(f, key[0], key[1], attrs=attrs)))
    write_store_blocks(output, items, append=append, compression=compression)
    return sorted(keys)
