"""On-disk history of a discovery run: per-round folders, atomic writes, resume.

Layout of a run directory ``DIR``::

    DIR/config.json              the run's settings (checked on --resume)
    DIR/baselines.json           built-in baselines on the search stores (cached)
    DIR/seeds/<name>/            seed controllers given by the user (no API cost):
        controller.py, scores.json, traces.md
    DIR/round_0003/
        prompt.md                the prompt, human-readable
        request.json             the exact request parameters (re-sent as is after a crash
                                 that happened before the response was saved)
        response.json            the raw Messages API response, written as soon as the call
                                 returns -- before anything else
        usage.json               tokens (input/output/cache) and dollars of that request
        controller.py            the extracted code (absent when none could be extracted)
        scores.json              the sandboxed evaluation (or the failure)
        traces.md                execution-trace summaries shown to the proposer
        round.json               written last: the round is finished
        agent/                   the explorer's conversation (proposer "agent", see
                                 tts_gym.discovery.explorer): step_0000/{request,response,usage,
                                 tools}.json per request, drafts/, done.json
        submission.json          the explorer's name and notes of a submitted candidate
    DIR/final.json, DIR/best_controller.py   the final report (selection + held-out)

With ``--candidates-per-round K > 1`` the per-candidate files live in ``round_0003/cand_<k>/``
(``prompt.md``, ``request.json``, ``agent/`` and ``round.json`` stay at the round level;
``round.json`` then also sums the round's tokens and dollars). An explorer round has no
``request.json``/``response.json``/``usage.json`` per candidate: its requests are the agent's steps,
each with its own ``usage.json`` (tokens and dollars), all counted by :meth:`RunDir.usage_totals`.

Every file is written atomically (temporary file in the same directory, ``fsync``, ``os.replace``),
so a crash leaves either the old or the new content. A round counts as finished only when its
``round.json`` exists; on resume, finished rounds are loaded, an unfinished round is completed
reusing every file it already has -- in particular a saved ``response.json`` is never requested
again.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["write_atomic", "write_json", "read_json", "RunDir", "ROUND_DONE"]

ROUND_DONE = "round.json"


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`tts_gym.files.atomic_write`: temp file, fsync,
    ``os.replace``, directory fsync; the usual file mode)."""
    from tts_gym.files import atomic_write
    atomic_write(path, data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    p = Path(path)
    if not p.exists():
        return default
    with open(p, encoding="utf-8") as fh:
        return json.load(fh)


USAGE_TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def sum_usage(paths) -> dict:
    """``requests``, the tokens of :data:`USAGE_TOKEN_KEYS` and ``usd`` summed over the ``usage.json``
    files ``paths``; ``usd_unknown`` counts the requests whose price is not known (left out of ``usd``)."""
    tot: dict = {"requests": 0, **dict.fromkeys(USAGE_TOKEN_KEYS, 0), "usd": 0.0, "usd_unknown": 0}
    for p in sorted(paths):
        u = read_json(p) or {}
        tot["requests"] += 1
        for k in USAGE_TOKEN_KEYS:
            tot[k] += int(u.get(k) or 0)
        if u.get("usd") is None:
            tot["usd_unknown"] += 1
        else:
            tot["usd"] += float(u["usd"])
    return tot


class RunDir:
    """Paths and state of one run directory (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, candidates_per_round: int = 1) -> None:
        self.root = Path(root)
        self.K = int(candidates_per_round)

    # -- paths -------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def baselines_path(self) -> Path:
        return self.root / "baselines.json"

    @property
    def final_path(self) -> Path:
        return self.root / "final.json"

    def round_dir(self, r: int) -> Path:
        return self.root / f"round_{int(r):04d}"

    def cand_dir(self, r: int, k: int) -> Path:
        d = self.round_dir(r)
        return d if self.K == 1 else d / f"cand_{int(k)}"

    def seed_dir(self, name: str) -> Path:
        return self.root / "seeds" / name

    # -- state -------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.config_path.exists()

    def remove_stale_temp_files(self) -> int:
        """Delete temporary files left by an interrupted :func:`write_atomic` (resume only)."""
        n = 0
        for p in self.root.rglob(".*.tmp"):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
        return n

    def round_done(self, r: int) -> bool:
        return (self.round_dir(r) / ROUND_DONE).exists()

    def finished_rounds(self) -> list[int]:
        out = []
        for p in sorted(self.root.glob("round_*")):
            try:
                r = int(p.name.split("_", 1)[1])
            except ValueError:
                continue
            if (p / ROUND_DONE).exists():
                out.append(r)
        return out

    def candidate_record(self, d: Path, label: str) -> dict:
        """What the prompt builder and the final selection need from a candidate folder."""
        code_p, scores_p, traces_p = d / "controller.py", d / "scores.json", d / "traces.md"
        rec = {"label": label, "dir": str(d),
               "code": code_p.read_text() if code_p.exists() else None,
               "scores": read_json(scores_p),
               "traces": traces_p.read_text() if traces_p.exists() else "",
               "usage": read_json(d / "usage.json")}
        sub = read_json(d / "submission.json")
        if sub and (sub.get("name") or sub.get("notes")):
            rec["note"] = " - ".join(x for x in (sub.get("name"), sub.get("notes")) if x)
        return rec

    def history(self, upto_round: int, seed_names=()) -> list[dict]:
        """Candidate records of the seed controllers and of finished rounds ``< upto_round``."""
        out = []
        for name in seed_names:
            d = self.seed_dir(name)
            if (d / "scores.json").exists():
                rec = self.candidate_record(d, f"Seed controller '{name}'")
                rec["seed"] = True
                out.append(rec)
        for r in range(int(upto_round)):
            if not self.round_done(r):
                continue
            for k in range(self.K):
                d = self.cand_dir(r, k)
                if self.K > 1 and not d.exists():   # an explorer round with fewer submissions
                    continue
                label = f"Round {r}" + (f", candidate {k}" if self.K > 1 else "")
                rec = self.candidate_record(d, label)
                rec.update(round=r, candidate=k)
                out.append(rec)
        return out

    def usage_totals(self) -> dict:
        """Tokens and dollars summed over every saved ``usage.json`` (finished or not)."""
        return sum_usage(self.root.glob("round_*/**/usage.json"))
