"""Collect a replay store from an OpenAI-compatible completions server.

For every question, ``branches`` reasoning trajectories are sampled; each is cut into intervals of
``interval`` (Δ) tokens, and at every interval boundary the intermediate answer is *probed*.

How the trajectories are cut at exact token boundaries without tokenizer access
------------------------------------------------------------------------------
A trajectory is generated in **chunks of Δ tokens**: request ``k`` sends ``prompt + text so far`` to
``/v1/completions`` with ``max_tokens = Δ`` and appends the returned text. A chunk that comes back
full (``finish_reason == "length"``, ``usage.completion_tokens == Δ``) ends exactly on the boundary
``k·Δ``; a chunk that stops early (end of sequence or a stop string) ends the trajectory, whose token
count ``T`` is the sum of the chunks' ``usage.completion_tokens``. The total is capped at
``max_tokens`` (a trajectory cut there is *truncated*). Servers with prefix caching (vLLM's
automatic prefix caching, SGLang's radix cache) make the re-sent prefix nearly free.

Caveat: the server re-tokenizes the text it returned. Byte-level BPE tokenizers usually round-trip,
but a merge across a chunk boundary can make the re-tokenized prefix a token shorter or longer than
the generated one; boundaries are therefore exact in *generated* tokens, which is what ``T`` and the
probe positions count. Pass server options such as ``{"skip_special_tokens": false}`` with
``extra_body`` if the model emits special tokens that must survive the round trip.

Probes
------
At boundary ``k·Δ`` (only strictly inside the trajectory: a trajectory that ends exactly on a boundary
gets no probe there) the prefix is continued with an *answer-forcing suffix* that closes the thinking
section and opens a box, by default ``"\\n</think>\\n\\nThe final answer is \\\\boxed{"`` (or, once
the model has closed its thinking itself, ``"\\n\\nThe final answer is \\\\boxed{"``), and a few tokens
(``probe_max_tokens``) are decoded, greedily by default. The answer is the decoded text up to the
brace closing the box (:func:`tts_gym.data.answers.extract_forced_answer`). Probe requests run
concurrently with the generation of the next chunk. So ``K = ceil(T / Δ) - 1`` (the full intervals
strictly inside the trajectory), and the env's finishing step charges the last partial interval
``T - K·Δ`` (between 1 and Δ tokens) -- except when a full chunk is followed by an empty one (the
server saw the end only then): the trajectory ends on boundary ``T = K·Δ``, keeps that probe, and
the finishing step charges 0. The chunking and probing of one trajectory is
:class:`~tts_gym.collect.trajectory.Trajectory`, which the live backend (:mod:`tts_gym.online`)
drives too. With ``append_final_probe`` the final answer is appended as
probe ``K + 1`` (the AutoTTS stores' convention "the last probe equals the final answer"); then
``K = ceil(T / Δ)``, still within the store invariant ``K <= ceil(T / Δ)``, and fully probing a
branch costs ``K·Δ >= T`` as in those stores.

A stop string (``stop``) that straddles a chunk boundary is not seen by the server (its first part
is already in the prompt); end-of-sequence tokens, the usual way a trajectory ends, are unaffected.

The final answer (``final_answer``): ``"extract-or-force"`` (default) takes the last ``\\boxed{}`` of a
trajectory that ended by itself and forces an answer as above at the end of a truncated trajectory
or one without a box; ``"extract"`` never forces (``"ERR"`` when there is no box); ``"force"`` always
forces.

Determinism and resumption
--------------------------
Every request carries a ``seed`` derived from ``(seed, question id, branch, request kind, chunk)``, so
a server that honours per-request seeds (vLLM does) reproduces each trajectory regardless of
scheduling. Every finished question is written to ``<checkpoint_dir>/q<index>.json`` atomically
(temporary file, fsync, rename); a rerun with the same configuration loads those and requests only the
missing questions. A question interrupted mid-way is redone from its start.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

from tts_gym.collect.client import CompletionsClient, Usage
from tts_gym.collect.trajectory import CollectError, Trajectory, request_seed  # noqa: F401 (re-export)

# -- prompt templates ----------------------------------------------------------------------------
CHAT_TEMPLATES: dict[str, tuple[str, str]] = {
    # name: (template with {system} and {question}, system block with {text})
    "chatml": ("{system}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n",
               "<|im_start|>system\n{text}<|im_end|>\n"),
    "chatml-think": ("{system}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n<think>\n",
                     "<|im_start|>system\n{text}<|im_end|>\n"),
    "deepseek-r1": ("{system}<｜User｜>{question}<｜Assistant｜><think>\n", "{text}"),
    "gemma": ("<start_of_turn>user\n{system}{question}<end_of_turn>\n<start_of_turn>model\n", "{text}\n\n"),
    "raw": ("{system}{question}", "{text}\n\n"),
}
DEFAULT_TEMPLATE = "chatml"
DEFAULT_INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
DEFAULT_PROBE_SUFFIX = "\n</think>\n\nThe final answer is \\boxed{"
DEFAULT_PROBE_SUFFIX_AFTER_THINK = "\n\nThe final answer is \\boxed{"
FINAL_MODES = ("extract-or-force", "extract", "force")
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class Question:
    index: int
    id: str
    question: str
    gold_answer: str | None

    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.id, self.question, self.gold_answer]).encode()).hexdigest()[:16]


@dataclass
class CollectConfig:
    """Everything that decides *what* is sampled (it is fingerprinted: resuming needs the same)."""
    model: str
    branches: int = 128
    interval: int = 500
    max_tokens: int = 32768
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = 0
    template: str = CHAT_TEMPLATES[DEFAULT_TEMPLATE][0]
    system_template: str = CHAT_TEMPLATES[DEFAULT_TEMPLATE][1]
    system: str = ""
    instruction: str = DEFAULT_INSTRUCTION
    stop: tuple[str, ...] = ()
    probe_suffix: str = DEFAULT_PROBE_SUFFIX
    probe_suffix_after_think: str = DEFAULT_PROBE_SUFFIX_AFTER_THINK
    think_end: str = "</think>"
    probe_max_tokens: int = 16
    probe_temperature: float = 0.0
    probe_top_p: float = 1.0
    probe_unclosed: str = "keep"
    final_answer: str = "extract-or-force"
    append_final_probe: bool = False
    max_empty_resamples: int = 4
    extra_body: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.branches < 1:
            raise ValueError("branches must be >= 1")
        if self.interval < 1:
            raise ValueError("interval must be >= 1")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if self.probe_max_tokens < 1:
            raise ValueError("probe_max_tokens must be >= 1")
        if self.final_answer not in FINAL_MODES:
            raise ValueError(f"final_answer must be one of {FINAL_MODES}, got {self.final_answer!r}")
        if self.probe_unclosed not in ("keep", "err"):
            raise ValueError("probe_unclosed must be 'keep' or 'err'")
        if "{question}" not in self.template:
            raise ValueError("the prompt template must contain {question}")
        self.stop = tuple(self.stop)

    @classmethod
    def with_template(cls, model: str, template: str = DEFAULT_TEMPLATE, **kw) -> "CollectConfig":
        """Config using a named template (see :data:`CHAT_TEMPLATES`) or a template file's text."""
        if template in CHAT_TEMPLATES:
            tpl, sys_tpl = CHAT_TEMPLATES[template]
        else:
            path = Path(template)
            if not path.is_file():
                raise CollectError(f"unknown template {template!r}: use one of {', '.join(CHAT_TEMPLATES)} "
                                   f"or a file whose text contains {{question}} (and optionally {{system}})")
            tpl, sys_tpl = path.read_text(), "{text}\n\n"
        return cls(model=model, template=tpl, system_template=sys_tpl, **kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CollectConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if k == "stop" else v) for k, v in d.items() if k in names})

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def render_prompt(self, question: str) -> str:
        system = self.system_template.replace("{text}", self.system) if self.system else ""
        return self.template.replace("{system}", system).replace("{question}", question + self.instruction)


# -- questions -----------------------------------------------------------------------------------
_QUESTION_KEYS = ("question", "problem", "prompt")
_GOLD_KEYS = ("gold_answer", "answer", "gold", "solution")


def load_questions(path: str | os.PathLike, limit: int | None = None, *,
                   require_gold: bool = True) -> list[Question]:
    """Questions from a JSONL file: one object per line with ``question`` (or ``problem``/``prompt``),
    ``gold_answer`` (or ``answer``/``gold``; converted to a string) and optionally ``id``.
    ``require_gold=False`` accepts lines without a gold answer (``gold_answer`` is then ``None``)."""
    path = Path(path)
    if not path.is_file():
        raise CollectError(f"{path}: no such questions file")
    out: list[Question] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise CollectError(f"{path}:{lineno}: not JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise CollectError(f"{path}:{lineno}: expected a JSON object")
            q = next((obj[k] for k in _QUESTION_KEYS if k in obj), None)
            g = next((obj[k] for k in _GOLD_KEYS if k in obj), None)
            if not isinstance(q, str) or not q.strip():
                raise CollectError(f"{path}:{lineno}: no question text (keys {', '.join(_QUESTION_KEYS)})")
            if g is None and require_gold:
                raise CollectError(f"{path}:{lineno}: no gold answer (keys {', '.join(_GOLD_KEYS)})")
            idx = len(out)
            qid = str(obj.get("id", idx))
            out.append(Question(index=idx, id=qid, question=q, gold_answer=None if g is None else str(g).strip()))
            if limit is not None and len(out) >= limit:
                break
    if not out:
        raise CollectError(f"{path}: no questions")
    ids = [q.id for q in out]
    if len(set(ids)) != len(ids):
        raise CollectError(f"{path}: question ids are not unique")
    return out


# -- checkpoints ---------------------------------------------------------------------------------
def _atomic_write_json(path: Path, obj: Any) -> None:
    from tts_gym.files import atomic_write
    atomic_write(path, json.dumps(obj, ensure_ascii=False, separators=(",", ":")), mkdir=False)


class CheckpointDir:
    """``manifest.json`` (configuration fingerprint) and one ``q<index>.json`` per finished question."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def question_path(self, index: int) -> Path:
        return self.path / f"q{index:06d}.json"

    def open(self, config: CollectConfig, restart: bool = False) -> None:
        """Create the directory, or check that existing checkpoints were made with ``config``."""
        manifest = self.path / "manifest.json"
        if restart and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob(".*.tmp"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text())
            except ValueError:
                old = {}
            if old.get("fingerprint") != config.fingerprint():
                raise CollectError(
                    f"{self.path} holds checkpoints of a different configuration (fingerprint "
                    f"{old.get('fingerprint')} != {config.fingerprint()}); rerun with the same options, "
                    f"or pass --restart to discard them")
        else:
            _atomic_write_json(manifest, {"version": CHECKPOINT_VERSION, "fingerprint": config.fingerprint(),
                                          "config": config.to_dict()})

    def load(self, questions: list[Question]) -> dict[int, dict]:
        """Finished questions' checkpoints, keyed by question index (checked against the questions)."""
        done: dict[int, dict] = {}
        for q in questions:
            p = self.question_path(q.index)
            if not p.exists():
                continue
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except ValueError as exc:  # cannot happen with atomic writes, but say so clearly
                raise CollectError(f"{p}: unreadable checkpoint ({exc}); delete it to redo the question")
            if data.get("question_digest") != q.digest():
                raise CollectError(f"{p}: checkpoint is for a different question (the questions file changed); "
                                   f"pass --restart to discard the checkpoints")
            done[q.index] = data
        return done

    def save(self, q: Question, record: dict, usage: Usage, stats: dict) -> None:
        _atomic_write_json(self.question_path(q.index), {
            "version": CHECKPOINT_VERSION, "index": q.index, "id": q.id, "question_digest": q.digest(),
            "record": record, "usage": usage.to_dict(), "stats": stats})

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# -- sampling ------------------------------------------------------------------------------------
@dataclass
class BranchResult:
    probes: list[str]
    tokens: int
    final: str
    finish: str          # "stop" (ended by itself) or "truncated"
    forced_final: bool
    resamples: int


class Collector:
    """Runs the sampling of a list of questions against one server (see the module docstring)."""

    def __init__(self, client: CompletionsClient, config: CollectConfig):
        self.client = client
        self.cfg = config

    async def branch(self, prompt: str, q: Question, b: int, usage: Usage) -> BranchResult:
        """Sample branch ``b`` of ``q`` to its end, probing every boundary while the next chunk is
        generated (:class:`~tts_gym.collect.trajectory.Trajectory` makes the requests)."""
        traj = Trajectory(self.client, self.cfg, prompt, q.id, b, usage)
        probes: list[asyncio.Future] = []
        try:
            while await traj.next_chunk():
                # boundary traj.boundaries, strictly inside the trajectory: probe it concurrently
                probes.append(traj.probe_task(traj.boundaries))
            final = await traj.final()
            probe_answers = list(await asyncio.gather(*probes))
        except BaseException:
            traj.cancel()
            raise
        return BranchResult(probes=probe_answers, tokens=traj.tokens, final=final,
                            finish="truncated" if traj.truncated else "stop", forced_final=traj.forced_final,
                            resamples=traj.resamples)

    async def question(self, q: Question, on_branch: Callable[[BranchResult], None] | None = None
                       ) -> tuple[dict, Usage, dict]:
        """Sample all branches of ``q``; return ``(record, usage, stats)``."""
        prompt = self.cfg.render_prompt(q.question)
        usage = Usage()

        async def one(b: int) -> BranchResult:
            r = await self.branch(prompt, q, b, usage)
            if on_branch is not None:
                on_branch(r)
            return r

        tasks = [asyncio.ensure_future(one(b)) for b in range(self.cfg.branches)]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if self.cfg.append_final_probe:  # AutoTTS-like: the last probe is the final answer
            branches = [[r.probes + [r.final], r.tokens, r.final] for r in results]
        else:
            branches = [[r.probes, r.tokens, r.final] for r in results]
        record = {"question": q.question, "gold_answer": q.gold_answer, "probe_freq": self.cfg.interval,
                  "each_branch": branches, "final_answers_trace": [r.final for r in results]}
        stats = {"truncated": sum(r.finish == "truncated" for r in results),
                 "forced_finals": sum(r.forced_final for r in results),
                 "empty_resamples": sum(r.resamples for r in results),
                 "tokens": sum(r.tokens for r in results),
                 "probes": sum(len(r.probes) for r in results)}
        return record, usage, stats


# -- progress ------------------------------------------------------------------------------------
class ProgressDisplay:
    """Progress of a run against a server: a rich bar of ``total`` ``unit`` (``mode="rich"``, with an
    ETA column if ``eta``), one line per finished question (``"plain"``), or nothing (``"none"``);
    ``"auto"`` is rich on a terminal, plain otherwise. A context manager (the bar shows inside)."""

    def __init__(self, mode: str, client: CompletionsClient, stream, *, unit: str, total: int, eta: bool):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "rich" if self.stream.isatty() else "plain"
        self.mode = mode
        self.client = client
        self.t0 = time.perf_counter()
        self._bar = None
        if mode == "rich":
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            columns = [TextColumn(f"[bold]{unit}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                       TimeElapsedColumn()]
            if eta:
                columns += [TextColumn("eta"), TimeRemainingColumn()]
            self._bar = Progress(*columns, TextColumn("{task.description}"), console=Console(file=self.stream),
                                 transient=False)
            self._task = self._bar.add_task("", total=total)

    def __enter__(self):
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()

    def elapsed(self) -> float:
        """Seconds since the start (never 0: rates divide by it)."""
        return max(time.perf_counter() - self.t0, 1e-9)


class _Progress(ProgressDisplay):
    """Bar over the branches; the plain lines name each finished question."""

    def __init__(self, mode: str, total_branches: int, total_questions: int, client: CompletionsClient,
                 stream=None):
        super().__init__(mode, client, stream, unit="branches", total=total_branches, eta=True)
        self.total_questions = total_questions
        self.done_questions = 0

    def _rates(self) -> str:
        u = self.client.usage
        dt = self.elapsed()
        return (f"q {self.done_questions}/{self.total_questions} | {u.requests:,} req {u.requests / dt:,.1f}/s | "
                f"{u.completion_tokens:,} tok {u.completion_tokens / dt:,.0f}/s | {self.client.in_flight} in flight")

    def branch_done(self, _r) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=self._rates())

    def question_done(self, q: Question) -> None:
        self.done_questions += 1
        if self.mode == "plain":
            print(f"collect: question {q.id} done ({self._rates()})", file=self.stream, flush=True)
        elif self._bar is not None:
            self._bar.update(self._task, description=self._rates())


async def run_concurrently(coros: Iterable[Awaitable]) -> None:
    """Run ``coros`` as concurrent tasks; when one fails (or the run is cancelled) the others are
    cancelled and waited for before the error goes on."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


# -- the whole run -------------------------------------------------------------------------------
@dataclass
class CollectResult:
    store: Any                 # ReplayStore
    records: list[dict]
    usage: Usage               # every finished question's requests (checkpointed ones included)
    run_usage: Usage           # requests made by this run (retries and interrupted work included)
    resumed: int               # questions taken from checkpoints
    collected: int             # questions sampled by this run
    elapsed: float
    stats: dict


def default_checkpoint_dir(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".ckpt")


async def collect_async(config: CollectConfig, questions: list[Question], *, base_url: str,
                        checkpoint_dir: str | os.PathLike, concurrency: int = 64, questions_in_flight: int = 2,
                        progress: str = "auto", restart: bool = False, client_kwargs: dict | None = None,
                        ) -> tuple[list[dict], Usage, Usage, int, dict]:
    ckpt = CheckpointDir(checkpoint_dir)
    ckpt.open(config, restart=restart)
    done = ckpt.load(questions)
    pending = [q for q in questions if q.index not in done]
    stats_total: dict[str, int] = {}
    async with CompletionsClient(base_url, config.model, concurrency=concurrency,
                                 extra_body=config.extra_body, **(client_kwargs or {})) as client:
        collector = Collector(client, config)
        gate = asyncio.Semaphore(max(1, questions_in_flight))
        with _Progress(progress, len(pending) * config.branches, len(pending), client) as prog:
            async def run_question(q: Question) -> None:
                async with gate:
                    record, usage, stats = await collector.question(q, prog.branch_done)
                ckpt.save(q, record, usage, stats)
                done[q.index] = {"record": record, "usage": usage.to_dict(), "stats": stats}
                prog.question_done(q)

            await run_concurrently(run_question(q) for q in pending)
        run_usage = client.usage
    total = Usage()
    records = []
    for q in questions:
        entry = done[q.index]
        records.append(entry["record"])
        total.merge(entry.get("usage", {}))
        for k, v in entry.get("stats", {}).items():
            stats_total[k] = stats_total.get(k, 0) + int(v)
    return records, total, run_usage, len(questions) - len(pending), stats_total


def collect(config: CollectConfig, questions: list[Question], *, base_url: str, output: str | os.PathLike,
            store_model: str | None = None, benchmark: str = "questions", checkpoint_dir=None,
            concurrency: int = 64, questions_in_flight: int = 2, progress: str = "auto", restart: bool = False,
            keep_checkpoints: bool = False, append: bool = False, answer_merging: str = "none",
            client_kwargs: dict | None = None) -> CollectResult:
    """Collect (or resume collecting) ``questions`` and write the store to ``output`` (HDF5).

    ``store_model`` defaults to the last path component of the server's model name. The store is
    validated by the AutoTTS importer's checks before it is written (atomically). The checkpoints
    are removed after a successful write unless ``keep_checkpoints``.
    ``answer_merging``: ``"none"`` (exact strings) or ``"math-verify"``.
    """
    from tts_gym.data.autotts import records_to_store
    from tts_gym.data.hdf5 import save_stores

    if answer_merging not in ("none", "math-verify"):
        raise ValueError("answer_merging must be 'none' or 'math-verify'")
    output = Path(output)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_dir(output)
    t0 = time.perf_counter()
    records, usage, run_usage, resumed, stats = asyncio.run(collect_async(
        config, questions, base_url=base_url, checkpoint_dir=ckpt_dir, concurrency=concurrency,
        questions_in_flight=questions_in_flight, progress=progress, restart=restart,
        client_kwargs=client_kwargs))
    elapsed = time.perf_counter() - t0
    model_name = store_model or config.model.rstrip("/").split("/")[-1]
    from tts_gym import __version__
    attrs = {"source": "tts-gym collect", "tts_gym_version": __version__, "server_model": config.model,
             "collect_config": json.dumps(config.to_dict(), sort_keys=True, ensure_ascii=False),
             "collect_usage": json.dumps(usage.to_dict(), sort_keys=True),
             "collect_stats": json.dumps(stats, sort_keys=True), "answer_merging": "none"}
    store = records_to_store(records, model_name, benchmark, file=str(output), attrs=attrs)
    if answer_merging == "math-verify":
        from tts_gym.data.answers import merge_equivalent_answers
        store = merge_equivalent_answers(store)
    save_stores(output, store, append=append)
    if not keep_checkpoints:
        CheckpointDir(ckpt_dir).remove()
    return CollectResult(store=store, records=records, usage=usage, run_usage=run_usage, resumed=resumed,
                         collected=len(questions) - resumed, elapsed=elapsed, stats=stats)


def format_summary(result: CollectResult) -> list[str]:
    """The end-of-run report (token accounting)."""
    u, r = result.usage, result.run_usage
    s = result.store
    dt = max(result.elapsed, 1e-9)
    lines = [f"store {s.name}: {s.num_questions} questions x {s.max_branches} branches, "
             f"interval {int(s.probe_interval[0])} tokens ({result.collected} collected now, "
             f"{result.resumed} from checkpoints)",
             f"trajectories: {result.stats.get('tokens', 0):,} tokens, {result.stats.get('probes', 0):,} probes, "
             f"{result.stats.get('truncated', 0)} truncated, {result.stats.get('forced_finals', 0)} forced finals",
             f"tokens (all questions): prompt {u.prompt_tokens:,}  completion {u.completion_tokens:,}  "
             f"total {u.total_tokens:,}  in {u.requests:,} requests"]
    for kind, k in sorted(u.by_kind.items()):
        lines.append(f"  {kind:9s} {k['requests']:>9,} requests  prompt {k['prompt_tokens']:>14,}  "
                     f"completion {k['completion_tokens']:>12,}")
    lines.append(f"this run: {r.requests:,} requests ({r.requests / dt:,.1f}/s), prompt {r.prompt_tokens:,}, "
                 f"completion {r.completion_tokens:,} tokens ({r.completion_tokens / dt:,.0f}/s), "
                 f"{r.retries} retries, {result.elapsed:.1f} s")
    if s.attrs.get("answer_merging", "none") != "none":
        eff = json.loads(s.attrs["answer_merging_effect"])
        lines.append(f"answer merging {eff['method']}: majority accuracy {100 * eff['majority_accuracy_before']:.2f}"
                     f" % -> {100 * eff['majority_accuracy_after']:.2f} %")
    return lines
